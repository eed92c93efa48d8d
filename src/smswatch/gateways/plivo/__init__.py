"""Plivo: its message status callbacks (forms signed over the URL, X-Plivo-Signature-V3), its
Message API, its error codes (errors.toml)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner, form_body, parse_form
from smswatch.gateways.plivo.sim import plan_message
from smswatch.gateways.plivo.webhook import FORM_TYPE, NONCE_HEADER, SIGNATURE_HEADER, Plivo, sign

if TYPE_CHECKING:
    from smswatch.gateways.plivo.api import PlivoApi
    from smswatch.gateways.plivo.sandbox import PlivoSandbox

# Its setting in core.credentials.GATEWAY_CREDENTIALS: the account's auth token, which signs the
# callbacks and, with the Auth ID, opens the Message API.
CREDENTIAL = "plivo_auth_token"


class PlivoGateway:
    name = Plivo.name
    title = Plivo.title
    adapter = Plivo
    envelope_key = "MessageUUID"
    credential = CREDENTIAL
    # Plivo retries a callback that failed three times, 60, 120 and 240 s apart: a final status
    # that has not come seven minutes after its time will not come.
    reconcile_quiet_us = 600_000_000

    def provider(self, credentials: Credentials) -> Plivo:
        return Plivo(credentials.token(CREDENTIAL))

    def status_api(self) -> type[PlivoApi]:
        from smswatch.gateways.plivo.api import PlivoApi

        return PlivoApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[PlivoSandbox]:
        from smswatch.gateways.plivo.sandbox import PlivoSandbox

        return PlivoSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Signed as Plivo signs (V3): over the URL it is posted to (the app's, for a forward),
        # the form's fields and a fresh nonce, with the account's auth token, which the app
        # verifies Plivo's by.
        token = credentials.token(CREDENTIAL)
        headers = {"Content-Type": FORM_TYPE}
        if token:
            nonce = str(secrets.randbelow(10**20))
            headers[NONCE_HEADER] = nonce
            headers[SIGNATURE_HEADER] = sign(token, url, parse_form(body), nonce)
        return Resigned(headers=headers)

    def post_body(self, payload: str) -> bytes:
        return form_body(payload)


GATEWAY = PlivoGateway()
