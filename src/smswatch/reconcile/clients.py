"""The gateway API clients and their registry: one client per gateway that has a key.

Adding a gateway means one module with a `GatewayApi` subclass (its paths, key header and parsing;
its settings are `ApiConfig`'s `<name>_key`, `_url` and `_rate`) listed in `CLIENTS`.
"""

from __future__ import annotations

from typing import Any

from smswatch.gateways.lisoloo.api import LisolooApi, LisolooStatus
from smswatch.gateways.yebolink.api import Page, YeboLinkApi, YeboLinkMessage
from smswatch.reconcile.api import ApiError, AuthError, GatewayApi, RateLimited, RetryPolicy
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey

CLIENTS: dict[str, type[LisolooApi] | type[YeboLinkApi]] = {
    LisolooApi.name: LisolooApi,
    YeboLinkApi.name: YeboLinkApi,
}


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
    "ApiConfig",
    "ApiConfigError",
    "ApiError",
    "ApiKey",
    "AuthError",
    "GatewayApi",
    "LisolooApi",
    "LisolooStatus",
    "Page",
    "RateLimited",
    "RetryPolicy",
    "YeboLinkApi",
    "YeboLinkMessage",
    "build",
]
