"""The webhook HTTP server: an asyncio Protocol over httptools' parser (the one uvicorn uses),
on uvloop where the engine's loop is one (smswatch.loops), with TLS when given a certificate.

Contract (the README, "What the listener answers"): 200 only once the event is committed, duplicates
included; 400 malformed JSON or no gateway's envelope; 401 bad or missing credentials; 404/405 wrong
path or method; 408 body not received in time; 413 body over the limit; 415 a content type that is
clearly not JSON; 503 with Retry-After when the store cannot commit. Every answer has a small JSON
body. Rejected requests go to the bounded quarantine and to the hub so the TUI can say why.

Order of checks: path and method, then content type, declared size, Content-Encoding and Expect
(headers only), then the body is read under a time limit, then credentials on the raw bytes, then
parsing. `Expect: 100-continue` gets `100 Continue` only once the header checks pass; otherwise
the final answer goes at once and the connection closes, since the body may or may not follow.
Any other expectation gets 417, as aiohttp answered it.

httptools does all the HTTP parsing; this module owns the connection:

- Keep-alive as HTTP/1.1 says (HTTP/1.0 only with `Connection: keep-alive`); a request with
  `Connection: close` is answered, then the connection closes.
- Pipelined requests are worked on at once, so they share group commits, and are answered in
  the order they came: each request takes its place in the connection's answer queue when its
  headers are in, and answers leave from the front only.
- Timeouts, checked by one sweep per listener a fraction of the shortest timeout apart (the hot
  path only stores a deadline): `idle_timeout` from a connection's opening or last answer to a
  request's first byte, and again from that byte to the end of its headers, so a client that
  trickles headers (slowloris) is closed, unanswered; `read_timeout` from the end of the
  headers to the end of the body, else 408.
- Limits on the head: the URL and each header at most 8190 bytes, at most 128 headers (aiohttp's
  limits, which this listener replaces), 64 KiB of head in all. Over a limit the answer is 400
  `bad_request`, as aiohttp answered and the hostile-input suite expects; 431 and 414 are more
  precise, but a client that sends 2,000 headers to a webhook endpoint is not reading status
  codes.
- A request the parser cannot read (bad framing, an invalid method or version) gets
  `HTTP/1.0 400 bad_request` and the connection closes; a webhook whose body framing breaks
  after its headers passed (a bad chunk) gets the same status line with `unreadable_body`, and
  is quarantined. HTTP/1.0 because nothing said on that connection can be trusted after it, and
  an HTTP/1.0 answer tells the client the connection ends with it (aiohttp did the same).
- Bodies: 413 from Content-Length before anything is read, and as soon as a chunked body grows
  past the limit. gzip and deflate (zlib-wrapped or raw) are decoded with the decoded size held
  to the same limit, so a zip bomb gets 413 and undecodable bytes 400 `unreadable_body`; any
  other Content-Encoding gets 415 at once (the body could never be read), identity is the body.
- After 408, 413 or any answer that closes while a body may still be arriving, the connection
  reads and drops the rest for up to a second before closing, so the client reads the answer
  rather than a reset.
- Backpressure: when the writer has more than `max_queue` requests queued and not yet taken into
  a commit, connections that submit stop reading (the kernel's buffers then push back on the
  senders) until the queue is down to half. A connection also stops reading while 32 of its
  answers are owed, and while its own client does not read what is written to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
import pydantic_core

from smswatch import __version__
from smswatch.core.records import Rejection
from smswatch.gateways import Provider, Rejected, detect
from smswatch.live.hub import Hub
from smswatch.store import EventStore, StoreUnavailable, Unstorable
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10
QUARANTINE_BODY = 64 * 1024

MAX_LINE = 8190  # bytes of the URL, and of one header's name and value
MAX_HEADERS = 128
MAX_HEAD = 64 * 1024  # bytes of request line and headers together
LINGER_S = 1.0  # after an answer that closes, how long the rest of a body is read and dropped
SHUTDOWN_S = 3.0  # on stop, requests waiting for a commit (milliseconds) get this long
PIPELINE_HIGH = 32  # answers owed on one connection before it stops reading
PIPELINE_LOW = 8

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


class TLSError(ValueError):
    """The certificate or key cannot be used; the message names the file and the reason."""


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for the certificate chain in `cert` and its private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # before OSError: it is one
        raise TLSError(
            f"cannot use TLS certificate {cert} with key {key}: {exc.reason or exc} "
            "(both must be PEM files, and the key must belong to the certificate)"
        ) from None
    except OSError as exc:
        raise TLSError(
            f"cannot read TLS file {exc.filename or f'{cert} or {key}'}: {exc.strerror or exc}"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- answers, built as bytes ------------------------------------------------------------------


def _json(payload: dict[str, Any]) -> bytes:
    try:
        return pydantic_core.to_json(payload)  # several times faster than json.dumps
    except pydantic_core.PydanticSerializationError:  # a lone surrogate in some detail text
        return json.dumps(payload).encode()


def _heads(version: bytes) -> dict[int, bytes]:
    return {
        status.value: b"HTTP/%s %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: " % (version, status.value, status.phrase.encode())
        for status in HTTPStatus
        if status.value >= 200
    }


_HEAD11 = _heads(b"1.1")
_HEAD10 = _heads(b"1.0")
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n"  # HTTP/1.0 keeps a connection only if told
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_WWW_AUTHENTICATE = b'WWW-Authenticate: Basic realm="smswatch", charset="UTF-8"\r\n'
_RETRY_AFTER = b"Retry-After: %d\r\n" % RETRY_AFTER_S


def _error(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


class Headers(dict[str, str]):
    """A request's headers by lower-case name; lookups ignore case, as HTTP's names do. The first
    of repeated headers counts."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())


