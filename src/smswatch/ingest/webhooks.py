"""The webhook listener: routing, credentials and quarantine, as the `Handler` the HTTP server
(smswatch.ingest.http) runs. This is the only part of ingest that knows gateways: it finds them
through smswatch.gateways.

Contract (the README, "What the listener answers"): 200 only once the event is committed, duplicates
included; for a batch (Infobip's), once all its valid reports are, in one transaction, its
malformed ones quarantined each on its own (a 4xx for the post would drop the valid ones with
them); 400 malformed JSON (or form) or no gateway's envelope; 401 bad or missing credentials;
404/405 wrong path or method; 408 body not received in time; 413 body over the limit; 415 a content
type that is clearly not JSON (not a form, on the route of a gateway that posts forms); 503 with
Retry-After when the store cannot commit. Every answer has a small JSON body. Rejected requests
go to the bounded quarantine and to the hub so the TUI can say why.

Order of checks: path and method (here), then the HTTP server's on the headers and the body, then
credentials on the raw bytes, then parsing (here). A gateway whose fields may come in a GET's
query (Vonage) also takes GET on its own route: the query, as sent, is its body (`QUERY_MARK`
first); GET anywhere else is 405. A webhook is answered once the writer has
committed its events; while the writer's queue is deep, the connections that feed it are held
(`Backpressure`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from urllib.parse import unquote_to_bytes

from smswatch import __version__
from smswatch.core.records import Rejection
from smswatch.core.rejected import Rejected
from smswatch.gateways import Provider, detect
from smswatch.gateways.base import FORM, QUERY_FORM_JSON, QUERY_MARK, Batch
from smswatch.ingest.exchange import Request, error, target_path
from smswatch.ingest.http import Backpressure, Server, ServerConfig
from smswatch.live.hub import Hub
from smswatch.store import EventStore, StoreUnavailable, Unstorable
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10
QUARANTINE_BODY = 64 * 1024

_WWW_AUTHENTICATE = b'WWW-Authenticate: Basic realm="smswatch", charset="UTF-8"\r\n'
_RETRY_AFTER = b"Retry-After: %d\r\n" % RETRY_AFTER_S
_ALLOW_HEALTH = b"Allow: GET, HEAD\r\n"
_ALLOW_WEBHOOK = b"Allow: POST\r\n"
_ALLOW_QUERY = b"Allow: GET, POST\r\n"


@dataclass(frozen=True)
class ListenerConfig(ServerConfig):
    # Gateways accepted without credentials (all of them on a loopback bind; on a public bind only
    # with --insecure). A gateway with credentials configured always checks them.
    open_gateways: frozenset[str] = frozenset()
    # The base URL the gateways call (behind a tunnel or proxy): what a gateway that signs the
    # URL (Twilio) signed, instead of this listener's scheme and the Host header.
    public_url: str | None = None


# Routes.
_HEALTH, _WEBHOOK, _UNKNOWN_GATEWAY, _NOT_FOUND = range(4)
_Route = tuple[int, Provider | None, str, str]  # kind, provider (None: detect), path, gateway name


class Webhook(Request):
    """A request to a webhook route, with what the listener notes about it on the way."""

    # Defaults on the class, as on Request.
    app: Webhooks
    provider: Provider | None = None
    received_at = 0
    path = ""
    body: bytes | None = None  # kept for the quarantine once it is submitted
    task: asyncio.Future[Any] | None = None  # the submit, held until it is answered
    submitted = 0.0  # perf_counter() at the submit, when the commit latency is measured
    via_query = False  # a GET: its fields are its query
    # A batch (Infobip's results[]): its reports quarantined on their own, and whether the
    # answer counts its reports (a post of one event is answered as always).
    quarantined = 0
    batch = False

    def stored(self, task: asyncio.Future[Any]) -> None:
        """The writer is done with this request's events: answer it."""
        app = self.app
        observe = app.observe_commit
        if observe is not None:
            observe(perf_counter() - self.submitted)
        backpressure = app.backpressure
        if backpressure.held and app.writer.depth <= backpressure.low:
            backpressure.release()
        self.task = None
        try:
            outcomes = task.result()
        except Unstorable as exc:
            app.reject(self, Rejected(400, "unstorable", str(exc)), self.body)
        except StoreUnavailable as exc:
            self.respond(503, error("store_unavailable", str(exc)), _RETRY_AFTER)
        except asyncio.CancelledError:
            self.respond(503, error("store_unavailable", "the store is stopping"), _RETRY_AFTER)
        except Exception:
            log.exception("unexpected error storing a webhook")
            self.respond(500, error("internal_error", "unexpected error; the event was not stored"))
        else:
            first = outcomes[0]
            if not self.batch:
                self.respond(
                    200,
                    {
                        "status": "duplicate" if first.duplicate else "stored",
                        "event_id": first.event_id,
                        "message_id": first.message_id,
                    },
                )
                return
            # A batch is a duplicate only if every report of it was: a re-sent batch.
            duplicates = sum(1 for o in outcomes if o.duplicate)
            self.respond(
                200,
                {
                    "status": "duplicate" if duplicates == len(outcomes) else "stored",
                    "event_id": first.event_id,
                    "message_id": first.message_id,
                    "reports": len(outcomes) + self.quarantined,
                    "stored": len(outcomes) - duplicates,
                    "duplicates": duplicates,
                    "quarantined": self.quarantined,
                },
            )


