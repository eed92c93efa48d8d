"""Telnyx: its messaging webhooks (JSON, signed with Ed25519), its message detail records, its
error codes (errors.toml)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner
from smswatch.gateways.telnyx.sim import plan_message
from smswatch.gateways.telnyx.webhook import JSON_TYPE, Telnyx, sign

if TYPE_CHECKING:
    from smswatch.gateways.telnyx.api import TelnyxApi
    from smswatch.gateways.telnyx.sandbox import TelnyxSandbox

# Its settings in core.credentials.GATEWAY_CREDENTIALS: the account's public key, which verifies
# its webhooks; and a signing key, which Telnyx never hands out (its private key signs the real
# webhooks), for what smswatch itself signs: the simulator's and the demo's traffic, and forwards.
CREDENTIAL = "telnyx_public_key"
SIGNING = "telnyx_signing_key"


class TelnyxGateway:
    name = Telnyx.name
    title = Telnyx.title
    adapter = Telnyx
    # Lisoloo's and YeboLink's bodies have a `data` too, but their own keys come first in the
    # registry's order, which replay tries in.
    envelope_key = "data"
    credential = CREDENTIAL
    # Telnyx tries a webhook three times within seconds, then its failover URL, and no more:
    # a final status that did not come within minutes will not come.
    reconcile_quiet_us = 300_000_000

    def provider(self, credentials: Credentials) -> Telnyx:
        return Telnyx(credentials.token(CREDENTIAL), credentials.token(SIGNING))

    def status_api(self) -> type[TelnyxApi]:
        from smswatch.gateways.telnyx.api import TelnyxApi

        return TelnyxApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[TelnyxSandbox]:
        from smswatch.gateways.telnyx.sandbox import TelnyxSandbox

        return TelnyxSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Telnyx signs with its own private key, which nobody else has: a forward cannot carry
        # a signature the app's check against Telnyx's public key would pass. With a signing key
        # of the team's own (--telnyx-signing-key), the body goes signed as Telnyx signs, fresh,
        # for the app to verify by that key's public half; without one it goes unsigned.
        headers = {"Content-Type": JSON_TYPE}
        signing = credentials.token(SIGNING)
        if signing:
            headers.update(sign(signing, body, time.time()))
        return Resigned(headers=headers)

    def post_body(self, payload: str) -> bytes:
        return payload.encode()


GATEWAY = TelnyxGateway()
