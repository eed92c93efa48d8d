"""The store seam: what the rest of smswatch may ask of a store, whichever the back end.

A `Backend` is chosen once from `--db` (store/__init__.py `backend_for`): a path is SQLite, a
`postgresql://` URL is PostgreSQL. It is the only place that knows which; it makes the writer
(`EventStore`), readers (`StoreReader`), the forwarding `Outbox` and, where several instances
share the database, a `Lease`. The reader is a union of narrow query protocols, so that each
consumer names the one it needs: the TUI's data source `MessageQueries` and `FigureQueries`,
the campaign book `CampaignBookQueries`, campaign reports `CampaignReportQueries`, the reconciler
`ReconcileQueries`, the exports `ExportQueries`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from smswatch.campaigns.rule import CampaignRule
from smswatch.core import forwarding
from smswatch.core.campaigns import BURST_GAP_US, CostRow, Selector, Series, Summary
from smswatch.core.domain import Event, MessageState, RecipientState, State
from smswatch.core.figures import FailureGroup, Latency, Totals
from smswatch.core.forwarding import Attempt, Forward, Job, Target, TargetStatus
from smswatch.core.live import Commit, MessageChanges, Stored
from smswatch.core.records import Rejection, StoredEvent
from smswatch.timefmt import now_us


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """How a writer commits and whom it tells. Each back end takes the fields that apply to
    it and ignores the others (marked below)."""

    durability: str = "full"  # "full": synced at every commit; "normal": may lose the last ones
    max_db_bytes: int | None = None  # a cap on the database's size: above it, answer 503
    max_batch: int = 1000  # requests committed in one transaction at most
    quarantine_keep: int = 500  # rejected requests kept for the TUI
    quarantine_body_max: int = 64 * 1024  # bytes of a rejected body kept
    on_commit: Callable[[Commit], None] | None = None  # after every batch (the hub)
    on_health: Callable[[str | None], None] | None = None  # the store failing (why) or well
    clock: Callable[[], int] = now_us
    campaigns: CampaignRule | None = None  # tags new messages with the run's campaign
    # SQLite only:
    busy_timeout_ms: int = 5000
    checkpoint_interval: float = 1.0  # seconds between checkpoints of the state file
    checkpoint_dirty: int = 20_000  # changed rows that make a checkpoint due sooner
    commit_window: float = 0  # seconds a busy writer waits for more requests before a commit
    # PostgreSQL only:
    connect_timeout: float = 5.0
    # Forward rows added in each event's own transaction (SQLite's outbox walks the log).
    forward_targets: Sequence[Target] = ()


class EventStore(Protocol):
    """The single writer of a process: group commit, futures resolved after COMMIT."""

    failing: str | None  # why the store cannot commit now, or None
    stored: int  # events this process committed
    duplicates: int  # duplicates this process answered

    @property
    def depth(self) -> int: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def drain(self) -> None: ...
    async def submit(self, events: Sequence[Event]) -> list[Stored]: ...
    def submit_nowait(self, events: Sequence[Event]) -> asyncio.Future[list[Stored]]: ...
    def quarantine(self, rejection: Rejection) -> None: ...
    async def starting_totals(self) -> Totals: ...
    async def pull_changes(self, copies: bool = True) -> MessageChanges: ...
    def settle(self) -> concurrent.futures.Future[None]: ...
    def note_feed(self, url: str) -> None:
        """Say where this process serves its viewers' feed, for a second process refused the
        database (SQLite); nothing to say where instances share the database."""
        ...

    async def shared_token(self) -> str:
        """The viewers' feed token kept in a shared database (asked only where
        `Backend.shared`)."""
        ...


class MessageQueries(Protocol):
    """Messages, recipients and events: the TUI's data source, inspect, the feed."""

    async def resolve_message_id(self, text: str) -> str | None: ...
    async def message_ids_starting(self, text: str, limit: int = 3) -> list[str]: ...
    async def message(self, message_id: str) -> MessageState | None: ...
    async def messages_of(self, message_ids: Sequence[str]) -> list[MessageState]: ...
    async def recent_messages(
        self, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]: ...
    async def search_messages(
        self, query: str, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]: ...
    async def count_recipients(self, message_id: str) -> int: ...
    async def recipients(
        self,
        message_id: str,
        *,
        state: State | None = None,
        text: str | None = None,
        failed_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecipientState]: ...
    async def recipient(self, message_id: str, recipient: str) -> RecipientState | None: ...
    async def timeline(self, message_id: str, recipient: str | None) -> list[StoredEvent]: ...
    async def message_events(self, message_id: str) -> list[StoredEvent]: ...
    async def recent_events(self, limit: int = 200) -> list[StoredEvent]: ...
    async def events_after(
        self, after: int, limit: int = 1000, message_id: str | None = None
    ) -> list[StoredEvent]: ...
    async def quarantine(self, limit: int = 100) -> list[Rejection]: ...
    async def quarantine_count(self) -> int: ...


