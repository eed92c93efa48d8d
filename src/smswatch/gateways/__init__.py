"""Gateway adapters and their registry.

Adding a gateway means one package under `gateways/` whose `GATEWAY` implements `Gateway`
(`gateways/base.py`) and one line in `gateways/registry.py`; the listener routes
`/webhooks/<name>` to its adapter and `/webhooks` detects it. The names here are views of the
registry for the code that only needs the webhook side.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from smswatch.config import Credentials
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import Gateway, Provider, parse_object
from smswatch.gateways.registry import GATEWAYS


class _Adapters(Mapping[str, type[Provider]]):
    """Each gateway's adapter class by name, read from the registry when asked: a gateway
    from a file registered at start is among them."""

    def __getitem__(self, name: str) -> type[Provider]:
        return GATEWAYS[name].adapter

    def __iter__(self) -> Iterator[str]:
        return iter(GATEWAYS)

    def __len__(self) -> int:
        return len(GATEWAYS)


ADAPTERS: Mapping[str, type[Provider]] = _Adapters()


NAMES: tuple[str, ...]  # read through __getattr__ below: never a stale copy


def __getattr__(name: str) -> Any:
    # NAMES is the registry's names as they are now (gateways from files join at start).
    if name == "NAMES":
        return tuple(GATEWAYS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(credentials: Credentials) -> dict[str, Provider]:
    """One configured adapter per gateway."""
    return {name: g.provider(credentials) for name, g in GATEWAYS.items()}


def detect(providers: Mapping[str, Provider], headers: Mapping[str, str], body: bytes) -> Provider:
    """Which gateway sent a request to `POST /webhooks`: by a gateway-specific header if there is
    one, else by the JSON envelope's shape. Raises `Rejected(400)` if it fits none."""
    for provider in providers.values():
        if provider.claims_headers(headers):
            return provider
    obj = parse_object(body)
    for provider in providers.values():
        if provider.claims_body(obj):
            return provider
    names = ", ".join(providers)
    raise Rejected(
        400, "unknown_envelope", f"body fits no gateway's envelope (known gateways: {names})"
    )


__all__ = [
    "ADAPTERS",
    "GATEWAYS",
    "NAMES",
    "Credentials",
    "Gateway",
    "Provider",
    "Rejected",
    "build",
    "detect",
]
