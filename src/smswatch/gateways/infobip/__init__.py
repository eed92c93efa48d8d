"""Infobip: its SMS delivery reports (JSON batches of up to 100, Basic auth), its delivery
reports API, its error codes (errors.toml)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from smswatch.config import Credentials, parse_basic_auth
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.infobip.sim import plan_message
from smswatch.gateways.infobip.webhook import Infobip

if TYPE_CHECKING:
    from smswatch.gateways.infobip.api import InfobipApi
    from smswatch.gateways.infobip.sandbox import InfobipSandbox

# Its setting in core.credentials.GATEWAY_CREDENTIALS: the USER:PASS of the subscription's
# BASIC security, which Infobip sends with every post.
CREDENTIAL = "infobip_basic_auth"


def basic_auth(credentials: Credentials) -> tuple[str, str] | None:
    """The Basic auth pair Infobip's posts carry, None unless it is set (its option refuses a
    value without a colon at start, so one here is USER:PASS)."""
    value = credentials.token(CREDENTIAL)
    return parse_basic_auth(value) if value else None


class InfobipGateway:
    name = Infobip.name
    title = Infobip.title
    adapter = Infobip
    envelope_key = "results"
    credential = CREDENTIAL
    # Infobip retries a failed post for hours, but a report it holds back comes in minutes;
    # and its reports API gives each report once, so asking early spends nothing a late
    # webhook would have brought.
    reconcile_quiet_us = 600_000_000

    def provider(self, credentials: Credentials) -> Infobip:
        return Infobip(basic_auth(credentials))

    def status_api(self) -> type[InfobipApi]:
        from smswatch.gateways.infobip.api import InfobipApi

        return InfobipApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[InfobipSandbox]:
        from smswatch.gateways.infobip.sandbox import InfobipSandbox

        return InfobipSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Infobip signs nothing: its posts carry the subscription's Basic auth, which the app
        # checks Infobip's by.
        return Resigned(basic_auth=basic_auth(credentials))

    def post_body(self, payload: str) -> bytes:
        # A stored event's payload is one report; a planned post is a whole batch already.
        obj = json.loads(payload)
        if isinstance(obj, dict) and isinstance(obj.get("results"), list):
            return payload.encode()
        return json.dumps({"results": [obj]}, separators=(",", ":"), ensure_ascii=False).encode()


GATEWAY = InfobipGateway()
