"""YeboLink: its webhooks (HMAC signature), its messages API, its error codes (errors.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.yebolink.sim import plan_message
from smswatch.gateways.yebolink.webhook import SIGNATURE_HEADER, YeboLink, sign

if TYPE_CHECKING:
    from smswatch.gateways.yebolink.api import YeboLinkApi
    from smswatch.gateways.yebolink.sandbox import YeboLinkSandbox


class YeboLinkGateway:
    name = YeboLink.name
    title = YeboLink.title
    adapter = YeboLink
    credential = None  # Credentials' own field
    envelope_key = "event"
    # YeboLink's docs say to poll a message with no final state after ten minutes.
    reconcile_quiet_us = 600_000_000

    def provider(self, credentials: Credentials) -> YeboLink:
        return YeboLink(credentials.yebolink_secret)

    def status_api(self) -> type[YeboLinkApi]:
        from smswatch.gateways.yebolink.api import YeboLinkApi

        return YeboLinkApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[YeboLinkSandbox]:
        from smswatch.gateways.yebolink.sandbox import YeboLinkSandbox

        return YeboLinkSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Signed over the body as forwarded, with the secret the app verifies YeboLink's by.
        secret = credentials.yebolink_secret
        return Resigned(headers={SIGNATURE_HEADER: sign(secret, body)} if secret else {})

    def post_body(self, payload: str) -> bytes:
        return payload.encode()


GATEWAY = YeboLinkGateway()
