"""The seam between the HTTP server (smswatch.ingest.http) and what handles its requests: a
`Request` carries one request from its head to its answer, a `Handler` is told when its head and
its body are in and answers through it, now or once a commit is done. Handlers never see the
parser, the socket or the answer queue; the server never sees what a request is for.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httptools
import pydantic_core

if TYPE_CHECKING:
    from smswatch.ingest.http import _Connection

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


def error(code: str, detail: str) -> dict[str, str]:
    """The body of every answer that refuses a request."""
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


class BadRequest(Exception):
    """Raised in a parser callback, the handler's `head` included: the request cannot be read
    (answered 400, then close)."""


def target_path(target: bytes) -> bytes:
    """The path of a request target, still percent-encoded: without its query, also in
    absolute form. Raises BadRequest if the target is not a URL."""
    if target.startswith(b"/"):
        return target.partition(b"?")[0].partition(b"#")[0]
    if target == b"*":
        return target
    try:
        return httptools.parse_url(target).path or b"/"
    except httptools.HttpParserInvalidURLError:
        raise BadRequest("cannot parse the URL") from None


# --- one request, and what handles it ---------------------------------------------------------


class Request:
    """One request from its head to its answer: what a handler reads of it, and its place in its
    connection's answer queue. A handler answers it once, with `respond` (or `refuse`, from the
    head), now or later (once a commit is done)."""

    # Defaults on the class: a request sets only what differs (this is made per request).
    data: bytes | None = None  # the answer, once known
    linger = False  # close only after reading what is left of the body for a moment
    interim: bytes | None = None  # 100 Continue, sent when this request is first in line
    broken = False  # its framing broke: answered as HTTP/1.0
    taken = False  # the handler took it in: its body is checked, its failures go to `refused`
    upgrade = False  # it asks for another protocol (never granted)
    has_body = False  # a body follows the head
    content_length: int | None = None
    content_type: str | None = None  # read once the handler takes the request in
    form = False  # the handler takes a form body (set in `head`): its content type is held to that
    form_or_json = False  # ... or either, told by its content type (set in `head`)
    encoding: str | None = None

    def __init__(
        self,
        conn: _Connection,
        method: bytes,
        target: bytes,
        headers: Headers,
        keep_alive: bool,
        v10: bool,
    ) -> None:
        self.conn = conn
        self.method = method
        self.target = target  # as sent: the path (percent-encoded) and any query
        self.headers = headers
        self.close = not keep_alive  # the connection closes after the answer
        self.v10 = v10
        self.head_only = method == b"HEAD"  # answered without its body

    @property
    def peer(self) -> str | None:
        """The client's address."""
        return self.conn.remote

    @property
    def scheme(self) -> str:
        return "https" if self.conn.tls else "http"

    @property
    def host(self) -> str | None:
        """The Host header: with `scheme` and `target`, the URL the client asked for."""
        return _get(self.headers, "host")

    @property
    def query(self) -> bytes:
        return self.target.partition(b"?")[2].partition(b"#")[0]

    def url(self, base: str | None = None) -> str:
        """The URL the client called: `base` (a public URL, where a proxy or tunnel stands in
        front) or else scheme and Host, then the path and query exactly as sent. Bytes that
        are not UTF-8 survive as surrogates, so encoding it back with `surrogateescape` gives
        the target's bytes again."""
        target = self.target
        if not target.startswith(b"/"):  # absolute form: its path and query only
            scheme, _, rest = target.partition(b"://")
            target = b"/" + rest.partition(b"/")[2] if scheme and rest else b"/"
        path = target.partition(b"#")[0].decode("utf-8", "surrogateescape")
        if base is None:
            base = f"{self.scheme}://{self.host or ''}"
        return base + path

    def refuse(self, status: int, code: str, detail: str, headers: bytes = b"") -> None:
        """Answer from its head a request the handler does not take in; its body, if any, is
        dropped."""
        has_body = self.has_body
        # With Expect: 100-continue the body may never come: the connection cannot be reused.
        close = has_body and (_get(self.headers, "expect") is not None or code == "bad_request")
        # Closing (asked for, or as above) while a body may be arriving: read it out first.
        self.respond(status, error(code, detail), headers, close, has_body)

    def respond(
        self,
        status: int,
        payload: dict[str, Any],
        headers: bytes = b"",
        close: bool = False,
        linger: bool = False,
    ) -> None:
        """Set the answer: `status`, a JSON body and any `headers` (whole lines, CRLF-ended).
        `close` closes the connection after it, reading out what is left of the body first if
        `linger`. Sent (with any answers ready after it) once it is first in line."""
        conn = self.conn
        close = close or self.close
        body = _json(payload)
        connection = _CLOSE if close else _KEEP_ALIVE_10 if self.v10 else b""
        self.data = b"%s%d\r\n%s%s\r\n%s" % (
            (_HEAD10 if self.broken else _HEAD11)[status],
            len(body),
            headers,
            connection,
            b"" if self.head_only else body,
        )
        self.close = close
        self.linger = linger
        if close:
            conn.closing = True
        queue = conn.queue
        if queue and queue[0] is self:
            if len(queue) == 1:
                conn.flush()
            elif not conn.flush_soon:
                # Pipelined: the answers after this one are often completed by the same commit,
                # in this same turn of the loop. One write for all of them, a moment later.
                conn.flush_soon = True
                conn.loop.call_soon(conn.flush)


R = TypeVar("R", bound=Request)


class Handler(Protocol[R]):
    """What the server calls for each request; everything it knows of what requests mean."""

    # Made for each request: a Request, or a subclass with room for the handler's own notes.
    request_type: type[R]

    def head(self, request: R) -> bool:
        """The head is in. Refuse the request (`request.refuse`), or return True to take it in:
        its body is then held to the content-type, size, encoding and Expect checks, decoded,
        and handed to `body`, and a failure of any of those goes to `refused`. False leaves it
        unchecked: its body is read but not handed over: `body` gets b"" to answer it (a health
        check, say)."""
        ...

    def body(self, request: R, body: bytes) -> None:
        """The body is in: answer, now or later (the answers of a connection still leave in
        the order of its requests)."""
        ...

    def refused(self, request: R, status: int, code: str, detail: str, close: bool = False) -> None:
        """A request taken in cannot be: its body is too large, too slow, in an encoding that
        cannot be read, or not JSON (not a form, for a request whose handler set `form`; neither,
        for one whose handler set `form_or_json`).
        Answer it with this error, closing the connection after it if `close`."""
        ...
