"""The gateway API clients: one client per gateway that has a status API and a key.

A gateway brings its client through the registry (`Gateway.status_api`, a `GatewayApi` subclass
with its paths, key header and parsing); its settings are `ApiConfig`'s `<name>_key`, `_url` and
`_rate`.
"""

from __future__ import annotations

from typing import Any

from smswatch.gateways.registry import GATEWAYS
from smswatch.reconcile.api import ApiError, AuthError, GatewayApi, RateLimited, RetryPolicy
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey


def _clients() -> dict[str, type[GatewayApi]]:
    found = {name: g.status_api() for name, g in GATEWAYS.items()}
    return {name: cls for name, cls in found.items() if cls is not None}


CLIENTS: dict[str, type[GatewayApi]] = _clients()
# The gateways with no status API at all (Africa's Talking): never polled, whatever the keys;
# what screens and `reconcile` say of them, so that none seems polled when it cannot be.
UNPOLLED: tuple[str, ...] = tuple(name for name in GATEWAYS if name not in CLIENTS)


def build(config: ApiConfig | None, **kwargs: Any) -> dict[str, GatewayApi]:
    """A client per gateway with a key; none without (so nothing is polled unauthenticated).
    `kwargs` (clock, sleep, retry, window) go to every client: tests use them."""
    if config is None:
        return {}
    clients: dict[str, GatewayApi] = {}
    for name, cls in CLIENTS.items():
        client = cls.from_config(config, **kwargs)
        if client is not None:
            clients[name] = client
    return clients


__all__ = [
    "CLIENTS",
    "UNPOLLED",
    "ApiConfig",
    "ApiConfigError",
    "ApiError",
    "ApiKey",
    "AuthError",
    "GatewayApi",
    "RateLimited",
    "RetryPolicy",
    "build",
]
