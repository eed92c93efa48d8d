"""Twilio: its status callbacks (forms signed over the URL), its Messages resource, its error
codes (errors.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.base import Resigned, SimPlanner, form_body, parse_form
from smswatch.gateways.twilio.sim import plan_message
from smswatch.gateways.twilio.webhook import FORM_TYPE, SIGNATURE_HEADER, Twilio, sign

if TYPE_CHECKING:
    from smswatch.gateways.twilio.api import TwilioApi
    from smswatch.gateways.twilio.sandbox import TwilioSandbox

# Its setting in core.credentials.GATEWAY_CREDENTIALS: the account's auth token, which signs the
# callbacks and, with the account SID, opens the Messages resource.
CREDENTIAL = "twilio_auth_token"


class TwilioGateway:
    name = Twilio.name
    title = Twilio.title
    adapter = Twilio
    envelope_key = "MessageStatus"
    credential = CREDENTIAL
    # Twilio makes one attempt per status callback (it retries only when the callback URL asks
    # for it with #rc=...), so a final status that did not come within minutes will not come.
    reconcile_quiet_us = 300_000_000

    def provider(self, credentials: Credentials) -> Twilio:
        return Twilio(credentials.token(CREDENTIAL))

    def status_api(self) -> type[TwilioApi]:
        from smswatch.gateways.twilio.api import TwilioApi

        return TwilioApi

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[TwilioSandbox]:
        from smswatch.gateways.twilio.sandbox import TwilioSandbox

        return TwilioSandbox

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Signed as Twilio signs: over the URL it is posted to (the app's, for a forward) and
        # the form's fields, with the account's auth token, which the app verifies Twilio's by.
        token = credentials.token(CREDENTIAL)
        headers = {"Content-Type": FORM_TYPE}
        if token:
            headers[SIGNATURE_HEADER] = sign(token, url, parse_form(body))
        return Resigned(headers=headers)

    def post_body(self, payload: str) -> bytes:
        return form_body(payload)


GATEWAY = TwilioGateway()