class Webhooks:
    """The handler: routes a request to its gateway, checks its credentials on the raw bytes,
    parses it, submits its events to the writer and answers once they are committed. Refused
    webhooks go to the quarantine."""

    request_type = Webhook

    def __init__(
        self,
        config: ListenerConfig,
        providers: dict[str, Provider],
        writer: EventStore,
        hub: Hub,
        clock: Callable[[], int],
        backpressure: Backpressure,
    ) -> None:
        self.providers = providers
        self.writer = writer
        self.hub = hub
        self.clock = clock
        self.backpressure = backpressure
        self.started_at = clock()
        self._max_queue = backpressure.limit
        self._public_url = config.public_url
        # Gateways that post forms: a request to `POST /webhooks` whose headers one of them
        # claims (a signature header) is read as a form.
        self._form_providers = [p for p in providers.values() if p.body_format == FORM]
        # Gateways whose requests are accepted once check_auth passes: credentials are fixed for
        # the life of the process, so this is decided once.
        self._accepting = frozenset(
            name
            for name, provider in providers.items()
            if provider.auth_mode().verified or name in config.open_gateways
        )
        # For the metrics: webhook requests per gateway route ("": /webhooks, detected from the
        # body), and, when set, a callback given each request's commit latency in seconds.
        self.requests: dict[str, int] = dict.fromkeys(["", *providers], 0)
        self.observe_commit: Callable[[float], None] | None = None
        self._routes: dict[bytes, _Route] = {b"/healthz": (_HEALTH, None, "/healthz", "")}
        for path in ("/webhooks", "/webhooks/"):
            self._routes[path.encode()] = (_WEBHOOK, None, path, "")
        for name, provider in providers.items():
            for path in (f"/webhooks/{name}", f"/webhooks/{name}/"):
                self._routes[path.encode()] = (_WEBHOOK, provider, path, name)

    # --- the handler ------------------------------------------------------------------------

    def head(self, r: Webhook) -> bool:
        target = r.target
        kind, provider, path, name = self._routes.get(target) or self._route(target)
        method = r.method
        if kind == _HEALTH:
            if method != b"GET" and method != b"HEAD":
                r.refuse(405, "method_not_allowed", f"use GET, HEAD on {path}", _ALLOW_HEALTH)
            return False
        if kind == _NOT_FOUND:
            detail = f"no route {path}; webhooks go to /webhooks/<gateway>"
            r.refuse(404, "not_found", detail)
            return False
        if method != b"POST":
            takes_get = provider is not None and provider.body_format == QUERY_FORM_JSON
            if method != b"GET" or not takes_get:
                allowed, allow = (
                    ("GET or POST", _ALLOW_QUERY) if takes_get else ("POST", _ALLOW_WEBHOOK)
                )
                r.refuse(405, "method_not_allowed", f"use {allowed} on {path}", allow)
                return False
            r.via_query = True
        if kind == _UNKNOWN_GATEWAY:
            known = ", ".join(f"/webhooks/{n}" for n in self.providers)
            r.refuse(404, "unknown_gateway", f"no gateway {name!r}; use one of {known}")
            return False
        if r.upgrade and r.has_body:  # httptools would hand the body over as the new protocol
            r.refuse(400, "bad_request", "protocol upgrades are not supported")
            return False
        r.app = self
        r.path = path
        r.provider = provider
        if provider is not None:
            r.form = provider.body_format == FORM
            r.form_or_json = provider.body_format == QUERY_FORM_JSON
        elif self._form_providers:
            r.form = any(p.claims_headers(r.headers) for p in self._form_providers)
        r.received_at = received_at = self.clock()
        self.hub.request_seen(received_at)
        self.requests[name] += 1
        return True

    def body(self, r: Webhook, body: bytes) -> None:
        if not r.taken:  # the health check
            r.respond(200, self._health())
            return
        if r.via_query:
            query = r.query
            if not query:
                # A URL being tried out (Vonage checks that a receipt URL answers 200 before
                # it saves it): nothing to store, nothing to refuse.
                title = r.provider.title if r.provider is not None else "gateway"
                r.respond(200, {"status": "ok", "detail": f"{title} webhooks go here"})
                return
            body = QUERY_MARK + query  # a body a GET carried anyway is not its fields
        if not body.strip():
            code = "malformed_form" if r.form else "malformed_json"
            self.refused(r, 400, code, "empty body")  # kept without its body
            return
        try:
            provider = r.provider
            if provider is None:
                provider = r.provider = detect(self.providers, r.headers, body)
            if provider.checks_url:
                provider.check_auth(r.headers, body, r.url(self._public_url))
            else:
                provider.check_auth(r.headers, body)
            if provider.name not in self._accepting:
                raise Rejected(
                    401,
                    "auth_required",
                    f"{provider.title} has no credentials configured; unauthenticated webhooks "
                    "are accepted only on a loopback bind (or with --insecure)",
                )
            events = provider.parse(body, r.received_at)
        except Rejected as exc:
            self.reject(r, exc, body)
            return
        except Exception:
            # Never expected; answered so the gateway retries, logged once, server keeps serving.
            log.exception("unexpected error handling a webhook")
            r.respond(500, error("internal_error", "unexpected error; the event was not stored"))
            return
        if isinstance(events, Batch):
            r.batch = True
            for part in events.refused:
                # Kept, as a refused request would be, and the valid reports still stored: the
                # gateway retries the whole post or none of it.
                self.keep(
                    r, part.rejected.status, part.rejected.code, part.rejected.detail, part.body
                )
            r.quarantined = len(events.refused)
        r.body = body
        writer = self.writer
        # A future, not a task: no coroutine to run per request, only a callback when the
        # writer has committed (or failed) the batch it rode in.
        if self.observe_commit is not None:
            r.submitted = perf_counter()
        try:
            task = r.task = writer.submit_nowait(events)
        except StoreUnavailable as exc:
            r.respond(503, error("store_unavailable", str(exc)), _RETRY_AFTER)
            return
        task.add_done_callback(r.stored)
        if writer.depth > self._max_queue:
            self.backpressure.hold(r)

    def refused(
        self,
        r: Webhook,
        status: int,
        code: str,
        detail: str,
        close: bool = False,
        body: bytes | None = None,
    ) -> None:
        """Answer a webhook request the contract refuses; keep it in the quarantine."""
        self.keep(r, status, code, detail, body)
        extra = _WWW_AUTHENTICATE if status == 401 and code == "unauthorized" else b""
        # The rest of the body may still be on its way, or be garbage.
        close = close or status in (408, 413, 417) or code == "unreadable_body"
        r.respond(status, error(code, detail), extra, close, close)

    def keep(self, r: Webhook, status: int, code: str, detail: str, body: bytes | None) -> None:
        """Keep a refused request, or a refused part of a batch, in the quarantine and show it."""
        rejection = Rejection(
            received_at=r.received_at,
            status=status,
            code=code,
            reason=detail,
            remote=r.peer,
            method=r.method.decode("latin-1"),
            path=r.path,
            provider=r.provider.name if r.provider else None,
            content_type=r.content_type,
            body_size=len(body) if body is not None else r.content_length,
            body=body[:QUARANTINE_BODY] if body is not None else None,
        )
        self.hub.rejected_request(rejection)
        self.writer.quarantine(rejection)

    # --- its parts --------------------------------------------------------------------------

    def reject(self, r: Webhook, exc: Rejected, body: bytes | None) -> None:
        """Refuse a webhook whose body was read, keeping the body in the quarantine."""
        self.refused(r, exc.status, exc.code, exc.detail, body=body)

    def _route(self, target: bytes) -> _Route:
        """The route of a URL that is not one of the exact paths: with a query, in absolute
        form, percent-encoded, a gateway's name in capitals, or no route at all."""
        raw = target_path(target)
        if raw in self._routes:
            return self._routes[raw]
        path = (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8", "replace")
        if path == "/healthz":
            return (_HEALTH, None, path, "")
        if path in ("/webhooks", "/webhooks/"):
            return (_WEBHOOK, None, path, "")
        if path.startswith("/webhooks/"):
            name = path[len("/webhooks/") :]
            name = name[:-1] if name.endswith("/") else name
            if name and "/" not in name:
                name = name.lower()
                provider = self.providers.get(name)
                if provider is None:
                    return (_UNKNOWN_GATEWAY, None, path, name)
                return (_WEBHOOK, provider, path, name)
        return (_NOT_FOUND, None, path, "")

    def _health(self) -> dict[str, Any]:
        failing = self.writer.failing
        return {
            "status": "ok" if failing is None else "degraded",
            "version": __version__,
            "events": self.hub.events,
            "store": "ok" if failing is None else failing,
            "uptime_s": round((self.clock() - self.started_at) / 1e6, 1),
        }


class Listener(Server[Webhook]):
    """The HTTP server running the webhook handler for `providers`, submitting to `writer`."""

    def __init__(
        self,
        config: ListenerConfig,
        providers: dict[str, Provider],
        writer: EventStore,
        hub: Hub,
        clock: Callable[[], int] = now_us,
    ) -> None:
        backpressure = Backpressure(config.max_queue)
        self.webhooks = Webhooks(config, providers, writer, hub, clock, backpressure)
        super().__init__(config, self.webhooks, backpressure)
        self.requests = self.webhooks.requests  # for the metrics: one dict, counted in place

    @property
    def observe_commit(self) -> Callable[[float], None] | None:
        """Given each webhook's commit latency in seconds, when set (by the metrics)."""
        return self.webhooks.observe_commit

    @observe_commit.setter
    def observe_commit(self, observe: Callable[[float], None] | None) -> None:
        self.webhooks.observe_commit = observe

    def url(self, gateway: str) -> str:
        return f"{self.base_url}/webhooks/{gateway}"
