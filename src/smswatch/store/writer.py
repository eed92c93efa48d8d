"""The single writer: group commit of webhook events into SQLite.

The transaction runs on one dedicated thread with its own `sqlite3` connection, one call per
batch: the loop hands the whole batch over and gets the outcome back. (Through aiosqlite every
statement is a round trip between threads, each waiting for the GIL; at eight statements a batch
that capped ingest at a tenth of what the HTTP server alone can do.)

Request handlers call `submit(events)` and await it. The writer task drains everything queued into
one batch, folds it into recipient and message state, writes it in one transaction and resolves
every waiting handler only after COMMIT returns, so an HTTP 2xx always means "on disk". While one
batch commits the next one queues up behind it, which is what makes the commit cost per event fall
as load rises.

Failure policy:
- The database cannot write (disk full, size cap, locked, I/O error): the whole batch is rolled
  back and every waiter gets `StoreUnavailable` (HTTP 503). The next batch simply tries again, so
  ingest recovers by itself once space returns.
- A value the database refuses (should not happen: adapters bound every field): the batch is
  retried one request at a time so that only the offending request fails, with `Unstorable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from smswatch.domain import (
    FUNNEL,
    UNATTRIBUTED,
    Event,
    MessageState,
    RecipientState,
    State,
    apply_event_to_message,
    apply_transition,
    fold,
)
from smswatch.store.rows import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    Rejection,
    event_row,
    message_from_row,
    message_row,
    placeholders,
    recipient_from_row,
    recipient_row,
    upsert,
)
from smswatch.store.schema import migrate
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's default limit on host parameters is 32766 here, but stay far below it.
_CHUNK = 400
_JOINED_RECIPIENT_COLUMNS = ", ".join("r." + c.strip() for c in RECIPIENT_COLUMNS.split(","))
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    OverflowError,
    ValueError,
    TypeError,
    UnicodeError,
)


class StoreUnavailable(Exception):
    """The database cannot commit right now (answer 503 and let the gateway retry)."""


class Unstorable(Exception):
    """This request's data cannot be stored (answer 400)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: str
    message_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Transition:
    """What one stored event did to its recipient (before = after = None for a message-level
    event)."""

    event: Event
    before: State | None
    after: State | None
    since: int | None  # microseconds since the recipient entered `before`, by event time


@dataclass(frozen=True, slots=True)
class Commit:
    """One committed batch, as published to the hub."""

    at: int
    events: tuple[Event, ...]
    duplicates: int
    transitions: tuple[Transition, ...]
    messages: tuple[MessageState, ...]
    funnel_delta: dict[State, int]  # change in recipients per state, over all messages
    new_messages: int
    in_flight_delta: int  # change in the number of unfinished messages
    conflicts_delta: int  # recipients newly flagged with a delivered/failed conflict
    rejections_stored: int


@dataclass(slots=True)
class _Pending:
    events: Sequence[Event]
    future: asyncio.Future[list[Outcome]]


@dataclass(slots=True)
class _Batch:
    """Working state of one batch; thrown away if the transaction fails."""

    messages: dict[str, MessageState] = field(default_factory=dict)
    recipients: dict[tuple[str, str], RecipientState] = field(default_factory=dict)
    new_events: list[Event] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    # Each touched message's (counts, finished, conflicts) before the batch; None if it is new.
    baseline: dict[str, tuple[dict[State, int], bool, int] | None] = field(default_factory=dict)
    duplicates: int = 0

    def message(self, message_id: str, provider: str) -> MessageState:
        msg = self.messages.get(message_id)
        if msg is None:
            msg = self.messages[message_id] = MessageState(message_id, provider)
        if message_id not in self.baseline:
            existed = msg.events > 0
            self.baseline[message_id] = (
                ({s: msg.count(s) for s in FUNNEL}, msg.finished, msg.conflicts)
                if existed
                else None
            )
        return msg

    def deltas(self) -> tuple[dict[State, int], int, int, int]:
        """(funnel change, new messages, in-flight change, new conflicts) over the messages this
        batch touched."""
        funnel = dict.fromkeys(FUNNEL, 0)
        new = in_flight = conflicts = 0
        for mid, base in self.baseline.items():
            msg = self.messages[mid]
            if base is None:
                new += 1
                base = (dict.fromkeys(FUNNEL, 0), True, 0)
            for s in FUNNEL:
                funnel[s] += msg.count(s) - base[0][s]
            in_flight += int(not msg.finished) - int(not base[1])
            conflicts += msg.conflicts - base[2]
        return funnel, new, in_flight, conflicts


