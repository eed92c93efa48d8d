"""The local data source: the seam of smswatch.source.api answered in this process.

`StoreQueries` answers the seam's bounded queries from a database; `LocalSource` adds the live
updates of the engine running here (on its own thread). The feed server (smswatch.feed.server)
runs the same `StoreQueries` for its viewers, so every screen works the same attached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from smswatch.campaigns.analysis import CampaignView
from smswatch.campaigns.book import CampaignBook
from smswatch.campaigns.rule import own_name
from smswatch.core.campaigns import Summary
from smswatch.core.domain import MessageState, State
from smswatch.core.figures import FailureGroup
from smswatch.core.live import Counters
from smswatch.core.records import Rejection, StoredEvent
from smswatch.exports.records import write_jsonl
from smswatch.exports.suppression import Suppressed, suppression_list, write_entries
from smswatch.source.api import (
    Forwards,
    MessageDetail,
    RecipientDetail,
    Snapshot,
    SourceInfo,
    SourceUnavailable,
    Stuck,
    Update,
)
from smswatch.store import StoreReader, open_reader
from smswatch.timefmt import now_us

if TYPE_CHECKING:
    # Only the local monitor builds a LocalSource: the engine stays out of an attached one.
    from smswatch.core.reconciling import PollResult
    from smswatch.live.thread import EngineThread

RECENT = 300  # messages and events a snapshot carries
T = TypeVar("T")


class StoreQueries:
    """The bounded queries of the seam, answered from a database.

    The state tables may lag the log by one checkpoint (the SQLite writer). Where the engine runs
    in this process, `settle` asks its writer to checkpoint first, so that a screen opened or a
    filter typed right after a webhook already shows it, as the live panels did.
    """

    def __init__(
        self,
        reader: StoreReader | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
        forwards: Callable[[list[int]], Awaitable[Forwards]] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self._reader = reader
        self._settle = settle
        self._forwards = forwards  # the engine's forwarder, if it forwards
        # Campaigns for the live screens, kept in memory and brought up to date a little at a
        # time: read whole, a 100,000-recipient campaign took a quarter of a second.
        self.book = CampaignBook(self.settled, clock)

    async def settled(self) -> StoreReader:
        """The reader, once the state tables have caught up with the log."""
        if self._settle is not None:
            await self._settle()
        return self.reader

    @property
    def reader(self) -> StoreReader:
        assert self._reader is not None, "open() first"
        return self._reader

    async def recent(self, counters: Counters, info: SourceInfo | None) -> Snapshot:
        reader = await self.settled()
        return Snapshot(
            counters=counters,
            messages=await reader.recent_messages(RECENT),
            events=await reader.recent_events(RECENT),
            rejections=await reader.quarantine(50),
            info=info,
        )

    async def messages(
        self, query: str = "", failed_only: bool = False, limit: int = 200
    ) -> list[MessageState]:
        reader = await self.settled()
        return await reader.search_messages(query, limit, failed_only=failed_only)

    async def message(
        self, message_id: str, query: str = "", failed_only: bool = False, limit: int = 5000
    ) -> MessageDetail | None:
        reader = await self.settled()
        msg = await reader.message(message_id)
        if msg is None:
            return None
        recipients = await reader.recipients(
            message_id, text=query or None, failed_only=failed_only, limit=limit + 1
        )
        shown_of = len(recipients)
        if shown_of > limit:
            recipients = recipients[:limit]
            if not query and not failed_only:
                shown_of = await reader.count_recipients(message_id)
        return MessageDetail(msg, recipients, shown_of, await reader.latency(message_id))

    async def recipient(self, message_id: str, recipient: str) -> RecipientDetail | None:
        reader = await self.settled()
        rec = await reader.recipient(message_id, recipient)
        if rec is None:
            return None
        return RecipientDetail(
            rec,
            await reader.message(message_id),
            await reader.timeline(message_id, recipient),
        )

    async def failures(self, limit: int = 20) -> list[FailureGroup]:
        return await (await self.settled()).failures(limit)

    async def stuck(self, deadlines: dict[State, int], now: int, limit: int = 20) -> Stuck:
        reader = await self.settled()
        return Stuck(
            await reader.count_stuck(deadlines, now),
            await reader.stuck(deadlines, now, limit),
        )

    async def rejections(self, limit: int = 50) -> list[Rejection]:
        return await self.reader.quarantine(limit)

    async def events(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with an id above `after`, in storage order (pages of an export)."""
        return await self.reader.events_after(after, limit)

    async def forwards(self, events: list[int]) -> Forwards:
        if self._forwards is None or not events:
            return {}
        return await self._forwards(events)

    async def campaigns(self) -> list[Summary]:
        return await self.book.summaries()

    async def campaign(
        self, name: str, deadlines: dict[State, int], now: int
    ) -> CampaignView | None:
        view: CampaignView | None = await self.book.view(name, now, deadlines)
        return view

    async def campaign_messages(
        self, name: str, failed_only: bool = False, limit: int = 500
    ) -> list[MessageState]:
        ids = await self.book.message_ids(name, failed_only, limit)
        if not ids:
            return []
        found = {m.message_id: m for m in await self.reader.messages_of(ids)}
        return [found[i] for i in ids if i in found]

    async def suppressed(self, campaign: str | None = None) -> list[Suppressed]:
        reader = await self.settled()
        sel = None
        if campaign is not None:
            summary = await reader.campaign(campaign)
            if summary is None:
                raise LookupError(f"no campaign {campaign!r}")
            sel = summary.selector
        return await suppression_list(reader, sel)

    async def export_suppression(self, path: Path, campaign: str | None = None) -> int:
        return await write_entries(await self.suppressed(campaign), path)


