"""The webhook HTTP server (aiohttp on the engine's loop).

Contract (DESIGN.md): 200 only once the event is committed, duplicates included; 400 malformed
JSON or no gateway's envelope; 401 bad or missing credentials; 404/405 wrong path or method; 408
body not received in time; 413 body over the limit; 415 a content type that is clearly not JSON;
503 with Retry-After when the store cannot commit. Every answer has a small JSON body. Rejected
requests go to the bounded quarantine and to the hub so the TUI can say why.

Order of checks: content type and declared size (headers only), then the body is read under a
time limit, then credentials on the raw bytes, then parsing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.web_protocol import RequestPayloadError

from smswatch import __version__
from smswatch.hub import Hub
from smswatch.providers import Provider, Rejected, detect
from smswatch.store import Rejection, StoreUnavailable, Unstorable, Writer
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10
QUARANTINE_BODY = 64 * 1024

# A body is "clearly not JSON" if its media type names another format. No header, JSON types,
# text/plain and octet-stream are accepted: some senders mislabel JSON as those.
_JSON_TYPES = {"", "application/json", "text/json", "text/plain", "application/octet-stream"}


def is_json_content_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or media.endswith("+json") or media == "*/*"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ListenerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body: int = 1024 * 1024
    read_timeout: float = 10.0  # for the body, once the headers are in
    idle_timeout: float = 15.0  # for headers and between keep-alive requests
    # Gateways accepted without credentials (all of them on a loopback bind; on a public bind only
    # with --insecure). A gateway with credentials configured always checks them.
    open_gateways: frozenset[str] = frozenset()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_queue: int = 4096  # stop reading requests while the writer has this many queued


def _answer(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _answer(status, {"error": code, "detail": detail}, headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own 404/405 answers in our JSON shape."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return _error(
            405, "method_not_allowed", f"use {allowed} on {request.path}", {"Allow": allowed}
        )
    except web.HTTPNotFound:
        return _error(
            404, "not_found", f"no route {request.path}; webhooks go to /webhooks/<gateway>"
        )


class Listener:
    def __init__(
        self,
        config: ListenerConfig,
        providers: dict[str, Provider],
        writer: Writer,
        hub: Hub,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.config = config
        self.providers = providers
        self.writer = writer
        self.hub = hub
        self.clock = clock
        self.started_at = clock()
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body, middlewares=[_json_errors])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_post("/webhooks", self.detect_and_handle)
        app.router.add_post("/webhooks/", self.detect_and_handle)
        app.router.add_post("/webhooks/{gateway}", self.handle_named)
        app.router.add_post("/webhooks/{gateway}/", self.handle_named)
        return app

    async def start(self) -> None:
        # aiohttp logs a traceback for every request it cannot even parse (bad framing, too many
        # headers); it has already answered those 400, so the traceback is only noise.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.config.idle_timeout,
            # After answering 408/413, read what is left of the body for at most this long (so
            # the client sees the answer rather than a reset), then close.
            lingering_time=1.0,
            # On stop, in-flight requests (waiting for a commit: milliseconds) get this long.
            shutdown_timeout=3.0,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def url(self, gateway: str) -> str:
        return f"{self.base_url}/webhooks/{gateway}"

    # --- handlers -------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        error = self.writer.failing
        return _answer(
            200,
            {
                "status": "ok" if error is None else "degraded",
                "version": __version__,
                "events": self.hub.events,
                "store": "ok" if error is None else error,
                "uptime_s": round((self.clock() - self.started_at) / 1e6, 1),
            },
        )

    async def handle_named(self, request: web.Request) -> web.Response:
        name = request.match_info["gateway"].lower()
        provider = self.providers.get(name)
        if provider is None:
            known = ", ".join(f"/webhooks/{n}" for n in self.providers)
            return _error(404, "unknown_gateway", f"no gateway {name!r}; use one of {known}")
        return await self._handle(request, provider)

    async def detect_and_handle(self, request: web.Request) -> web.Response:
        return await self._handle(request, None)

    async def _handle(self, request: web.Request, provider: Provider | None) -> web.Response:
        received_at = self.clock()
        self.hub.request_seen(received_at)
        body: bytes | None = None
        try:
            self._check_headers(request)
            body = await self._read_body(request)
            if provider is None:
                provider = detect(self.providers, request.headers, body)
            self._check_auth(provider, request, body)
            events = provider.parse(body, received_at)
            outcomes = await self.writer.submit(events)
        except Rejected as exc:
            return self._reject(request, provider, received_at, body, exc)
        except Unstorable as exc:
            return self._reject(
                request, provider, received_at, body, Rejected(400, "unstorable", str(exc))
            )
        except StoreUnavailable as exc:
            return _error(503, "store_unavailable", str(exc), {"Retry-After": str(RETRY_AFTER_S)})
        except Exception:
            # Never expected; answered so the gateway retries, logged once, server keeps serving.
            log.exception("unexpected error handling a webhook")
            return _error(500, "internal_error", "unexpected error; the event was not stored")
        first = outcomes[0]
        return _answer(
            200,
            {
                "status": "duplicate" if first.duplicate else "stored",
                "event_id": first.event_id,
                "message_id": first.message_id,
            },
        )

    def _check_headers(self, request: web.Request) -> None:
        content_type = request.headers.get("Content-Type", "")
        if not is_json_content_type(content_type):
            raise Rejected(
                415, "unsupported_media_type", f"content type {content_type!r} is not JSON"
            )
        length = request.content_length
        if length is not None and length > self.config.max_body:
            raise Rejected(
                413,
                "payload_too_large",
                f"body of {length} bytes is over the {self.config.max_body}-byte limit",
            )

    async def _read_body(self, request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(self.config.read_timeout):
                body = await request.read()
        except TimeoutError:
            raise Rejected(
                408, "request_timeout", f"body not received within {self.config.read_timeout:g}s"
            ) from None
        except web.HTTPRequestEntityTooLarge:
            raise Rejected(
                413, "payload_too_large", f"body is over the {self.config.max_body}-byte limit"
            ) from None
        except (RequestPayloadError, ClientPayloadError) as exc:
            # A broken chunked encoding or a Content-Encoding that does not decode.
            cause = exc.__cause__ or exc
            reason = str(getattr(cause, "message", None) or cause).strip()
            raise Rejected(400, "unreadable_body", f"body could not be read: {reason}") from None
        if not body.strip():
            raise Rejected(400, "malformed_json", "empty body")
        return body

    def _check_auth(self, provider: Provider, request: web.Request, body: bytes) -> None:
        provider.check_auth(request.headers, body)
        if not provider.auth_mode().verified and provider.name not in self.config.open_gateways:
            raise Rejected(
                401,
                "auth_required",
                f"{provider.title} has no credentials configured; unauthenticated webhooks are "
                "accepted only on a loopback bind (or with --insecure)",
            )

    def _reject(
        self,
        request: web.Request,
        provider: Provider | None,
        received_at: int,
        body: bytes | None,
        exc: Rejected,
    ) -> web.Response:
        rejection = Rejection(
            received_at=received_at,
            status=exc.status,
            code=exc.code,
            reason=exc.detail,
            remote=request.remote,
            method=request.method,
            path=request.path,
            provider=provider.name if provider else None,
            content_type=request.headers.get("Content-Type"),
            body_size=len(body) if body is not None else request.content_length,
            body=body[:QUARANTINE_BODY] if body is not None else None,
        )
        self.hub.rejected_request(rejection)
        self.writer.quarantine(rejection)
        headers = None
        if exc.status == 401 and exc.code in ("unauthorized",):
            headers = {"WWW-Authenticate": 'Basic realm="smswatch", charset="UTF-8"'}
        response = _error(exc.status, exc.code, exc.detail, headers)
        if exc.status in (408, 413) or exc.code == "unreadable_body":
            response.force_close()  # the rest of the body may still be on its way, or be garbage
        return response