def prepare_database(path: str | Path) -> None:
    """Create or migrate the database file and switch it to WAL (persistent). Blocking."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
    finally:
        conn.close()


class Writer:
    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "full",
        max_db_bytes: int | None = None,
        max_batch: int = 1000,
        quarantine_keep: int = 500,
        quarantine_body_max: int = 64 * 1024,
        busy_timeout_ms: int = 5000,
        on_commit: Callable[[Commit], None] | None = None,
        on_health: Callable[[str | None], None] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        self.path = Path(path)
        self.durability = durability
        self.max_db_bytes = max_db_bytes
        self.max_batch = max_batch
        self.quarantine_keep = quarantine_keep
        self.quarantine_body_max = quarantine_body_max
        self.busy_timeout_ms = busy_timeout_ms
        self.on_commit = on_commit
        self.on_health = on_health
        self.clock = clock
        self.failing: str | None = None
        self._db: sqlite3.Connection | None = None  # used only on the writer thread
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._rejections: list[Rejection] = []
        self._task: asyncio.Task[None] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smswatch-writer")
        try:
            await self._on_thread(self._connect)
        except BaseException:
            self._executor.shutdown()
            self._executor = None
            raise
        self._task = asyncio.create_task(self._run(), name="smswatch-writer")

    def _connect(self) -> None:
        prepare_database(self.path)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA synchronous={self.durability.upper()}")
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            if self.max_db_bytes:
                page_size = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count={max(self.max_db_bytes // page_size, 1)}")
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Commit what is queued, then close the connection and its thread."""
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            if self._db is not None:
                await self._on_thread(self._db.close)
                self._db = None
            self._executor.shutdown(wait=True)
            self._executor = None

    # --- API for the listener -----------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Requests queued and not yet committed: the listener stops reading above a limit."""
        return self._queue.qsize()

    async def submit(self, events: Sequence[Event]) -> list[Outcome]:
        """Store events; returns once they are committed. Raises StoreUnavailable/Unstorable."""
        if self._task is None:
            raise StoreUnavailable("the store is not running")
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(events, future))
        return await future

    def quarantine(self, rejection: Rejection) -> None:
        """Keep a rejected request with the next batch. Best effort: never waits."""
        if len(self._rejections) >= self.quarantine_keep:
            del self._rejections[0]
        self._rejections.append(rejection)
        if self._queue.empty():
            self._queue.put_nowait(_Pending((), asyncio.get_running_loop().create_future()))

    # --- the writer task ----------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch: list[_Pending] = []
            if item is None:
                stopping = True
            else:
                batch.append(item)
            while len(batch) < self.max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stopping = True
                    continue
                batch.append(more)
            if batch or self._rejections:
                try:
                    await self._commit_batch(batch)
                except Exception as exc:  # keep the writer alive whatever happens
                    log.exception("writer batch failed")
                    self._fail(batch, StoreUnavailable(f"internal error: {exc}"))

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        rejections, self._rejections = self._rejections, []
        try:
            work, outcomes = await self._on_thread(self._transaction, batch, rejections)
        except _DATA_ERRORS as exc:
            if len(batch) > 1:
                for one in batch:  # isolate the request that cannot be stored
                    await self._commit_batch([one])
                return
            self._fail(batch, Unstorable(f"cannot store this event: {exc}"))
            return
        except sqlite3.Error as exc:
            reason = f"database cannot commit: {exc}"
            if self.failing != reason:
                log.warning(reason)
            self.failing = reason
            if self.on_health:
                self.on_health(reason)
            self._fail(batch, StoreUnavailable(reason))
            return
        if self.failing is not None:
            self.failing = None
            if self.on_health:
                self.on_health(None)
        for pending, result in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
        if self.on_commit and (work.new_events or work.duplicates or rejections):
            funnel, new_messages, in_flight, conflicts = work.deltas()
            self.on_commit(
                Commit(
                    at=self.clock(),
                    events=tuple(work.new_events),
                    duplicates=work.duplicates,
                    transitions=tuple(work.transitions),
                    # The batch's state objects are never touched again: no copies needed.
                    messages=tuple(work.messages[mid] for mid in work.baseline),
                    funnel_delta=funnel,
                    new_messages=new_messages,
                    in_flight_delta=in_flight,
                    conflicts_delta=conflicts,
                    rejections_stored=len(rejections),
                )
            )

    @staticmethod
    def _fail(batch: Iterable[_Pending], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)
                # A quarantine wake-up item has nobody awaiting it.
                if not pending.events:
                    pending.future.exception()

    def _transaction(
        self, batch: list[_Pending], rejections: list[Rejection]
    ) -> tuple[_Batch, list[list[Outcome]]]:
        """One transaction for the whole batch, on the writer thread."""
        db = self._db
        assert db is not None
        work = _Batch()
        db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = self._fold_batch(db, batch, work)
            if work.new_events:
                db.executemany(
                    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({placeholders(14)}) "
                    "ON CONFLICT(dedupe_key) DO NOTHING",
                    [event_row(ev) for ev in work.new_events],
                )
            if work.recipients:
                db.executemany(
                    upsert("recipients", RECIPIENT_COLUMNS, "message_id, recipient"),
                    [recipient_row(r) for r in work.recipients.values()],
                )
            if work.baseline:
                db.executemany(
                    upsert("messages", MESSAGE_COLUMNS, "message_id"),
                    [message_row(work.messages[mid]) for mid in work.baseline],
                )
            if rejections:
                self._store_rejections(db, rejections)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return work, outcomes

    def _fold_batch(
        self, db: sqlite3.Connection, batch: list[_Pending], work: _Batch
    ) -> list[list[Outcome]]:
        events = [ev for pending in batch for ev in pending.events]
        existing = self._existing_keys(db, {ev.dedupe_key for ev in events})
        self._load_state(db, [ev for ev in events if ev.dedupe_key not in existing], work)
        outcomes: list[list[Outcome]] = []
        for pending in batch:
            result = []
            for ev in pending.events:
                if ev.dedupe_key in existing:
                    work.duplicates += 1
                    result.append(Outcome(ev.event_id, existing[ev.dedupe_key], True))
                    continue
                if not ev.message_id:  # absent or blank: providers.base.absent_if_blank
                    ev = ev.with_message_id(self._attribute(db, ev, work))
                existing[ev.dedupe_key] = ev.message_id
                self._apply(ev, work)
                # The answer names the message the event was stored under, attributed or not.
                result.append(Outcome(ev.event_id, ev.message_id, False))
            outcomes.append(result)
        return outcomes

    def _apply(self, ev: Event, work: _Batch) -> None:
        assert ev.message_id is not None
        work.new_events.append(ev)
        msg = work.message(ev.message_id, ev.provider)
        apply_event_to_message(msg, ev)
        if ev.recipient:
            key = (ev.message_id, ev.recipient)
            rec = work.recipients.get(key)
            if rec is None:
                rec = work.recipients[key] = RecipientState(
                    ev.message_id, ev.recipient, ev.provider
                )
            had_conflict = rec.conflict
            entered = rec.first_at.get(rec.state) if rec.state else None
            before = fold(rec, ev)
            after = rec.state
            apply_transition(msg, before, after, rec.conflict and not had_conflict)
            since = ev.occurred_at - entered if entered is not None else None
            work.transitions.append(Transition(ev, before, after, since))
        else:
            work.transitions.append(Transition(ev, None, None, None))
        if msg.finished:
            if msg.finished_at is None:
                msg.finished_at = ev.received_at
        else:
            msg.finished_at = None

    def _existing_keys(self, db: sqlite3.Connection, keys: set[str]) -> dict[str, str]:
        """Dedupe keys already stored, with the message each was attributed to."""
        found: dict[str, str] = {}
        ordered = list(keys)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            sql = (
                "SELECT dedupe_key, message_id FROM events "
                f"WHERE dedupe_key IN ({placeholders(len(chunk))})"
            )
            found.update(db.execute(sql, chunk).fetchall())
        return found

    def _load_state(self, db: sqlite3.Connection, events: list[Event], work: _Batch) -> None:
        """Read the current state of every message and recipient the batch touches."""
        message_ids = list({ev.message_id for ev in events if ev.message_id})
        pairs = list(
            {(ev.message_id, ev.recipient) for ev in events if ev.message_id and ev.recipient}
        )
        for i in range(0, len(message_ids), _CHUNK):
            chunk = message_ids[i : i + _CHUNK]
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages "
                f"WHERE message_id IN ({placeholders(len(chunk))})"
            )
            for row in db.execute(sql, chunk):
                work.messages[row[0]] = message_from_row(row)
        for i in range(0, len(pairs), _CHUNK):
            chunk = pairs[i : i + _CHUNK]
            values = ",".join("(?,?)" for _ in chunk)
            # A join on a VALUES list uses the primary key; `(a, b) IN (VALUES …)` scans the table.
            sql = (
                f"WITH k(m, p) AS (VALUES {values}) SELECT {_JOINED_RECIPIENT_COLUMNS} FROM k "
                "JOIN recipients r ON r.message_id = k.m AND r.recipient = k.p"
            )
            for row in db.execute(sql, [x for pair in chunk for x in pair]):
                rec = recipient_from_row(row)
                work.recipients[rec.key] = rec

    def _attribute(self, db: sqlite3.Connection, ev: Event, work: _Batch) -> str:
        """Find the message an event without a message id belongs to.

        Lisoloo's docs say to correlate on the recipient: the latest message of the same gateway
        that already has this recipient; else the latest of its messages still in flight; else
        the placeholder message `unattributed`. Without a recipient there is nothing to correlate
        on, and guessing would overwrite another message's totals.
        """
        if not ev.recipient:
            return self._loaded(db, UNATTRIBUTED, None, work)
        for (mid, rcpt), rec in reversed(work.recipients.items()):
            if rcpt == ev.recipient and rec.provider == ev.provider:
                return mid
        sql = (
            "SELECT message_id FROM recipients WHERE recipient = ? AND provider = ? "
            "ORDER BY updated_at DESC LIMIT 1"
        )
        row = db.execute(sql, (ev.recipient, ev.provider)).fetchone()
        if row:
            return self._loaded(db, row[0], ev.recipient, work)
        for mid, msg in reversed(work.messages.items()):
            if msg.provider == ev.provider and not msg.finished and mid != UNATTRIBUTED:
                return mid
        sql = (
            "SELECT message_id FROM messages WHERE provider = ? AND finished_at IS NULL "
            "AND message_id != ? ORDER BY last_received_at DESC LIMIT 1"
        )
        row = db.execute(sql, (ev.provider, UNATTRIBUTED)).fetchone()
        mid = row[0] if row else UNATTRIBUTED
        return self._loaded(db, mid, ev.recipient, work)

    def _loaded(
        self, db: sqlite3.Connection, message_id: str, recipient: str | None, work: _Batch
    ) -> str:
        """Make sure the batch holds the stored state of a message (and recipient) it now
        touches."""
        if message_id not in work.messages:
            sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ?"
            row = db.execute(sql, (message_id,)).fetchone()
            if row:
                work.messages[message_id] = message_from_row(row)
        if recipient is not None and (message_id, recipient) not in work.recipients:
            sql = (
                f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE message_id = ? AND recipient = ?"
            )
            row = db.execute(sql, (message_id, recipient)).fetchone()
            if row:
                work.recipients[(message_id, recipient)] = recipient_from_row(row)
        return message_id

    def _store_rejections(self, db: sqlite3.Connection, rejections: list[Rejection]) -> None:
        keep = rejections[-self.quarantine_keep :]
        db.executemany(
            "INSERT INTO quarantine (received_at, remote, method, path, provider, status, code, "
            "reason, content_type, body_size, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.received_at,
                    r.remote,
                    r.method,
                    r.path,
                    r.provider,
                    r.status,
                    r.code,
                    r.reason,
                    r.content_type,
                    r.body_size,
                    r.body[: self.quarantine_body_max] if r.body is not None else None,
                )
                for r in keep
            ],
        )
        db.execute(
            "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?",
            (self.quarantine_keep,),
        )
