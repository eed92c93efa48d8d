"""Reconciliation with the gateways' status APIs (issue 14).

Webhooks can be lost (Lisoloo drops an event after its last retry), so smswatch asks the
gateways themselves. This package holds the API clients (`clients`: Lisoloo's status endpoint,
YeboLink's message lookup and list) and their settings (`config`). The settings are importable
without the clients, so importing this package stays cheap: the engine's config holds an
`ApiConfig` without loading aiohttp.
"""

from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey

__all__ = ["ApiConfig", "ApiConfigError", "ApiKey"]
