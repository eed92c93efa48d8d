"""Africa's Talking: its SMS delivery reports (forms, checked by a token in the callback URL),
its failure reasons (errors.toml). It has no status API: nothing is polled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smswatch.config import Credentials
from smswatch.gateways.africastalking.sim import plan_message
from smswatch.gateways.africastalking.webhook import FORM_TYPE, AfricasTalking
from smswatch.gateways.base import Resigned, SimPlanner, form_body

if TYPE_CHECKING:
    from smswatch.gateways.sandboxing import GatewaySandbox
    from smswatch.reconcile.api import GatewayApi

# Its setting in core.credentials.GATEWAY_CREDENTIALS: the token its callback URL carries.
CREDENTIAL = "africastalking_token"


class AfricasTalkingGateway:
    name = AfricasTalking.name
    title = AfricasTalking.title
    adapter = AfricasTalking
    envelope_key = "phoneNumber"  # no other gateway's body has it at the top
    credential = CREDENTIAL
    # Never used: with no status API there is nothing to ask, however quiet a message is.
    reconcile_quiet_us = 0

    def provider(self, credentials: Credentials) -> AfricasTalking:
        return AfricasTalking(credentials.token(CREDENTIAL))

    def status_api(self) -> type[GatewayApi] | None:
        return None  # its delivery reports are all it says: no messages endpoint to poll

    def simulate(self, planner: SimPlanner, start: float) -> None:
        plan_message(planner, start)

    def sandbox(self) -> type[GatewaySandbox] | None:
        return None  # no status API to stand in for

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        # Africa's Talking signs nothing: the form goes to the app's URL as it is. A token the
        # app checks is in the URL the team gave --forward-to, not added here.
        return Resigned(headers={"Content-Type": FORM_TYPE})

    def post_body(self, payload: str) -> bytes:
        return form_body(payload)


GATEWAY = AfricasTalkingGateway()
