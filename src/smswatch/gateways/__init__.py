"""Gateway adapters and their registry.

Adding a gateway means adding one module with a class that implements `Provider` and listing it
in `ADAPTERS`; the listener routes `/webhooks/<name>` to it and `/webhooks` detects it.
"""

from __future__ import annotations

from collections.abc import Mapping

from smswatch.config import Credentials
from smswatch.gateways.base import Provider, Rejected, parse_object
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.yebolink.webhook import YeboLink

ADAPTERS: dict[str, type] = {Lisoloo.name: Lisoloo, YeboLink.name: YeboLink}
NAMES: tuple[str, ...] = tuple(ADAPTERS)


def build(credentials: Credentials) -> dict[str, Provider]:
    """One configured adapter per gateway."""
    return {
        Lisoloo.name: Lisoloo(credentials.basic_auth),
        YeboLink.name: YeboLink(credentials.yebolink_secret),
    }


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


__all__ = ["ADAPTERS", "NAMES", "Credentials", "Provider", "Rejected", "build", "detect"]
