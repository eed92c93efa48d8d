"""The PostgreSQL writer: group commit per instance, several instances on one database.

Each batch is one transaction, committed (with `synchronous_commit` on) before any of its
webhooks is answered. Unlike the SQLite back end, the folded state is written in that same
transaction: another instance may change the same recipient a moment later, so no instance can
keep the state in memory. Correctness under concurrency comes from locks: a transaction-level
advisory lock per message and per recipient (a 64-bit hash of its key), all taken in one
statement in ascending order, so two instances never wait for each other in a cycle. Unlike row
locks they cover rows that do not exist yet, and cost no row writes.

1. for events with no message id, the tables' candidates are read (reads only);
2. the messages and recipients the batch touches, or may be attributed to, are locked, then read;
3. with those locks held, any other transaction that stored one of these events has committed,
   so the dedupe lookup sees it: an event retried to two instances is folded once;
4. the new events are attributed and folded in memory with the same code as the SQLite back
   end (store/state.py), then the events (with what each did to its recipient), the changed rows
   and this instance's counters are written.

The unique dedupe key is the last guard: if it ever refuses an event the fold counted, the
transaction is rolled back and run again, as after a deadlock or a serialization failure.
What the other instances commit reaches this one's hub through the follower (follow.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from smswatch.campaigns.rule import CampaignRule
from smswatch.core.domain import FUNNEL, UNATTRIBUTED, Event
from smswatch.core.figures import Totals
from smswatch.core.forwarding import Target
from smswatch.core.live import Commit, MessageChanges, Stored
from smswatch.core.records import Rejection
from smswatch.store.errors import CannotOpen, StoreUnavailable, Unstorable
from smswatch.store.group_commit import GroupCommit, QueuedRequest
from smswatch.store.location import describe
from smswatch.store.postgres.follow import Follower
from smswatch.store.postgres.outbox import add_forwards, no_nul
from smswatch.store.postgres.schema import migrate
from smswatch.store.queries.rows import (
    LOG_COLUMNS,
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    log_row,
    message_from_row,
    message_row,
    recipient_from_row,
    recipient_row,
)
from smswatch.store.state import BatchEffects, StateCache, pull_changes
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)

RETRIES = 8  # a batch run again after a deadlock or serialization failure
RECONNECT_EVERY = 1.0  # seconds between attempts while the database is away
SIZE_CHECK_EVERY = 5.0  # seconds between looks at the database's size, when capped

_TEXT, _INT, _REAL = "text", "int8", "float8"
_EVENT_TYPES = (
    [_TEXT] * 7 + [_INT, _INT, _INT] + [_TEXT] * 4 + [_INT, _TEXT] + [_TEXT, _TEXT, _INT, _TEXT]
)
_EVENT_COLUMNS = LOG_COLUMNS + ", t_before, t_after, t_since, instance"
_RECIPIENT_TYPES = [_TEXT] * 4 + [_INT] * 6 + [_TEXT, _INT, _TEXT, _TEXT] + [_INT] * 8
_MESSAGE_TYPES = [_TEXT, _TEXT, _INT, _INT, _REAL, _TEXT, _INT, _TEXT, _TEXT] + [_INT] * 19


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


def _unnest(types: Sequence[str]) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))


def _upsert(table: str, columns: str, types: Sequence[str], key: str, stamp: bool) -> str:
    names = _names(columns)
    keys = set(_names(key))
    sets = [f"{n} = excluded.{n}" for n in names if n not in keys]
    if stamp:
        sets.append("xid = pg_current_xact_id()")
    return (
        f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({_unnest(types)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"
    )


_INSERT_CAMPAIGNS = (
    "INSERT INTO campaigns (message_id, campaign, source, tagged_at) "
    f"SELECT * FROM unnest({_unnest([_TEXT, _TEXT, _TEXT, _INT])}) "
    "ON CONFLICT (message_id) DO NOTHING"
)
_INSERT_EVENTS = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT * FROM unnest({_unnest(_EVENT_TYPES)}) "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, provider, event_type"
)
_UPSERT_RECIPIENTS = _upsert(
    "recipients", RECIPIENT_COLUMNS, _RECIPIENT_TYPES, "message_id, recipient", False
)
_UPSERT_MESSAGES = _upsert("messages", MESSAGE_COLUMNS, _MESSAGE_TYPES, "message_id", True)
# Transaction-level advisory locks, one per message and per recipient, taken in one statement
# in ascending order: they cost no row writes, cover rows that do not exist yet, and every
# transaction takes them in the same order.
_LOCK = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT k FROM unnest($1::int8[]) k "
    "ORDER BY k) s"
)
_READ_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ANY($1::text[])"
_READ_RECIPIENTS = (
    f"SELECT {', '.join('r.' + c for c in _names(RECIPIENT_COLUMNS))} FROM recipients r "
    "JOIN unnest($1::text[], $2::text[]) k(m, p) ON r.message_id = k.m AND r.recipient = k.p"
)
_TOTALS = (
    "UPDATE totals SET events = events + $2, duplicates = duplicates + $3, "
    "messages = messages + $4, in_flight = in_flight + $5, conflicts = conflicts + $6, "
    "n_queued = n_queued + $7, n_processing = n_processing + $8, n_sent = n_sent + $9, "
    "n_delivered = n_delivered + $10, n_failed = n_failed + $11, "
    "n_unconfirmed = n_unconfirmed + $12, first_received_at = least(first_received_at, $13), "
    "last_received_at = greatest(last_received_at, $14) WHERE instance = $1"
)
# Connection trouble: answer 503 and reconnect. Anything else from the server that is not about
# the data (disk full, out of connections, a read-only standby) is a 503 too.
_GONE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)
_AGAIN = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.UniqueViolationError)
_DATA = (asyncpg.DataError, ValueError, TypeError, OverflowError, UnicodeError)


class _Again(Exception):
    """The dedupe key refused an event the fold counted: run the batch again."""


@dataclass
class _Latest:
    """StoredLatest for one transaction: the tables' answers for the batch's events that have no
    message id, read before the locks so that every message the fold may pick is locked and
    read (`load` has nothing left to do)."""

    recipients: dict[tuple[str, str], str]
    open: dict[str, str]

    @classmethod
    async def read(cls, conn: asyncpg.Connection, events: Sequence[Event]) -> _Latest:
        keys = {(ev.recipient, ev.provider) for ev in events if not ev.message_id and ev.recipient}
        recipients = {}
        for key in keys:
            mid = await conn.fetchval(
                "SELECT message_id FROM recipients WHERE recipient = $1 AND provider = $2 "
                "ORDER BY updated_at DESC NULLS LAST LIMIT 1",
                *key,
            )
            if mid is not None:
                recipients[key] = str(mid)
        open_ = {}
        for provider in {p for _, p in keys}:
            mid = await conn.fetchval(
                "SELECT message_id FROM messages WHERE provider = $1 AND finished_at IS NULL "
                "AND message_id != $2 ORDER BY last_received_at DESC NULLS LAST LIMIT 1",
                provider,
                UNATTRIBUTED,
            )
            if mid is not None:
                open_[provider] = str(mid)
        return cls(recipients, open_)

    def recipient_message(self, recipient: str, provider: str) -> str | None:
        return self.recipients.get((recipient, provider))

    def open_message(self, provider: str) -> str | None:
        return self.open.get(provider)

    def load(self, message_id: str, recipient: str | None) -> None:
        pass

    def candidates(self, events: Sequence[Event]) -> dict[str, set[str]]:
        """Per gateway, every message an event without a message id may be given: the batch's
        own, those read here and `unattributed` (the rule may pick any of them)."""
        out: dict[str, set[str]] = {}
        for ev in events:
            if not ev.message_id:
                out.setdefault(ev.provider, {UNATTRIBUTED})
        for ev in events:
            if ev.message_id and ev.provider in out:
                out[ev.provider].add(ev.message_id)
        for (_, provider), mid in self.recipients.items():
            out[provider].add(mid)
        for provider, mid in self.open.items():
            out[provider].add(mid)
        return out


def lock_key(*parts: str) -> int:
    """The advisory lock of a message (one part) or a recipient (two): 64 bits of a hash."""
    text = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(slots=True)
class _Batch:
    effects: BatchEffects
    outcomes: list[list[Stored]]
    changes: MessageChanges


class PgWriter(GroupCommit):
    """store/api.py's EventStore on PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        durability: str = "full",
        max_db_bytes: int | None = None,
        max_batch: int = 1000,
        quarantine_keep: int = 500,
        quarantine_body_max: int = 64 * 1024,
        on_commit: Callable[[Commit], None] | None = None,
        on_health: Callable[[str | None], None] | None = None,
        clock: Callable[[], int] = now_us,
        connect_timeout: float = 5.0,
        forward_targets: Sequence[Target] = (),
        campaigns: CampaignRule | None = None,
        **_sqlite_only: Any,  # checkpoint settings: this back end has no checkpoints
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        self.url = url
        self.durability = durability
        self.max_db_bytes = max_db_bytes
        self.max_batch = max_batch
        self.quarantine_keep = quarantine_keep
        self.quarantine_body_max = quarantine_body_max
        self.on_commit = on_commit
        self.on_health = on_health
        self.clock = clock
        self.connect_timeout = connect_timeout
        # Each stored event gets its forward rows in its own transaction (postgres/outbox.py).
        self.forward_targets = tuple(forward_targets)
        self.campaigns = campaigns or CampaignRule()
        self.instance = instance_name()
        self.failing: str | None = None
        # What this process committed (the hub's counters cover every instance of a shared
        # database): for its metrics.
        self.stored = self.duplicates = 0
        self._writer_error: str | None = None
        self._follow_error: str | None = None
        self._next_follow = 0.0
        self.follower = Follower(url, self.instance, connect_timeout)
        self._conn: asyncpg.Connection | None = None
        self._next_connect = 0.0
        self._size_checked = 0.0
        self._over_size = False
        self._queue: asyncio.Queue[QueuedRequest | None] = asyncio.Queue()
        self._rejections: list[Rejection] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate, register this instance and take the follower's starting point.
        A database that cannot be reached at start is an error (the operator is there to see
        it); once running, an outage is answered 503 and the writer reconnects by itself."""
        self._loop = asyncio.get_running_loop()
        try:
            conn = await self._connect()
        except (*_GONE, asyncpg.PostgresError, ValueError) as exc:  # ValueError: a bad URL
            raise CannotOpen(f"cannot reach the database at {describe(self.url)}: {exc}") from None
        try:
            await migrate(conn)
            await conn.execute(
                "INSERT INTO totals (instance, started_at) VALUES ($1, $2)",
                self.instance,
                self.clock(),
            )
            await self.follower.open()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._task = asyncio.create_task(self._run(), name="smswatch-pg-writer")

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.url,
            timeout=self.connect_timeout,
            command_timeout=30,
            server_settings={
                "application_name": "smswatch",
                "synchronous_commit": "on" if self.durability == "full" else "off",
                # A prepared statement's generic plan guesses the size of the key arrays and
                # scans whole tables (the dedupe lookup took 3.4 ms a batch, not 0.05).
                "plan_cache_mode": "force_custom_plan",
            },
        )

    async def close(self) -> None:
        await self.drain()
        await self.follower.close()
        if self._conn is not None:
            with contextlib.suppress(*_GONE):
                await self._conn.close(timeout=2)
            self._conn = None

    # --- what the engine and the hub ask ------------------------------------------------------

    def note_feed(self, url: str) -> None:
        """Nothing to note: instances share the database, and any of them may be attached to."""

    async def shared_token(self) -> str:
        """The viewers' feed token, made by the first instance and kept in the database."""
        conn = self._conn
        assert conn is not None
        await conn.execute(
            "INSERT INTO meta VALUES ('feed_token', $1) ON CONFLICT (key) DO NOTHING",
            secrets.token_urlsafe(24),
        )
        return str(await conn.fetchval("SELECT value FROM meta WHERE key = 'feed_token'"))

    async def starting_totals(self) -> Totals:
        """The counters the hub starts from: those of the follower's starting point, so that
        every event committed after it is counted once, by the follower."""
        return self.follower.start_totals

    async def pull_changes(self, copies: bool = True) -> MessageChanges:
        """What every instance committed since the last call: its events go to the hub as
        commits, its counters as the changes' deltas."""
        now = time.monotonic()
        if self._follow_error is not None and now < self._next_follow:
            return MessageChanges()  # it failed a moment ago: try again in a second
        try:
            commit, changes = await self.follower.poll(copies, self.clock())
        except (*_GONE, asyncpg.PostgresError) as exc:
            self._next_follow = now + RECONNECT_EVERY
            self._follow_error = f"database unreachable: {exc or type(exc).__name__}"
            self._report()
            return MessageChanges()
        if self._follow_error is not None:
            self._follow_error = None
            self._report()
        if commit is not None and self.on_commit:
            self.on_commit(commit)
        return changes

    def settle(self) -> concurrent.futures.Future[None]:
        """Queries see every commit at once here: nothing to wait for."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    # --- the writer task ----------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                item = await asyncio.wait_for(self._queue.get(), RECONNECT_EVERY)
            except TimeoutError:
                if self._conn is None:
                    await self._reconnect()  # come back without waiting for traffic
                continue
            batch, stopping = self._batch_from(item)
            if batch or self._rejections:
                try:
                    await self._commit_batch(batch)
                except Exception as exc:  # keep the writer alive whatever happens
                    log.exception("writer batch failed")
                    self._fail(batch, StoreUnavailable(f"internal error: {exc}"))

    async def _reconnect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect:
            return False
        self._next_connect = now + RECONNECT_EVERY
        try:
            self._conn = await self._connect()
        except (*_GONE, asyncpg.PostgresError) as exc:
            self._health(f"database unreachable: {exc or type(exc).__name__}")
            return False
        log.warning("reconnected to the database")
        self._health(None)  # reachable again, even if no webhook comes to prove it
        return True

    def _health(self, writer_error: str | None) -> None:
        self._writer_error = writer_error
        self._report()

    def _report(self) -> None:
        """The store's condition: the writer's error, else the follower's (which is how an
        outage shows while no webhook arrives)."""
        reason = self._writer_error or self._follow_error
        if reason != self.failing:
            if reason:
                log.warning(reason)
            self.failing = reason
            if self.on_health:
                self.on_health(reason)

    async def _commit_batch(self, batch: list[QueuedRequest]) -> None:
        if self._conn is None and not await self._reconnect():
            self._rejections.clear()  # a bounded sample: not kept through an outage
            self._fail(batch, StoreUnavailable(self.failing or "database unreachable"))
            return
        if self.max_db_bytes and await self._over_cap():
            reason = f"database is over its size cap ({self.max_db_bytes:,} bytes)"
            self._health(reason)
            self._fail(batch, StoreUnavailable(reason))
            return
        rejections, self._rejections = self._rejections, []
        try:
            result = await self._transaction(batch, rejections)
        except _DATA as exc:
            if len(batch) > 1:
                for one in batch:  # isolate the request that cannot be stored
                    await self._commit_batch([one])
                return
            self._fail(batch, Unstorable(f"cannot store this event: {exc}"))
            return
        except _GONE as exc:
            await self._drop_connection()
            self._health(f"database unreachable: {exc or type(exc).__name__}")
            self._fail(batch, StoreUnavailable(self.failing or "database unreachable"))
            return
        except asyncpg.PostgresError as exc:
            self._health(f"database cannot commit: {exc}")
            self._fail(batch, StoreUnavailable(self.failing or "database cannot commit"))
            return
        self._health(None)
        self.stored += len(result.effects.new_events)
        self.duplicates += result.effects.duplicates
        for pending, outcome in zip(batch, result.outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _over_cap(self) -> bool:
        now = time.monotonic()
        if now - self._size_checked >= SIZE_CHECK_EVERY and self._conn is not None:
            self._size_checked = now
            size = await self._conn.fetchval("SELECT pg_database_size(current_database())")
            self._over_size = int(size) > (self.max_db_bytes or 0)
        return self._over_size

    async def _transaction(self, batch: list[QueuedRequest], rejections: list[Rejection]) -> _Batch:
        for attempt in range(RETRIES):
            try:
                return await self._try_transaction(batch, rejections)
            except (*_AGAIN, _Again):
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.002 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _try_transaction(
        self, batch: list[QueuedRequest], rejections: list[Rejection]
    ) -> _Batch:
        conn = self._conn
        assert conn is not None
        events = [ev for pending in batch for ev in pending.events]
        async with conn.transaction():
            latest = await _Latest.read(conn, events)
            state = await self._lock(conn, events, latest)
            existing = await self._existing(conn, [ev.dedupe_key for ev in events])
            effects = BatchEffects()
            outcomes = state.fold_requests(
                [pending.events for pending in batch],
                existing,
                effects,
                lambda ev: state.attribute(ev, latest),
            )
            changes = pull_changes(state, None, copies=False)
            await self._write(conn, state, effects, changes)
            if rejections:
                await self._store_rejections(conn, rejections)
        return _Batch(effects, outcomes, changes)

    @staticmethod
    async def _lock(conn: asyncpg.Connection, events: list[Event], latest: _Latest) -> StateCache:
        """Lock every message and recipient the events touch (for an event without a message id,
        each it may be attributed to), then read those that exist into a cache of this
        transaction's own."""
        state = StateCache()
        messages = {ev.message_id for ev in events if ev.message_id}
        recipients = {
            (ev.message_id, ev.recipient) for ev in events if ev.message_id and ev.recipient
        }
        candidates = latest.candidates(events)
        for mids in candidates.values():
            messages |= mids
        for ev in events:
            if not ev.message_id and ev.recipient:
                recipients.update((mid, ev.recipient) for mid in candidates[ev.provider])
        if not messages:
            return state
        keys = [lock_key(m) for m in messages] + [lock_key(m, r) for m, r in recipients]
        await conn.fetchval(_LOCK, keys)
        for row in await conn.fetch(_READ_MESSAGES, list(messages)):
            state.messages[row[0]] = message_from_row(tuple(row))
        if recipients:
            pairs = list(recipients)
            rows = await conn.fetch(_READ_RECIPIENTS, [k[0] for k in pairs], [k[1] for k in pairs])
            for row in rows:
                rec = recipient_from_row(tuple(row))
                state.recipients[rec.key] = rec
        return state

    @staticmethod
    async def _existing(conn: asyncpg.Connection, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = await conn.fetch(
            "SELECT dedupe_key, message_id FROM events WHERE dedupe_key = ANY($1::text[])", keys
        )
        return {r[0]: r[1] for r in rows}

    async def _write(
        self,
        conn: asyncpg.Connection,
        state: StateCache,
        effects: BatchEffects,
        changes: MessageChanges,
    ) -> None:
        if effects.new_events:
            rows = [
                (
                    *_clean(log_row(t.event)),
                    t.before.value if t.before else None,
                    t.after.value if t.after else None,
                    t.since,
                    self.instance,
                )
                for t in effects.transitions
            ]
            stored = await conn.fetch(_INSERT_EVENTS, *_columns(rows, len(_EVENT_TYPES)))
            if len(stored) != len(rows):
                raise _Again()
            now = self.clock()
            for target in self.forward_targets:
                wanted = [(r[0], target.url, now) for r in stored if target.takes(r[1], r[2])]
                await add_forwards(conn, self.instance, target.url, wanted)
        if effects.new_messages and (tags := self.campaigns.tags(effects.new_messages)):
            await conn.execute(_INSERT_CAMPAIGNS, *_columns([_clean(t) for t in tags], 4))
        if state.dirty_recipients:
            rows = [_clean(recipient_row(state.recipients[k])) for k in state.dirty_recipients]
            await conn.execute(_UPSERT_RECIPIENTS, *_columns(rows, len(_RECIPIENT_TYPES)))
        if state.dirty_messages:
            rows = [_clean(message_row(state.messages[m])) for m in state.dirty_messages]
            await conn.execute(_UPSERT_MESSAGES, *_columns(rows, len(_MESSAGE_TYPES)))
        if effects.new_events or effects.duplicates:
            received = [ev.received_at for ev in effects.new_events]
            await conn.execute(
                _TOTALS,
                self.instance,
                len(effects.new_events),
                effects.duplicates,
                changes.new_messages,
                changes.in_flight_delta,
                changes.conflicts_delta,
                *(changes.funnel_delta.get(s, 0) for s in FUNNEL),
                min(received, default=None),
                max(received, default=None),
            )

    async def _store_rejections(
        self, conn: asyncpg.Connection, rejections: list[Rejection]
    ) -> None:
        keep = rejections[-self.quarantine_keep :]
        await conn.executemany(
            "INSERT INTO quarantine (received_at, remote, method, path, provider, status, code, "
            "reason, content_type, body_size, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            [
                (
                    r.received_at,
                    no_nul(r.remote),
                    no_nul(r.method),
                    no_nul(r.path),
                    no_nul(r.provider),
                    r.status,
                    no_nul(r.code),
                    no_nul(r.reason),
                    no_nul(r.content_type),
                    r.body_size,
                    r.body[: self.quarantine_body_max] if r.body is not None else None,
                )
                for r in keep
            ],
        )
        await conn.execute(
            "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - $1",
            self.quarantine_keep,
        )


def _clean(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(no_nul(v) if isinstance(v, str) else v for v in row)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column: the arrays `unnest` takes."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]
