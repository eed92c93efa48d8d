"""The gateways smswatch knows, by name, in the order they are tried and listed.

Adding a gateway is one package under `gateways/` (its `GATEWAY` implements
`smswatch.gateways.base.Gateway`), its import and its entry here. Gateways described in files
(`gateways/declarative/`) are `register`ed after the built-ins at start, and tried and listed
after them.
"""

from __future__ import annotations

from smswatch.gateways.africastalking import GATEWAY as AFRICASTALKING
from smswatch.gateways.base import Gateway
from smswatch.gateways.infobip import GATEWAY as INFOBIP
from smswatch.gateways.lisoloo import GATEWAY as LISOLOO
from smswatch.gateways.plivo import GATEWAY as PLIVO
from smswatch.gateways.sinch import GATEWAY as SINCH
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
        SINCH,
    )
}


# The built-ins' names: a gateway from a file may not take one.
BUILT_IN: frozenset[str] = frozenset(GATEWAYS)


def register(gateway: Gateway) -> None:
    """Add a gateway from a file (after every one there). Raises ValueError for a name taken."""
    if gateway.name in GATEWAYS:
        raise ValueError(f"a gateway named {gateway.name!r} is registered already")
    GATEWAYS[gateway.name] = gateway


def unregister(name: str) -> None:
    """Take a gateway from a file out again (a built-in stays: ValueError)."""
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in gateway")
    GATEWAYS.pop(name, None)


def file_gateways() -> tuple[str, ...]:
    """The names of the gateways from files, in the order they were registered."""
    return tuple(name for name in GATEWAYS if name not in BUILT_IN)


def gateway(name: str) -> Gateway | None:
    """The gateway of that provider name, None for one smswatch does not know."""
    return GATEWAYS.get(name)