class FigureQueries(Protocol):
    """Counters and figures: the dashboard, stats."""

    async def totals(self, campaign: Selector | None = None) -> Totals: ...
    async def failures(
        self, limit: int = 50, message_id: str | None = None, campaign: Selector | None = None
    ) -> list[FailureGroup]: ...
    async def stuck(
        self, deadlines: dict[State, int], now: int, limit: int = 200, since: int | None = None
    ) -> list[RecipientState]: ...
    async def count_stuck(
        self, deadlines: dict[State, int], now: int, campaign: Selector | None = None
    ) -> int: ...
    async def latency_samples(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> dict[str, list[int]]: ...
    async def latency(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> Latency: ...


class CampaignBookQueries(Protocol):
    """What the campaign book reads to keep every campaign's rows in memory."""

    async def campaigns(self, gap: int = BURST_GAP_US) -> list[Summary]: ...
    async def bursts(self, provider: str, gap: int = BURST_GAP_US) -> list[Summary]: ...
    async def campaign(self, name: str, gap: int = BURST_GAP_US) -> Summary | None: ...
    async def campaign_of(self, message_id: str) -> str | None: ...
    async def message_rows_of(self, sel: Selector | None) -> list[tuple[Any, ...]]: ...
    async def recipient_rows_of(self, sel: Selector | None) -> list[tuple[Any, ...]]: ...
    async def messages_since(self, after: int) -> list[tuple[Any, ...]]: ...
    async def message_rows(self, message_ids: Sequence[str]) -> list[tuple[Any, ...]]: ...
    async def recipients_of(
        self, message_ids: Sequence[str], after: int | None = None
    ) -> list[tuple[Any, ...]]: ...
    async def tags_since(self, after_id: int) -> list[tuple[int, str, str, str]]: ...
    async def last_tag_id(self) -> int: ...


class CampaignReportQueries(Protocol):
    """What a campaign report and its analysis read."""

    async def campaign(self, name: str, gap: int = BURST_GAP_US) -> Summary | None: ...
    async def totals(self, campaign: Selector | None = None) -> Totals: ...
    async def costs(self, sel: Selector | None) -> list[CostRow]: ...
    async def campaign_rows(
        self, sel: Selector | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]: ...
    async def latency_samples(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> dict[str, list[int]]: ...
    async def activity_span(self, sel: Selector | None) -> tuple[int | None, int | None]: ...
    async def activity_buckets(self, sel: Selector | None, start: int, step: int) -> list[int]: ...
    async def series(
        self,
        sel: Selector | None,
        column: str,
        start: int,
        step: int,
        buckets: int,
        state: str | None = None,
    ) -> Series: ...
    async def open_at(self, sel: Selector | None, at: int) -> int: ...
    async def rejections_between(self, start: int, end: int) -> list[tuple[str, int]]: ...


class ReconcileQueries(Protocol):
    """What the reconciler reads to find messages worth asking a gateway about."""

    async def quiet_unfinished(
        self, provider: str, before: int, after: int = 0, limit: int = 500
    ) -> list[tuple[str, int, int | None]]: ...
    async def missing_totals(self) -> tuple[int, int, int]: ...
    async def stuck(
        self, deadlines: dict[State, int], now: int, limit: int = 200, since: int | None = None
    ) -> list[RecipientState]: ...
    async def message(self, message_id: str) -> MessageState | None: ...
    async def recipients(
        self,
        message_id: str,
        *,
        state: State | None = None,
        text: str | None = None,
        failed_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecipientState]: ...
    async def recipients_of(
        self, message_ids: Sequence[str], after: int | None = None
    ) -> list[tuple[Any, ...]]: ...
    async def close(self) -> None: ...


class ExportQueries(Protocol):
    """What export, the suppression list and `smswatch import`'s round trip read."""

    def iter_events(
        self, message_id: str | None = None, chunk: int = 1000
    ) -> AsyncIterator[StoredEvent]: ...
    async def log_fields(self, ids: Sequence[int]) -> dict[int, tuple[str, bool | None, Any]]: ...
    async def suppression(self, sel: Selector | None) -> list[tuple[Any, ...]]: ...


class StoreReader(
    MessageQueries,
    FigureQueries,
    CampaignBookQueries,
    CampaignReportQueries,
    ReconcileQueries,
    ExportQueries,
    Protocol,
):
    """A read connection (or pool) answering every query; closed by its opener."""

    async def close(self) -> None: ...
    async def __aenter__(self) -> StoreReader: ...
    async def __aexit__(self, *exc: object) -> None: ...


class Outbox(Protocol):
    """The forwarding outbox: which stored event has reached which target app."""

    async def open(self) -> Outbox: ...
    async def close(self) -> None: ...
    async def reopen(self) -> None: ...
    async def register(self, targets: Sequence[Target]) -> None: ...
    async def enqueue(self, targets: Sequence[Target], now: int) -> int: ...
    async def due(
        self, now: int, limit: int, skip: Iterable[tuple[int, str]] = (), target: str | None = None
    ) -> list[Job]: ...
    async def record(self, outcomes: Sequence[forwarding.Outcome]) -> None: ...
    async def hurry(self, target: str, now: int) -> int: ...
    async def status(self, now: int) -> list[TargetStatus]: ...
    async def attempts(self, events: Sequence[int]) -> dict[int, list[Attempt]]: ...
    async def forwards(
        self, events: Sequence[int], targets: Sequence[str]
    ) -> dict[int, list[Forward]]: ...
    async def log_ids(self, event_ids: Sequence[str]) -> dict[str, list[int]]: ...
    async def retry(
        self,
        now: int,
        *,
        failed_only: bool = True,
        since: int | None = None,
        events: Sequence[int] | None = None,
        targets: Sequence[Target] = (),
    ) -> int: ...


class Lease(Protocol):
    """Leases among instances sharing a database, one per owner: who does a job now."""

    def held(self, owner: int) -> bool: ...
    async def acquire(self, owner: int) -> bool: ...
    async def close(self) -> None: ...


class Backend(Protocol):
    """The back end `--db` names; it makes everything else of the store."""

    db: str | Path
    # Several instances may write this database at once (PostgreSQL): the feed token lives
    # in it, jobs are leased, and every instance shows the others' forwarding.
    shared: bool

    def describe(self) -> str:
        """For screens and logs: the path, or the URL without its password."""
        ...

    def errors(self) -> tuple[type[BaseException], ...]:
        """What a broken, unreachable or foreign database raises."""
        ...

    def make_writer(self, options: WriterOptions) -> EventStore: ...
    async def open_reader(self, *, current: bool = False) -> StoreReader: ...
    def open_outbox(self, instance: str = "", lease_us: int = 30_000_000) -> Outbox:
        """The outbox, not yet opened. `instance` names this process's claims (shared), held
        for `lease_us`."""
        ...

    def lease(self, name: str) -> Lease | None:
        """Leases among the instances (None: this process is the only one: no lease needed)."""
        ...

    async def tag_messages(self, name: str, message_ids: Sequence[str], at: int) -> int:
        """Put messages in the named campaign (`name` already cleaned)."""
        ...
