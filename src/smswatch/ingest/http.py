"""The HTTP server under the webhook listener: an asyncio Protocol over httptools' parser (the one
uvicorn uses), on uvloop where the engine's loop is one (smswatch.loops), with TLS when given a
certificate. It owns framing, limits, timeouts and backpressure, and knows no gateway: what a
request means is up to a `Handler` (smswatch.ingest.webhooks), which the connection calls at three
points -- the head is in (`head`), the body is in (`body`), the body cannot be taken (`refused`)
-- and which answers through the `Request` it is handed.

Order of checks: the handler's on the head (path and method), then, for a request the handler
takes in, content type, declared size, Content-Encoding and Expect (headers only), then the body is
read under a time limit and handed to the handler. `Expect: 100-continue` gets `100 Continue` only
once the header checks pass; otherwise the final answer goes at once and the connection closes,
since the body may or may not follow. Any other expectation gets 417, as aiohttp answered it.

httptools does all the HTTP parsing; this module owns the connection:

- Keep-alive as HTTP/1.1 says (HTTP/1.0 only with `Connection: keep-alive`); a request with
  `Connection: close` is answered, then the connection closes.
- Pipelined requests are worked on at once, so they share group commits, and are answered in
  the order they came: each request takes its place in the connection's answer queue when its
  headers are in, and answers leave from the front only.
- Timeouts, checked by one sweep per server a fraction of the shortest timeout apart (the hot
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
  `HTTP/1.0 400 bad_request` and the connection closes; a request taken in whose body framing
  breaks after its headers passed (a bad chunk) gets the same status line with
  `unreadable_body`, through the handler. HTTP/1.0 because nothing said on that connection can
  be trusted after it, and an HTTP/1.0 answer tells the client the connection ends with it
  (aiohttp did the same).
- Bodies: 413 from Content-Length before anything is read, and as soon as a chunked body grows
  past the limit; gzip and deflate are decoded under the same limit (smswatch.ingest.codings).
- After 408, 413 or any answer that closes while a body may still be arriving, the connection
  reads and drops the rest for up to a second before closing, so the client reads the answer
  rather than a reset.
- Backpressure (`Backpressure`): when the handler's queue is past its limit, connections that
  fed it stop reading (the kernel's buffers then push back on the senders) until it is down to
  half. A connection also stops reading while 32 of its answers are owed, and while its own
  client does not read what is written to it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

import httptools

from smswatch.core.rejected import Rejected
from smswatch.ingest.addresses import local_url
from smswatch.ingest.codings import (
    content_coding,
    decode,
    is_form_content_type,
    is_json_content_type,
)
from smswatch.ingest.exchange import BadRequest, Handler, Headers, R, Request, error

log = logging.getLogger(__name__)

MAX_LINE = 8190  # bytes of the URL, and of one header's name and value
MAX_HEADERS = 128
MAX_HEAD = 64 * 1024  # bytes of request line and headers together
LINGER_S = 1.0  # after an answer that closes, how long the rest of a body is read and dropped
SHUTDOWN_S = 3.0  # on stop, requests waiting for a commit (milliseconds) get this long
PIPELINE_HIGH = 32  # answers owed on one connection before it stops reading
PIPELINE_LOW = 8


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body: int = 1024 * 1024
    read_timeout: float = 10.0  # for the body, once the headers are in
    idle_timeout: float = 15.0  # for headers and between keep-alive requests
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_queue: int = 4096  # stop reading requests while the handler has this many queued


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


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_get = dict.get  # the lower-case lookups of the hot path skip Headers.get's .lower()


class Backpressure:
    """Connections whose requests went into a handler's queue past `limit` stop reading until
    the queue is down to half: the handler holds them, and releases them all at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.low = limit // 2
        self.held: set[_Connection] = set()  # non-empty while some connection is held

    def hold(self, request: Request) -> None:
        """Read no more on the connection `request` came on."""
        conn = request.conn
        conn._pause(_BACKPRESSURE)
        self.held.add(conn)

    def release(self) -> None:
        held, self.held = self.held, set()
        for conn in held:
            conn._resume(_BACKPRESSURE)


# --- one connection ---------------------------------------------------------------------------