_get = dict.get  # the lower-case lookups of the hot path skip Headers.get's .lower()


def _decode(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip (one or more members) or deflate (zlib-wrapped or raw) body, decoded to at most
    `limit` bytes. Raises Rejected: 413 past the limit, 400 unreadable_body if it does not
    decode."""
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # deflate is meant to be zlib-wrapped (RFC 9110), but many senders send it raw
        wbits = zlib.MAX_WBITS if body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            # Never more than one byte past the limit is inflated, whatever the ratio.
            chunk = decompressor.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise Rejected(
                400, "unreadable_body", f"body could not be read: {encoding}: {exc}"
            ) from None
        size += len(chunk)
        if size > limit:
            raise Rejected(
                413, "payload_too_large", f"body is over the {limit}-byte limit once decoded"
            )
        out.append(chunk)
        if not decompressor.eof:
            raise Rejected(400, "unreadable_body", f"body could not be read: truncated {encoding}")
        data = decompressor.unused_data
        if not data:
            return out[0] if len(out) == 1 else b"".join(out)
        if encoding != "gzip":
            raise Rejected(
                400, "unreadable_body", "body could not be read: bytes after the deflate stream"
            )


# --- one connection ---------------------------------------------------------------------------

# What a connection's deadline is for.
_IDLE, _HEAD, _BODY, _WAIT, _LINGER = range(5)
_NEVER = float("inf")
# Why a connection is not reading (bits).
_BACKPRESSURE, _PIPELINE, _WRITE = 1, 2, 4
# Routes.
_HEALTH, _WEBHOOK, _UNKNOWN_GATEWAY, _NOT_FOUND = range(4)


class _BadRequest(Exception):
    """Raised in a parser callback: the request cannot be read (answered 400, then close)."""


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: a closing answer is already queued."""


class _Request:
    """One request from its headers to its answer, and its place in the answer queue."""

    # Defaults on the class: a request sets only what differs (this is made per request).
    data: bytes | None = None  # the answer, once known
    linger = False  # close only after reading what is left of the body for a moment
    interim: bytes | None = None  # 100 Continue, sent when this request is first in line
    webhook = False
    provider: Provider | None = None
    received_at = 0
    path = ""
    content_type: str | None = None
    content_length: int | None = None
    encoding: str | None = None
    body: bytes | None = None
    task: asyncio.Future[Any] | None = None  # the submit, held until it is answered
    submitted = 0.0  # perf_counter() at the submit, when the commit latency is measured

    def __init__(self, conn: _Connection, keep_alive: bool, v10: bool, head: bool) -> None:
        self.conn = conn
        self.close = not keep_alive  # the connection closes after the answer
        self.v10 = v10
        self.head = head

    def stored(self, task: asyncio.Future[Any]) -> None:
        """The writer is done with this request's events: answer it."""
        conn = self.conn
        listener = conn.listener
        observe = listener.observe_commit
        if observe is not None:
            observe(perf_counter() - self.submitted)
        if listener._throttled and listener.writer.depth <= listener._low_water:
            listener._unthrottle()
        self.task = None
        try:
            outcomes = task.result()
        except Unstorable as exc:
            conn._reject(self, Rejected(400, "unstorable", str(exc)), self.body)
        except StoreUnavailable as exc:
            conn._answer(self, 503, _error("store_unavailable", str(exc)), _RETRY_AFTER)
        except asyncio.CancelledError:
            conn._answer(
                self, 503, _error("store_unavailable", "the store is stopping"), _RETRY_AFTER
            )
        except Exception:
            log.exception("unexpected error storing a webhook")
            conn._answer(
                self, 500, _error("internal_error", "unexpected error; the event was not stored")
            )
        else:
            first = outcomes[0]
            conn._answer(
                self,
                200,
                {
                    "status": "duplicate" if first.duplicate else "stored",
                    "event_id": first.event_id,
                    "message_id": first.message_id,
                },
            )


class _Connection(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.loop = listener._loop
        self.parser = httptools.HttpRequestParser(self)
        # Bytes after a request that asked to close are dropped, not a parse error.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.remote: str | None = None
        self.tls = False
        self.queue: deque[_Request] = deque()  # answers owed, in request order
        self.req: _Request | None = None  # the request whose body is being read
        self.closing = False  # no further request is read
        self.closed = False
        self.flush_soon = False
        self.paused = 0
        self.phase = _IDLE
        self.deadline = _NEVER
        self.messages = 0
        # The request being parsed.
        self.url = b""
        self.headers = Headers()
        self.header_count = 0
        self.head_size = 0
        self.head_raw = 0
        self.body: list[bytes] = []
        self.body_size = 0

    # --- transport events -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else None
        self.tls = self.listener.tls
        self.listener._connections.add(self)
        self.deadline = self.loop.time() + self.listener._idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closing = True
        self.queue.clear()
        self.req = None
        self.listener._lost(self)

    def eof_received(self) -> bool | None:
        # The client sent all it will send. Answers still owed are written (except over TLS,
        # where a half-closed connection cannot be written to), then the connection closes.
        self._drop_unfinished()
        if self.tls or not self.queue or self.phase == _LINGER:
            return None
        self.closing = True
        last = self.queue[-1]
        last.close, last.linger = True, False
        return True

    def pause_writing(self) -> None:
        self._pause(_WRITE)  # the client is not reading its answers: read no more requests

    def resume_writing(self) -> None:
        self._resume(_WRITE)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # after an answer that closes: dropped (this is also the lingering read)
        before, messages = self.phase, self.messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Stop):
                self._stopped()
            elif isinstance(cause, _BadRequest):
                self._unreadable(str(cause))
            else:
                log.error("unexpected error reading a request", exc_info=cause)
                self._unreadable("the request could not be handled")
            return
        except httptools.HttpParserUpgrade:
            # A CONNECT or an Upgrade request: answered as any other (never upgraded), then
            # the connection closes, since what follows is not HTTP/1.1 any more.
            self.closing = True
            return
        except httptools.HttpParserError as exc:
            self._unreadable(f"cannot parse the request: {exc}")
            return
        # httptools holds an unfinished header itself: count the bytes of a head that spans
        # reads, so a header that never ends cannot grow without bound.
        if before == _HEAD and self.phase == _HEAD and self.messages == messages:
            self.head_raw += len(data)
            if self.head_raw > MAX_HEAD:
                self._unreadable(f"request head over {MAX_HEAD} bytes")

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.closing:
            raise _Stop  # a request after one whose answer closes the connection
        self.messages += 1
        self.phase = _HEAD
        self.deadline = self.loop.time() + self.listener._idle_timeout
        self.url = b""
        self.headers = Headers()
        self.header_count = self.head_size = self.head_raw = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_LINE:
            raise _BadRequest(f"URL over {MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self.header_count += 1
        self.head_size += size
        if self.header_count > MAX_HEADERS:
            raise _BadRequest(f"more than {MAX_HEADERS} headers")
        if size > MAX_LINE:
            raise _BadRequest(f"a header over {MAX_LINE} bytes")
        if self.head_size > MAX_HEAD:
            raise _BadRequest(f"headers over {MAX_HEAD} bytes")
        self.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        listener = self.listener
        parser = self.parser
        self.phase = _BODY
        self.deadline = self.loop.time() + listener._read_timeout
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _BadRequest(f"HTTP/{version} is not supported")
        method = parser.get_method()
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive() and not upgrade
        r = _Request(self, keep_alive, version == "1.0", method == b"HEAD")
        self.req = r
        queue = self.queue
        queue.append(r)
        if len(queue) >= PIPELINE_HIGH:
            self._pause(_PIPELINE)
        headers = self.headers
        url = self.url
        kind, provider, path, name = listener._routes.get(url) or listener._route(url)
        r.path = path
        length = _get(headers, "content-length")
        r.content_length = int(length) if length is not None else None
        has_body = r.content_length != 0 and (
            length is not None or _get(headers, "transfer-encoding") is not None
        )
        if kind == _HEALTH:
            if method != b"GET" and method != b"HEAD":
                self._refuse(r, 405, "method_not_allowed", f"use GET, HEAD on {path}", has_body)
            return
        if kind == _NOT_FOUND:
            detail = f"no route {path}; webhooks go to /webhooks/<gateway>"
            self._refuse(r, 404, "not_found", detail, has_body)
            return
        if method != b"POST":
            self._refuse(r, 405, "method_not_allowed", f"use POST on {path}", has_body)
            return
        if kind == _UNKNOWN_GATEWAY:
            known = ", ".join(f"/webhooks/{n}" for n in listener.providers)
            detail = f"no gateway {name!r}; use one of {known}"
            self._refuse(r, 404, "unknown_gateway", detail, has_body)
            return
        if upgrade and has_body:  # httptools would hand the body over as the new protocol
            self._refuse(r, 400, "bad_request", "protocol upgrades are not supported", True)
            return
        r.webhook = True
        r.provider = provider
        r.received_at = received_at = listener.clock()
        listener.hub.request_seen(received_at)
        listener.requests[name] += 1
        r.content_type = content_type = _get(headers, "content-type")
        expect = _get(headers, "expect") if version == "1.1" else None
        try:
            if content_type is not None and not listener._is_json(content_type):
                raise Rejected(
                    415, "unsupported_media_type", f"content type {content_type!r} is not JSON"
                )
            length_n, limit = r.content_length, listener._max_body
            if length_n is not None and length_n > limit:
                raise Rejected(
                    413,
                    "payload_too_large",
                    f"body of {length_n} bytes is over the {limit}-byte limit",
                )
            coding = _get(headers, "content-encoding")
            if coding is not None:
                r.encoding = self._coding(coding)
            if expect is not None and expect.lower() != "100-continue":
                raise Rejected(417, "expectation_failed", f"cannot meet Expect: {expect!r}")
        except Rejected as exc:
            # With Expect the client waits for our word before sending the body, or never sends
            # it: the connection cannot be reused either way.
            self._reject(r, exc, None, close=has_body and expect is not None)
            if self.closing:
                raise _Stop from None
            return
        if expect is not None and has_body:
            r.interim = _CONTINUE
            if queue[0] is r:
                self._flush()

    def on_body(self, chunk: bytes) -> None:
        r = self.req
        if r is None or r.data is not None:
            return  # answered from its headers: the body is dropped
        self.body_size += len(chunk)
        if self.body_size > self.listener._max_body:
            self.body = []
            limit = self.listener._max_body
            exc = Rejected(413, "payload_too_large", f"body is over the {limit}-byte limit")
            if r.webhook:
                self._reject(r, exc, None)
            else:
                self._answer(r, 413, _error(exc.code, exc.detail), close=True, linger=True)
            raise _Stop
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        r = self.req
        self.req = None
        self.phase = _WAIT
        self.deadline = _NEVER
        if r is None:
            return
        if r.close:
            self.closing = True  # what follows on this connection is not read
        if r.data is not None:  # answered from its headers
            self.body = []
            self.body_size = 0
            if not self.queue:
                self._idle()
        elif r.webhook:
            self._webhook(r)
        else:
            self._answer(r, 200, self.listener._health())

    # --- handling ---------------------------------------------------------------------------

    def _coding(self, coding: str) -> str | None:
        value = coding.strip().lower()
        if value in ("gzip", "x-gzip"):
            return "gzip"
        if value == "deflate":
            return "deflate"
        if value in ("", "identity"):
            return None
        raise Rejected(
            415,
            "unsupported_media_type",
            f"content encoding {coding!r} is not supported; send the body as is, gzip or deflate",
        )

    def _webhook(self, r: _Request) -> None:
        listener = self.listener
        chunks = self.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.body = []
        self.body_size = 0
        try:
            if r.encoding is not None and body:
                body = _decode(body, r.encoding, listener._max_body)
            if not body.strip():
                raise Rejected(400, "malformed_json", "empty body")
        except Rejected as exc:
            self._reject(r, exc, None)  # kept without its body, as one that could not be read
            return
        try:
            provider = r.provider
            if provider is None:
                provider = r.provider = detect(listener.providers, self.headers, body)
            listener._check_auth(provider, self.headers, body)
            events = provider.parse(body, r.received_at)
        except Rejected as exc:
            self._reject(r, exc, body)
            return
        except Exception:
            # Never expected; answered so the gateway retries, logged once, server keeps serving.
            log.exception("unexpected error handling a webhook")
            self._answer(
                r, 500, _error("internal_error", "unexpected error; the event was not stored")
            )
            return
        r.body = body
        writer = listener.writer
        # A future, not a task: no coroutine to run per request, only a callback when the
        # writer has committed (or failed) the batch it rode in.
        if listener.observe_commit is not None:
            r.submitted = perf_counter()
        try:
            task = r.task = writer.submit_nowait(events)
        except StoreUnavailable as exc:
            self._answer(r, 503, _error("store_unavailable", str(exc)), _RETRY_AFTER)
            return
        task.add_done_callback(r.stored)
        if writer.depth > listener._max_queue:
            listener._throttle(self)

    def _reject(
        self,
        r: _Request,
        exc: Rejected,
        body: bytes | None,
        close: bool = False,
        v10: bool = False,
    ) -> None:
        """Answer a webhook request the contract refuses; keep it in the quarantine."""
        rejection = Rejection(
            received_at=r.received_at,
            status=exc.status,
            code=exc.code,
            reason=exc.detail,
            remote=self.remote,
            method="POST",
            path=r.path,
            provider=r.provider.name if r.provider else None,
            content_type=r.content_type,
            body_size=len(body) if body is not None else r.content_length,
            body=body[:QUARANTINE_BODY] if body is not None else None,
        )
        listener = self.listener
        listener.hub.rejected_request(rejection)
        listener.writer.quarantine(rejection)
        extra = _WWW_AUTHENTICATE if exc.status == 401 and exc.code == "unauthorized" else b""
        # The rest of the body may still be on its way, or be garbage.
        close = close or exc.status in (408, 413, 417) or exc.code == "unreadable_body"
        self._answer(r, exc.status, _error(exc.code, exc.detail), extra, close, close, v10)

    def _refuse(self, r: _Request, status: int, code: str, detail: str, has_body: bool) -> None:
        """Answer from the headers a request that no route takes; its body, if any, is dropped."""
        extra = b""
        if status == 405:
            extra = b"Allow: %s\r\n" % (b"GET, HEAD" if r.path == "/healthz" else b"POST")
        # With Expect: 100-continue the body may never come: the connection cannot be reused.
        close = has_body and (_get(self.headers, "expect") is not None or code == "bad_request")
        # Closing (asked for, or as above) while a body may be arriving: read it out first.
        self._answer(r, status, _error(code, detail), extra, close, has_body)
        if self.closing:
            raise _Stop

    def _answer(
        self,
        r: _Request,
        status: int,
        payload: dict[str, Any],
        extra: bytes = b"",
        close: bool = False,
        linger: bool = False,
        v10: bool = False,
    ) -> None:
        """Set `r`'s answer, and send it (with any ready after it) if it is first in line."""
        close = close or r.close
        body = _json(payload)
        connection = _CLOSE if close else _KEEP_ALIVE_10 if r.v10 else b""
        r.data = b"%s%d\r\n%s%s\r\n%s" % (
            (_HEAD10 if v10 else _HEAD11)[status],
            len(body),
            extra,
            connection,
            b"" if r.head else body,
        )
        r.close = close
        r.linger = linger
        if close:
            self.closing = True
        queue = self.queue
        if queue and queue[0] is r:
            if len(queue) == 1:
                self._flush()
            elif not self.flush_soon:
                # Pipelined: the answers after this one are often completed by the same commit,
                # in this same turn of the loop. One write for all of them, a moment later.
                self.flush_soon = True
                self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write the answers ready at the front of the queue."""
        self.flush_soon = False
        queue = self.queue
        out: list[bytes] = []
        end = False
        linger = False
        while queue:
            r = queue[0]
            if r.data is None:
                if r.interim is not None:
                    out.append(r.interim)
                    r.interim = None
                break
            queue.popleft()
            out.append(r.data)
            if r.close:
                end, linger = True, r.linger
                queue.clear()  # nothing after an answer that closes is answered
                break
        if out and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if end:
            self._end(linger)
        elif self.paused & _PIPELINE and len(queue) <= PIPELINE_LOW:
            self._resume(_PIPELINE)
        if not queue and self.phase == _WAIT and not self.closing:
            self._idle()

    def _idle(self) -> None:
        self.phase = _IDLE
        self.deadline = self.loop.time() + self.listener._idle_timeout

    def _end(self, linger: bool) -> None:
        """Close after the answers written so far."""
        self.closing = True
        if self.closed:
            return
        if linger and not self.listener._stopping:
            self.phase = _LINGER
            self.deadline = self.loop.time() + LINGER_S
            self.listener._throttled.discard(self)
            if self.paused:
                self.paused = 0
                self.transport.resume_reading()
        else:
            self.transport.close()

    def _stopped(self) -> None:
        """Parsing stopped at an answer that closes: the request being read is over."""
        self.req = None
        self.body = []
        if self.phase != _LINGER:
            self.phase = _WAIT
            self.deadline = _NEVER

    def _unreadable(self, detail: str) -> None:
        """The request cannot be parsed: answer 400 (HTTP/1.0) after what is owed, and close."""
        r = self.req
        self.req = None
        self.body = []
        self.phase, self.deadline = _WAIT, _NEVER
        if r is not None and r.data is not None:
            self._close_after_queue(linger=True)  # already answered: nothing more to say
            return
        if r is None:
            r = _Request(self, False, True, False)
            self.queue.append(r)
        if r.webhook:  # the framing of its body broke, e.g. a bad chunk
            exc = Rejected(400, "unreadable_body", f"body could not be read: {detail}")
            self._reject(r, exc, None, close=True, v10=True)
        else:
            self._answer(r, 400, _error("bad_request", detail), b"", True, True, True)

    def _close_after_queue(self, linger: bool) -> None:
        self.closing = True
        if self.queue:
            last = self.queue[-1]
            last.close, last.linger = True, linger
        else:
            self._end(linger)

    def _drop_unfinished(self) -> None:
        """Forget a request whose body will not come: no answer is owed for it."""
        r = self.req
        self.req = None
        if r is not None and r.data is None and self.queue and self.queue[-1] is r:
            self.queue.pop()

    def _timed_out(self) -> None:
        phase = self.phase
        self.deadline = _NEVER
        r = self.req
        if phase == _BODY and r is not None and r.data is None:
            detail = f"body not received within {self.listener._read_timeout:g}s"
            self.req = None
            self.phase = _WAIT
            if r.webhook:
                self._reject(r, Rejected(408, "request_timeout", detail), None)
            else:
                self._answer(r, 408, _error("request_timeout", detail), b"", True, True)
        elif phase == _BODY:
            self._close_after_queue(linger=False)
        else:  # idle, headers that never end (slowloris), or the end of lingering
            self.closing = True
            if self.paused & _WRITE:
                self.transport.abort()  # its client has not read in all that time: nor will it
            else:
                self.transport.close()

    def shutdown(self) -> None:
        """The listener stops: answer what is owed (requests still arriving are not), close."""
        self._drop_unfinished()
        if self.queue:
            self._close_after_queue(linger=False)
        else:
            self.closing = True
            self.transport.close()

    # --- reading pauses ---------------------------------------------------------------------

    def _pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if self.paused or self.closed:
            return
        self.transport.resume_reading()
        # Time spent paused by us is not the client's: deadlines start again.
        if self.phase in (_IDLE, _HEAD):
            self.deadline = self.loop.time() + self.listener._idle_timeout
        elif self.phase == _BODY:
            self.deadline = self.loop.time() + self.listener._read_timeout


# --- the listener -----------------------------------------------------------------------------

_Route = tuple[int, Provider | None, str, str]  # kind, provider (None: detect), path, gateway name


class Listener:
    def __init__(
        self,
        config: ListenerConfig,
        providers: dict[str, Provider],
        writer: EventStore,
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
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._connections: set[_Connection] = set()
        self._throttled: set[_Connection] = set()
        self._stopping = False
        self._all_closed: asyncio.Future[None] | None = None
        self._reaper: asyncio.TimerHandle | None = None
        # Read on every request: plain attributes, not a walk through the config.
        self._max_body = config.max_body
        self._max_queue = config.max_queue
        self._low_water = config.max_queue // 2
        self._read_timeout = config.read_timeout
        self._idle_timeout = config.idle_timeout
        self._sweep_every = max(0.05, min(1.0, min(config.read_timeout, config.idle_timeout) / 5))
        # Gateways whose requests are accepted once check_auth passes: credentials are fixed for
        # the life of the process, so this is decided once.
        self._accepting = frozenset(
            name
            for name, provider in providers.items()
            if provider.auth_mode().verified or name in config.open_gateways
        )
        self._json_types: dict[str, bool] = {}  # is_json_content_type, per Content-Type seen
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

    @property
    def tls(self) -> bool:
        return self.config.tls_cert is not None

    async def start(self) -> None:
        config = self.config
        context = None
        if config.tls_cert is not None or config.tls_key is not None:
            if config.tls_cert is None or config.tls_key is None:
                raise TLSError("TLS needs both a certificate and its key (--tls-cert, --tls-key)")
            context = tls_context(config.tls_cert, config.tls_key)
        self._loop = loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if context is not None:
            # A client that never finishes its handshake is an idle one.
            tls = {"ssl": context, "ssl_handshake_timeout": config.idle_timeout}
        self._stopping = False
        self._server = await loop.create_server(
            lambda: _Connection(self),
            config.host,
            config.port,
            reuse_address=True,
            backlog=1024,
            **tls,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._reaper = loop.call_later(self._sweep_every, self._sweep)

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        self._stopping = True
        server.close()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for conn in list(self._connections):
            conn.shutdown()
        if self._connections:
            self._all_closed = self._loop.create_future()
            try:
                await asyncio.wait_for(self._all_closed, SHUTDOWN_S)
            except TimeoutError:
                for conn in list(self._connections):
                    conn.transport.abort()
        await server.wait_closed()

    @property
    def base_url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def url(self, gateway: str) -> str:
        return f"{self.base_url}/webhooks/{gateway}"

    # --- used by the connections ----------------------------------------------------------

    def _route(self, url: bytes) -> _Route:
        """The route of a URL that is not one of the exact paths: with a query, in absolute
        form, percent-encoded, a gateway's name in capitals, or no route at all."""
        if url.startswith(b"/"):
            raw = url.partition(b"?")[0].partition(b"#")[0]
        elif url == b"*":
            raw = url
        else:
            try:
                raw = httptools.parse_url(url).path or b"/"
            except httptools.HttpParserInvalidURLError:
                raise _BadRequest("cannot parse the URL") from None
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

    def _is_json(self, content_type: str) -> bool:
        known = self._json_types.get(content_type)
        if known is None:
            if len(self._json_types) > 64:  # senders use one or two; anyone else, uncached
                return is_json_content_type(content_type)
            known = self._json_types[content_type] = is_json_content_type(content_type)
        return known

    def _health(self) -> dict[str, Any]:
        error = self.writer.failing
        return {
            "status": "ok" if error is None else "degraded",
            "version": __version__,
            "events": self.hub.events,
            "store": "ok" if error is None else error,
            "uptime_s": round((self.clock() - self.started_at) / 1e6, 1),
        }

    def _check_auth(self, provider: Provider, headers: Headers, body: bytes) -> None:
        provider.check_auth(headers, body)
        if provider.name not in self._accepting:
            raise Rejected(
                401,
                "auth_required",
                f"{provider.title} has no credentials configured; unauthenticated webhooks are "
                "accepted only on a loopback bind (or with --insecure)",
            )

    def _throttle(self, conn: _Connection) -> None:
        conn._pause(_BACKPRESSURE)
        self._throttled.add(conn)

    def _unthrottle(self) -> None:
        throttled, self._throttled = self._throttled, set()
        for conn in throttled:
            conn._resume(_BACKPRESSURE)

    def _lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        self._throttled.discard(conn)
        if self._all_closed is not None and not self._connections and not self._all_closed.done():
            self._all_closed.set_result(None)

    def _sweep(self) -> None:
        """Close or answer the connections whose deadline has passed."""
        now = self._loop.time()
        for conn in [c for c in self._connections if c.deadline <= now]:
            # A connection we stopped reading is not late by its own doing.
            if not conn.paused & (_BACKPRESSURE | _PIPELINE) and not conn.closed:
                conn._timed_out()
        self._reaper = self._loop.call_later(self._sweep_every, self._sweep)
