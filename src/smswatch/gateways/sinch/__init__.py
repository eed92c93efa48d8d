"""Sinch (the XMS SMS API): its delivery-report callbacks (JSON; Basic auth or an HMAC
signature), its delivery reports API, its error codes (errors.toml)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from smswatch.config import Credentials, parse_basic_auth
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.sinch.sim import plan_batch
from smswatch.gateways.sinch.webhook import JSON_TYPE, Sinch, sign

if TYPE_CHECKING:
    from smswatch.gateways.sinch.api import SinchApi
    from smswatch.gateways.sinch.sandbox import SinchSandbox

# Its settings in core.credentials.GATEWAY_CREDENTIALS: the HMAC secret Sinch signs its
# callbacks with, and the USER:PASS a callback URL can carry instead (or as well).
CREDENTIAL = "sinch_webhook_secret"
BASIC_AUTH = "sinch_basic_auth"


def basic_auth(credentials: Credentials) -> tuple[str, str] | None:
    """The Basic auth pair of the callback URL, None unless set (its option refuses a value
    without a colon at start)."""
    value = credentials.token(BASIC_AUTH)
    return parse_basic_auth(value) if value else None


class SinchGateway:
    name = Sinch.name
    title = Sinch.title
    adapter = Sinch
    envelope_key = "batch_id"
    credential = CREDENTIAL
    # Either of its two credentials makes its route safe on a public bind.
    also_credentials = (BASIC_AUTH,)
    # Sinch retries a callback it could not deliver for most of a day (5 s, doubling); a
    # report that did not come in ten quiet minutes is worth one call, which answers for the
    # whole batch.
    reconcile_quiet_us = 600_000_000

    def provider(self, credentials: Credentials) -> Sinch:
        return Sinch(basic_auth(credentials), credentials.token(CREDENTIAL))

    def status_api(self) -> type[SinchApi]:
        from smswatch.gateways.sinch.api import SinchApi

        return SinchApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_batch(planner, start)

    def sandbox(self) -> type[SinchSandbox]:
        from smswatch.gateways.sinch.sandbox import SinchSandbox

        return SinchSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Signed afresh, with a new nonce and timestamp, by the team's secret (a stored
        # callback's own signature would be stale within minutes), and with the Basic auth
        # pair when one is set: the app checks a forward as it checks Sinch's callbacks.
        headers = {"Content-Type": JSON_TYPE}
        secret = credentials.token(CREDENTIAL)
        if secret:
            headers.update(sign(secret, body, time.time()))
        return Resigned(basic_auth=basic_auth(credentials), headers=headers)

    def post_body(self, payload: str) -> bytes:
        return payload.encode()


GATEWAY = SinchGateway()