class LocalSource(StoreQueries):
    """The engine running in this process (on its own thread) and its database."""

    def __init__(self, engine: EngineThread) -> None:
        config = engine.engine.config
        super().__init__(forwards=self._engine_forwards, clock=config.clock)
        self.engine = engine
        self.info = engine.engine.info()

    async def open(self) -> Snapshot:
        self._reader = await open_reader(self.engine.engine.config.db_path)
        writer = self.engine.engine.writer
        self._settle = lambda: asyncio.wrap_future(writer.settle())
        hub = self.engine.engine.hub
        counters = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(hub.current(), self.engine.loop)
        )
        return await self.recent(counters, self.info)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    def subscribe(self, callback: Callable[[Update], None]) -> Callable[[], None]:
        return self.engine.engine.hub.subscribe(callback, asyncio.get_running_loop())

    async def _on_engine(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine's loop (where the forwarder lives) and wait for it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.engine.loop))

    async def _engine_forwards(self, events: list[int]) -> Forwards:
        forwarder = self.engine.engine.forwarder
        if forwarder is None:
            return {}
        return await self._on_engine(forwarder.forwards(events))

    async def resend(self, events: list[int] | None = None, *, failed_only: bool = True) -> int:
        forwarder = self.engine.engine.forwarder
        if forwarder is None:
            raise SourceUnavailable("this monitor does not forward (--forward-to)")
        return await self._on_engine(forwarder.resend(events, failed_only=failed_only))

    async def export(self, path: Path) -> int:
        with path.open("w", encoding="utf-8") as out:
            return await write_jsonl(self.reader.iter_events(), out, reader=self.reader)

    def run_campaign(self) -> str | None:
        return self.engine.engine.campaigns.active

    async def poll_now(self, message_id: str) -> PollResult:
        reconciler = self.engine.engine.reconciler
        if reconciler is None:
            raise SourceUnavailable(
                "no gateway API key: start smswatch with --lisoloo-app-key or "
                "--yebolink-api-key to poll the gateways"
            )
        return await self._on_engine(reconciler.poll_now(message_id))

    async def start_campaign(self, name: str | None) -> None:
        # A plain attribute the writer's thread reads at each batch: every message first
        # stored after this returns joins it.
        try:
            self.engine.engine.campaigns.active = own_name(name) if name else None
        except ValueError as exc:
            raise SourceUnavailable(str(exc)) from None
