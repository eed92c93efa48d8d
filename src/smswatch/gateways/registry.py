"""The gateways smswatch knows, by name, in the order they are tried and listed.

Adding a gateway is one package under `gateways/` (its `GATEWAY` implements
`smswatch.gateways.base.Gateway`), its import and its entry here.
"""

from __future__ import annotations

from smswatch.gateways.africastalking import GATEWAY as AFRICASTALKING
from smswatch.gateways.base import Gateway
from smswatch.gateways.infobip import GATEWAY as INFOBIP
from smswatch.gateways.lisoloo import GATEWAY as LISOLOO
from smswatch.gateways.plivo import GATEWAY as PLIVO
from smswatch.gateways.telnyx import GATEWAY as TELNYX
from smswatch.gateways.twilio import GATEWAY as TWILIO
from smswatch.gateways.vonage import GATEWAY as VONAGE
from smswatch.gateways.yebolink import GATEWAY as YEBOLINK

GATEWAYS: dict[str, Gateway] = {
    g.name: g
    for g in (
        LISOLOO,
        YEBOLINK,
        TWILIO,
        VONAGE,
        AFRICASTALKING,
        INFOBIP,
        TELNYX,
        PLIVO,
    )
}


def gateway(name: str) -> Gateway | None:
    """The gateway of that provider name, None for one smswatch does not know."""
    return GATEWAYS.get(name)
