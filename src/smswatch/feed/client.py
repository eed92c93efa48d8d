"""`RemoteSource`: the data-source seam over the feed, for `smswatch attach`.

It connects in the background and keeps reconnecting with backoff; every state change is an
update (`Connection`) so the UI can say plainly whether what it shows is live. After every
(re)connect the server's snapshot arrives as an update too, and the UI starts over from it.
A refused token is final: retrying would not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from smswatch.campaigns.analysis import CampaignView
from smswatch.core.campaigns import Summary
from smswatch.core.domain import FUNNEL, MessageState, State
from smswatch.core.figures import FailureGroup
from smswatch.core.live import Counters
from smswatch.core.records import Rejection, StoredEvent
from smswatch.exports.records import write_jsonl
from smswatch.exports.suppression import write_entries
from smswatch.feed.protocol import (
    SERVER_FRAME,
    DeltaFrame,
    Hello,
    Query,
    Reply,
    Resync,
    SnapshotFrame,
    decode_result,
)
from smswatch.live.datasource import (
    Connection,
    Forwards,
    MessageDetail,
    RecipientDetail,
    Snapshot,
    SourceInfo,
    SourceUnavailable,
    Stuck,
    Update,
)
from smswatch.reconcile.reconciler import PollResult
from smswatch.store.queries.paging import paged

log = logging.getLogger(__name__)

BACKOFF = (0.5, 1, 2, 4, 8, 15)  # seconds between attempts; the last repeats
QUERY_TIMEOUT = 15.0


def empty_snapshot(info: SourceInfo) -> Snapshot:
    counters = Counters(
        events=0,
        duplicates=0,
        rejected=0,
        rejected_by_code={},
        funnel=dict.fromkeys(FUNNEL, 0),
        messages=0,
        in_flight=0,
        conflicts=0,
        rate=(),
        last_request_at=None,
        last_event_at=None,
        store_error=None,
        started_at=0,
    )
    return Snapshot(counters, [], [], [], info)


class RemoteSource:
    def __init__(self, url: str, token: str, backoff: tuple[float, ...] = BACKOFF) -> None:
        self.url = url
        self.token = token
        self.backoff = backoff
        self.info = SourceInfo(label=url, db_path=None, read_only=True)
        self.connection = Connection("connecting")
        self._callbacks: list[Callable[[Update], None]] = []
        self._ws: ClientConnection | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    # --- the seam -----------------------------------------------------------------------------

    async def open(self) -> Snapshot:
        """Returns at once with an empty picture; the server's snapshot follows as an update."""
        self._task = asyncio.create_task(self._run(), name="smswatch-attach")
        return empty_snapshot(self.info)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(self, callback: Callable[[Update], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def messages(
        self, query: str = "", failed_only: bool = False, limit: int = 200
    ) -> list[MessageState]:
        return await self._call("messages", query=query, failed_only=failed_only, limit=limit)

    async def message(
        self, message_id: str, query: str = "", failed_only: bool = False, limit: int = 5000
    ) -> MessageDetail | None:
        return await self._call(
            "message", message_id=message_id, query=query, failed_only=failed_only, limit=limit
        )

    async def recipient(self, message_id: str, recipient: str) -> RecipientDetail | None:
        return await self._call("recipient", message_id=message_id, recipient=recipient)

    async def failures(self, limit: int = 20) -> list[FailureGroup]:
        return await self._call("failures", limit=limit)

    async def stuck(self, deadlines: dict[State, int], now: int, limit: int = 20) -> Stuck:
        return await self._call(
            "stuck", deadlines={s.value: v for s, v in deadlines.items()}, now=now, limit=limit
        )

    async def rejections(self, limit: int = 50) -> list[Rejection]:
        return await self._call("rejections", limit=limit)

    async def events(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self._call("events", after=after, limit=limit)

    async def forwards(self, events: list[int]) -> Forwards:
        if not events:
            return {}
        return await self._call("forwards", events=list(events))

    async def resend(self, events: list[int] | None = None, *, failed_only: bool = True) -> int:
        raise SourceUnavailable(f"a viewer of {self.url} is read-only: re-send on the server")

    async def campaigns(self) -> list[Summary]:
        return await self._call("campaigns")

    async def campaign(
        self, name: str, deadlines: dict[State, int], now: int
    ) -> CampaignView | None:
        return await self._call(
            "campaign", name=name, deadlines={s.value: v for s, v in deadlines.items()}, now=now
        )

    async def campaign_messages(
        self, name: str, failed_only: bool = False, limit: int = 500
    ) -> list[MessageState]:
        return await self._call(
            "campaign_messages", name=name, failed_only=failed_only, limit=limit
        )

    async def export_suppression(self, path: Path, campaign: str | None = None) -> int:
        """The server's list, written here."""
        return await write_entries(await self._call("suppressed", campaign=campaign), path)

    def run_campaign(self) -> str | None:
        return None

    async def poll_now(self, message_id: str) -> PollResult:
        raise SourceUnavailable(f"a viewer of {self.url} is read-only: poll on the server")

    async def start_campaign(self, name: str | None) -> None:
        raise SourceUnavailable(
            f"a viewer of {self.url} cannot start campaigns: use --campaign or the palette "
            "where smswatch serve runs"
        )

    async def export(self, path: Path) -> int:
        """The server's events, a page at a time, into a local file."""
        with path.open("w", encoding="utf-8") as out:
            return await write_jsonl(paged(self.events), out)

    # --- the connection -----------------------------------------------------------------------

    def _emit(self, update: Update) -> None:
        if isinstance(update, Connection):
            self.connection = update
        for callback in list(self._callbacks):
            callback(update)

    async def _run(self) -> None:
        attempt = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            self._emit(Connection("connecting" if attempt == 0 else "reconnecting", "connecting…"))
            try:
                async with connect(
                    self.url, additional_headers=headers, compression=None, max_size=None
                ) as ws:
                    self._ws = ws
                    attempt = 0
                    await self._receive(ws)
                detail = "the server closed the connection"
            except InvalidStatus as exc:
                if exc.response.status_code == 401:
                    self._emit(
                        Connection("refused", "wrong or missing feed token (see serve's banner)")
                    )
                    return
                detail = f"HTTP {exc.response.status_code} from the server"
            except InvalidURI as exc:
                self._emit(Connection("refused", f"not a feed address: {exc}"))
                return
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                detail = _reason(exc)
            finally:
                self._ws = None
                self._fail_pending()
            delay = self.backoff[min(attempt, len(self.backoff) - 1)]
            attempt += 1
            self._emit(Connection("reconnecting", detail, delay))
            await asyncio.sleep(delay)

    async def _receive(self, ws: ClientConnection) -> None:
        async for message in ws:
            try:
                frame = SERVER_FRAME.validate_json(message)
            except ValidationError as exc:
                log.warning(
                    "feed: ignoring a frame that does not parse: %s", exc.errors()[0]["msg"]
                )
                continue
            if isinstance(frame, DeltaFrame):
                self._emit(frame.data)
            elif isinstance(frame, SnapshotFrame):
                self.info = frame.data.info or self.info
                self._emit(frame.data)
                self._emit(Connection("live", f"connected to {self.url}"))
            elif isinstance(frame, Reply):
                self._settle(frame)
            elif isinstance(frame, Hello):
                self.info = frame.info
            elif isinstance(frame, Resync):
                self._emit(Connection("live", f"resyncing: {frame.reason}"))

    # --- queries --------------------------------------------------------------------------------

    async def _call(self, method: str, **params: Any) -> Any:
        ws = self._ws
        if ws is None or not self.connection.live:
            raise SourceUnavailable(f"not connected to {self.url} ({self.connection.detail})")
        query_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[query_id] = (method, future)
        try:
            await ws.send(Query(id=query_id, method=method, params=params).model_dump_json())
            return await asyncio.wait_for(future, QUERY_TIMEOUT)
        except (ConnectionClosed, TimeoutError) as exc:
            raise SourceUnavailable(f"{method}: {_reason(exc)}") from None
        finally:
            self._pending.pop(query_id, None)

    def _settle(self, reply: Reply) -> None:
        method, future = self._pending.get(reply.id, (None, None))
        if future is None or future.done():
            return
        if not reply.ok:
            future.set_exception(SourceUnavailable(reply.error or "query failed"))
            return
        try:
            future.set_result(decode_result(method, reply.result))
        except ValidationError as exc:
            future.set_exception(
                SourceUnavailable(f"{method}: unreadable answer: {exc.errors()[0]['msg']}")
            )

    def _fail_pending(self) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(SourceUnavailable("the connection was lost"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is serve running?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionClosed):
        return "connection lost"
    return str(exc) or type(exc).__name__
