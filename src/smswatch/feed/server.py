"""The feed server: the engine's live state over WebSocket, for `smswatch attach`.

It listens on its own port (the webhook port faces the gateways; this one exposes everything)
and requires a bearer token, compared in constant time during the handshake. Each client gets
`hello` and a `snapshot`, then one `delta` per hub tick, and may send queries on the same
connection.

A slow or stuck viewer never slows ingest: the hub hands each delta over without waiting (it is
encoded once, for everyone), each client has a bounded queue, and a client whose queue fills up
loses what was queued and is told to resync; a fresh snapshot follows once it reads again.

The server knows the engine only as a `FeedHost`: its deltas, its counters, its queries and how
it describes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from smswatch import __version__
from smswatch.core.live import Counters, Delta
from smswatch.feed.protocol import (
    MAX_LIMIT,
    METHODS,
    QUERY,
    DeltaFrame,
    Hello,
    Reply,
    Resync,
    SnapshotFrame,
    encode_result,
)
from smswatch.ingest.addresses import local_url
from smswatch.source.api import SourceInfo

if TYPE_CHECKING:
    from smswatch.live.datasource import StoreQueries

log = logging.getLogger(__name__)

QUEUE_FRAMES = 256  # per client: ~25 s of deltas at 10 a second …
QUEUE_BYTES = 8 * 1024 * 1024  # … or this much text, whichever comes first (busy deltas are big)
MAX_QUERY_BYTES = 64 * 1024
SNAPSHOT = object()  # queued marker: build and send a fresh snapshot here


def token_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".feed-token")


def load_or_create_token(db_path: Path) -> str:
    """The token kept beside the database, created on first use, so a restarted `serve` keeps
    accepting the viewers it had."""
    path = token_path(db_path)
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


class FeedHost(Protocol):
    """What the feed needs of the engine it serves (smswatch.live.engine.Engine)."""

    def info(self) -> SourceInfo:
        """Where the engine runs: its database and gateways (the feed sets label and
        read_only)."""

    async def open_queries(self) -> StoreQueries:
        """The seam's queries over a reader of the feed's own, which the feed closes."""

    def subscribe(
        self, callback: Callable[[Delta], None], messages: Callable[[], bool]
    ) -> Callable[[], None]:
        """`callback` gets every hub delta; `messages` says whether it wants the changed
        messages in them now. Returns an unsubscribe function."""

    async def counters(self) -> Counters: ...


class _Client:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_FRAMES)
        self.queued_bytes = 0
        self.lock = asyncio.Lock()  # one sender at a time: the writer loop or a query reply
        self.resyncs = 0
        self.queries: set[asyncio.Task[None]] = set()  # answers being prepared

    def push(self, frame: str) -> None:
        if self.queue.full() or self.queued_bytes + len(frame) > QUEUE_BYTES:
            # Behind by a whole queue: drop it and start over from a snapshot.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queued_bytes = 0
            self.resyncs += 1
            self.queue.put_nowait(Resync(reason="the viewer fell behind").model_dump_json())
            self.queue.put_nowait(SNAPSHOT)
            return
        self.queue.put_nowait(frame)
        self.queued_bytes += len(frame)

    async def next_frame(self) -> Any:
        frame = await self.queue.get()
        if isinstance(frame, str):
            self.queued_bytes -= len(frame)
        return frame

    async def send(self, frame: str) -> None:
        async with self.lock:
            await self.ws.send(frame)


class FeedServer:
    def __init__(self, host: FeedHost, bind: str, port: int, token: str) -> None:
        self.engine = host
        self.host = bind
        self.port = port
        self.token = token
        self.clients: set[_Client] = set()
        self._queries: StoreQueries | None = None
        self._server: Server | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return local_url("ws", self.host, self.port)

    @property
    def queries(self) -> StoreQueries:
        assert self._queries is not None, "start() first"
        return self._queries

    def info(self) -> SourceInfo:
        return replace(self.engine.info(), label=self.url, read_only=True)

    async def start(self) -> None:
        self._queries = await self.engine.open_queries()
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._check_token,
                compression=None,
                max_size=MAX_QUERY_BYTES,
                server_header=f"smswatch/{__version__}",
            )
        except BaseException:
            await self.queries.reader.close()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._unsubscribe = self.engine.subscribe(
            self._on_delta, messages=lambda: bool(self.clients)
        )

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.queries.reader.close()

    # --- handshake ------------------------------------------------------------------------------

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not given and "token=" in request.path:
            given = request.path.split("token=", 1)[1].split("&", 1)[0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            log.info(
                "feed: refused a viewer from %s (wrong or missing token)", connection.remote_address
            )
            return connection.respond(HTTPStatus.UNAUTHORIZED, "wrong or missing feed token\n")
        return None

    # --- fan-out ----------------------------------------------------------------------------------

    def _on_delta(self, delta: Delta) -> None:
        if not self.clients:
            return
        # Viewers draw transitions, not raw bodies (a timeline asks for those): send them slim.
        slim = tuple(replace(t, event=replace(t.event, payload="")) for t in delta.transitions)
        frame = DeltaFrame(data=replace(delta, transitions=slim)).model_dump_json()
        for client in self.clients:
            client.push(frame)

    async def _snapshot(self) -> str:
        snap = await self.queries.recent(await self.engine.counters(), self.info())
        return SnapshotFrame(data=snap).model_dump_json()

    # --- one viewer ------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        try:
            await client.send(Hello(server=__version__, info=self.info()).model_dump_json())
            await client.send(await self._snapshot())
        except ConnectionClosed:
            return
        self.clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            async for message in ws:
                task = asyncio.create_task(self._answer(client, message))
                client.queries.add(task)
                task.add_done_callback(client.queries.discard)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for task in client.queries:
                task.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await client.next_frame()
                if frame is SNAPSHOT:
                    frame = await self._snapshot()
                await client.send(frame)

    async def _answer(self, client: _Client, message: str | bytes) -> None:
        try:
            query = QUERY.validate_json(message)
        except ValidationError as exc:
            await self._reply(
                client, Reply(id=-1, ok=False, error=f"not a query: {exc.errors()[0]['msg']}")
            )
            return
        if query.method not in METHODS:
            await self._reply(
                client, Reply(id=query.id, ok=False, error=f"unknown method {query.method!r}")
            )
            return
        params_model, _ = METHODS[query.method]
        try:
            params = params_model.model_validate(query.params).model_dump()
        except ValidationError as exc:
            await self._reply(
                client,
                Reply(id=query.id, ok=False, error=f"bad parameters: {exc.errors()[0]['msg']}"),
            )
            return
        if "limit" in params:
            params["limit"] = max(0, min(params["limit"], MAX_LIMIT))
        try:
            value = await getattr(self.queries, query.method)(**params)
            reply = Reply(id=query.id, ok=True, result=encode_result(query.method, value))
        except Exception as exc:
            log.exception("feed query %s failed", query.method)
            reply = Reply(id=query.id, ok=False, error=f"query failed: {exc}")
        await self._reply(client, reply)

    async def _reply(self, client: _Client, reply: Reply) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.send(reply.model_dump_json())
