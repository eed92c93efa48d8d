"""The gateways smswatch knows, by name, in the order they are tried and listed.

Adding a gateway is one package under `gateways/` (its `GATEWAY` implements
`smswatch.gateways.base.Gateway`) and one line here.
"""

from __future__ import annotations

from smswatch.gateways import lisoloo, yebolink
from smswatch.gateways.base import Gateway

GATEWAYS: dict[str, Gateway] = {
    g.name: g
    for g in (
        lisoloo.GATEWAY,
        yebolink.GATEWAY,
    )
}


def gateway(name: str) -> Gateway | None:
    """The gateway of that provider name, None for one smswatch does not know."""
    return GATEWAYS.get(name)