# What a connection's deadline is for.
_IDLE, _HEAD, _BODY, _WAIT, _LINGER = range(5)
_NEVER = float("inf")
# Why a connection is not reading (bits).
_BACKPRESSURE, _PIPELINE, _WRITE = 1, 2, 4


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: a closing answer is already queued."""


class _Connection(asyncio.Protocol):
    def __init__(self, server: Server[Any]) -> None:
        self.server = server
        self.handler = server.handler
        self.request_type = server.handler.request_type
        self.loop = server._loop
        self.parser = httptools.HttpRequestParser(self)
        # Bytes after a request that asked to close are dropped, not a parse error.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.remote: str | None = None
        self.tls = False
        self.queue: deque[Request] = deque()  # answers owed, in request order
        self.req: Request | None = None  # the request whose body is being read
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
        self.tls = self.server.tls
        self.server._connections.add(self)
        self.deadline = self.loop.time() + self.server._idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closing = True
        self.queue.clear()
        self.req = None
        self.server._lost(self)

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
            elif isinstance(cause, BadRequest):
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
        self.deadline = self.loop.time() + self.server._idle_timeout
        self.url = b""
        self.headers = Headers()
        self.header_count = self.head_size = self.head_raw = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_LINE:
            raise BadRequest(f"URL over {MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self.header_count += 1
        self.head_size += size
        if self.header_count > MAX_HEADERS:
            raise BadRequest(f"more than {MAX_HEADERS} headers")
        if size > MAX_LINE:
            raise BadRequest(f"a header over {MAX_LINE} bytes")
        if self.head_size > MAX_HEAD:
            raise BadRequest(f"headers over {MAX_HEAD} bytes")
        self.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        server = self.server
        parser = self.parser
        self.phase = _BODY
        self.deadline = self.loop.time() + server._read_timeout
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(f"HTTP/{version} is not supported")
        method = parser.get_method()
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive() and not upgrade
        headers = self.headers
        r = self.request_type(self, method, self.url, headers, keep_alive, version == "1.0")
        if upgrade:
            r.upgrade = True
        self.req = r
        queue = self.queue
        queue.append(r)
        if len(queue) >= PIPELINE_HIGH:
            self._pause(_PIPELINE)
        length = _get(headers, "content-length")
        r.content_length = int(length) if length is not None else None
        r.has_body = has_body = r.content_length != 0 and (
            length is not None or _get(headers, "transfer-encoding") is not None
        )
        taken = self.handler.head(r)
        if r.data is not None:  # refused from its head
            if self.closing:
                raise _Stop
            return
        if not taken:
            return
        r.taken = True
        r.content_type = content_type = _get(headers, "content-type")
        expect = _get(headers, "expect") if version == "1.1" else None
        try:
            if content_type is not None and not server._takes(r, content_type):
                kind = (
                    "a form (application/x-www-form-urlencoded) or JSON"
                    if r.form_or_json
                    else "a form (application/x-www-form-urlencoded)"
                    if r.form
                    else "JSON"
                )
                raise Rejected(
                    415, "unsupported_media_type", f"content type {content_type!r} is not {kind}"
                )
            length_n, limit = r.content_length, server._max_body
            if length_n is not None and length_n > limit:
                raise Rejected(
                    413,
                    "payload_too_large",
                    f"body of {length_n} bytes is over the {limit}-byte limit",
                )
            coding = _get(headers, "content-encoding")
            if coding is not None:
                r.encoding = content_coding(coding)
            if expect is not None and expect.lower() != "100-continue":
                raise Rejected(417, "expectation_failed", f"cannot meet Expect: {expect!r}")
        except Rejected as exc:
            # With Expect the client waits for our word before sending the body, or never sends
            # it: the connection cannot be reused either way.
            self._refused(r, exc, has_body and expect is not None)
            if self.closing:
                raise _Stop from None
            return
        if expect is not None and has_body:
            r.interim = _CONTINUE
            if queue[0] is r:
                self.flush()

    def on_body(self, chunk: bytes) -> None:
        r = self.req
        if r is None or r.data is not None:
            return  # answered from its headers: the body is dropped
        self.body_size += len(chunk)
        if self.body_size > self.server._max_body:
            self.body = []
            limit = self.server._max_body
            exc = Rejected(413, "payload_too_large", f"body is over the {limit}-byte limit")
            if r.taken:
                self._refused(r, exc)
            else:
                r.respond(413, error(exc.code, exc.detail), close=True, linger=True)
            raise _Stop
        if r.taken:
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
        elif r.taken:
            chunks = self.body
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.body = []
            self.body_size = 0
            if r.encoding is not None and body:
                try:
                    body = decode(body, r.encoding, self.server._max_body)
                except Rejected as exc:
                    self._refused(r, exc)
                    return
            self.handler.body(r, body)
        else:  # a route that reads no body: one sent anyway is dropped, not left for the next
            self.body = []
            self.body_size = 0
            self.handler.body(r, b"")

    # --- answers ----------------------------------------------------------------------------

    def _refused(self, r: Request, exc: Rejected, close: bool = False) -> None:
        self.handler.refused(r, exc.status, exc.code, exc.detail, close)

    def flush(self) -> None:
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
        self.deadline = self.loop.time() + self.server._idle_timeout

    def _end(self, linger: bool) -> None:
        """Close after the answers written so far."""
        self.closing = True
        if self.closed:
            return
        if linger and not self.server._stopping:
            self.phase = _LINGER
            self.deadline = self.loop.time() + LINGER_S
            self.server.backpressure.held.discard(self)
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
            r = self.request_type(self, b"", self.url, self.headers, False, True)
            self.queue.append(r)
        r.broken = True
        if r.taken:  # the framing of its body broke, e.g. a bad chunk
            exc = Rejected(400, "unreadable_body", f"body could not be read: {detail}")
            self._refused(r, exc, close=True)
        else:
            r.respond(400, error("bad_request", detail), b"", True, True)

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
            detail = f"body not received within {self.server._read_timeout:g}s"
            self.req = None
            self.phase = _WAIT
            if r.taken:
                self._refused(r, Rejected(408, "request_timeout", detail))
            else:
                r.respond(408, error("request_timeout", detail), b"", True, True)
        elif phase == _BODY:
            self._close_after_queue(linger=False)
        else:  # idle, headers that never end (slowloris), or the end of lingering
            self.closing = True
            if self.paused & _WRITE:
                self.transport.abort()  # its client has not read in all that time: nor will it
            else:
                self.transport.close()

    def shutdown(self) -> None:
        """The server stops: answer what is owed (requests still arriving are not), close."""
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
            self.deadline = self.loop.time() + self.server._idle_timeout
        elif self.phase == _BODY:
            self.deadline = self.loop.time() + self.server._read_timeout


# --- the server -------------------------------------------------------------------------------


class Server(Generic[R]):
    """Listens on `config`'s address and hands each request to `handler`."""

    def __init__(
        self, config: ServerConfig, handler: Handler[R], backpressure: Backpressure
    ) -> None:
        self.config = config
        self.handler = handler
        self.backpressure = backpressure
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._all_closed: asyncio.Future[None] | None = None
        self._reaper: asyncio.TimerHandle | None = None
        # Read on every request: plain attributes, not a walk through the config.
        self._max_body = config.max_body
        self._read_timeout = config.read_timeout
        self._idle_timeout = config.idle_timeout
        self._sweep_every = max(0.05, min(1.0, min(config.read_timeout, config.idle_timeout) / 5))
        self._json_types: dict[str, bool] = {}  # is_json_content_type, per Content-Type seen

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
        return local_url("https" if self.tls else "http", self.config.host, self.port)

    # --- used by the connections ----------------------------------------------------------

    def _takes(self, r: Request, content_type: str) -> bool:
        """Whether a request's content type is one its handler takes (`form`, `form_or_json`,
        else JSON)."""
        if r.form_or_json:
            return is_form_content_type(content_type) or self._is_json(content_type)
        return is_form_content_type(content_type) if r.form else self._is_json(content_type)

    def _is_json(self, content_type: str) -> bool:
        known = self._json_types.get(content_type)
        if known is None:
            if len(self._json_types) > 64:  # senders use one or two; anyone else, uncached
                return is_json_content_type(content_type)
            known = self._json_types[content_type] = is_json_content_type(content_type)
        return known

    def _lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        self.backpressure.held.discard(conn)
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
