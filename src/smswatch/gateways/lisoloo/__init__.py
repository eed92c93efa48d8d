"""Lisoloo: its webhooks (Basic auth), its status API, its error codes (errors.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.lisoloo.sim import plan_message
from smswatch.gateways.lisoloo.webhook import Lisoloo

if TYPE_CHECKING:
    from smswatch.gateways.lisoloo.api import LisolooApi
    from smswatch.gateways.lisoloo.sandbox import LisolooSandbox


class LisolooGateway:
    name = Lisoloo.name
    title = Lisoloo.title
    adapter = Lisoloo
    credential = None  # Credentials' own field
    envelope_key = "event_type"
    # Lisoloo retries a webhook for over an hour, but its first retries come within minutes.
    reconcile_quiet_us = 300_000_000

    def provider(self, credentials: Credentials) -> Lisoloo:
        return Lisoloo(credentials.basic_auth)

    def status_api(self) -> type[LisolooApi]:
        from smswatch.gateways.lisoloo.api import LisolooApi

        return LisolooApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[LisolooSandbox]:
        from smswatch.gateways.lisoloo.sandbox import LisolooSandbox

        return LisolooSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # The app already expects Lisoloo's Basic auth; Lisoloo signs nothing.
        return Resigned(basic_auth=credentials.basic_auth)

    def post_body(self, payload: str) -> bytes:
        return payload.encode()


GATEWAY = LisolooGateway()
