"""The single writer: group commit of webhook events into an append-only log in SQLite.

The transaction runs on one dedicated thread with its own `sqlite3` connection, one call per
batch: the loop hands the whole batch over and gets the outcome back. (Through aiosqlite every
statement is a round trip between threads, each waiting for the GIL.)

Request handlers call `submit(events)` and await it. The writer task drains everything queued into
one batch; on its thread it drops duplicates (the log's unique dedupe key), folds the new events
into the in-memory state (`state.StateCache`), appends them to the `events` log and commits.
Every waiting handler is resolved only after COMMIT returns, so an HTTP 2xx always means "on
disk". While one batch commits the next one queues up behind it, which is what makes the commit
cost per event fall as load rises.

Only the log and its dedupe key are written before a 2xx. Recipient and message state, and the
`timeline` index the screens read a recipient's events through, are derived from the log: they
go to the state file (schema.py) at a checkpoint, about once a second or every couple of
thousand changes, in one transaction that also records the last event id it covers. The writer
thread only turns the changed state into rows; a checkpoint thread with its own connection writes
them, so the commits webhooks wait for never queue behind a checkpoint (a 2,000-row checkpoint
took 47-87 ms at 5,000 events/s). Random-key index pages rewritten on every commit were two
thirds of the per-event SQLite cost; at a checkpoint they are shared by many events. On start
the state is the last checkpoint plus the log after it, folded again, so a crash at any point
(a checkpoint included: it is one transaction) loses nothing that was acknowledged.

One process writes a database at a time (a lock file beside it says which): the state in
memory is only right if nobody else appends to the log.

Failure policy:
- The database cannot write (disk full, size cap, locked, I/O error): the whole batch is rolled
  back and every waiter gets `StoreUnavailable` (HTTP 503). The state folded for it is thrown away
  (rebuilt from the last checkpoint and the log), and the next batch simply tries again, so ingest
  recovers by itself once space returns.
- A value the database refuses (should not happen: adapters bound every field): the batch is
  retried one request at a time so that only the offending request fails, with `Unstorable`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from smswatch.campaigns.rule import CampaignRule
from smswatch.core.figures import Totals
from smswatch.core.live import Commit, MessageChanges, Stored
from smswatch.core.records import Rejection
from smswatch.store.errors import (
    CannotOpen,
    NotOurs,
    StoreUnavailable,
    Unstorable,
    cannot_open,
    location_problem,
)
from smswatch.store.group_commit import GroupCommit, QueuedRequest
from smswatch.store.queries.rows import (
    LOG_COLUMNS,
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    log_row,
    placeholders,
    upsert,
)
from smswatch.store.sqlite.files import connect_state, prepare_database, stored_after
from smswatch.store.sqlite.lock import WriterLock
from smswatch.store.sqlite.reader import Reader
from smswatch.store.sqlite.schema import (
    is_not_sqlite,
    read_checkpoint,
    state_path,
)
from smswatch.store.state import (
    CHUNK,
    BatchEffects,
    CheckpointRows,
    StateCache,
    TablesLatest,
    pull_changes,
)
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)
NO_CHANGES = MessageChanges()  # never changed by its readers: `changed` is 0
T = TypeVar("T")

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
_INSERT_EVENTS = f"INSERT INTO events (id, {LOG_COLUMNS}) VALUES ({placeholders(17)})"
_INSERT_CAMPAIGNS = (
    "INSERT INTO campaigns (message_id, campaign, source, tagged_at) VALUES (?, ?, ?, ?)"
)
_UPSERT_RECIPIENTS = upsert("recipients", RECIPIENT_COLUMNS, "message_id, recipient")
_UPSERT_MESSAGES = upsert("messages", MESSAGE_COLUMNS, "message_id")
_TIMELINE = (
    "INSERT OR IGNORE INTO timeline (message_id, recipient, occurred_at, event) "
    "SELECT message_id, coalesce(recipient, ''), occurred_at, id FROM log.events "
    "WHERE id > ? AND id <= ?"
)
REPLAY_CHECKPOINT_EVERY = 50_000  # events folded again between checkpoints on a long replay
WINDOW_AFTER = 4  # a batch at least this big says others are sending: wait for more
SNAPSHOT_SLICE = 2_000  # rows a checkpoint's snapshot takes between two batches


def write_checkpoint(conn: sqlite3.Connection, snapshot: CheckpointRows) -> None:
    """One transaction on the state file: the changed rows, the timeline entries of the events
    since the last checkpoint, and the id they are all good up to. A crash leaves either the old
    checkpoint or the new one. Deferred: IMMEDIATE would take the attached log's write lock
    too, and hold up every commit webhooks are waiting for while the checkpoint runs."""
    conn.execute("BEGIN")
    try:
        # In key order: SQLite then walks each B-tree once, page after page (16% less CPU a
        # row than in the snapshot's order, sort included).
        if snapshot.recipients:
            conn.executemany(_UPSERT_RECIPIENTS, sorted(snapshot.recipients.values()))
        if snapshot.messages:
            conn.executemany(_UPSERT_MESSAGES, sorted(snapshot.messages.values()))
        if snapshot.upto > snapshot.after:
            conn.execute(_TIMELINE, (snapshot.after, snapshot.upto))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (snapshot.upto,))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


class Writer(GroupCommit):
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
        checkpoint_interval: float = 1.0,
        checkpoint_dirty: int = 20_000,
        commit_window: float = 0,
        on_commit: Callable[[Commit], None] | None = None,
        on_health: Callable[[str | None], None] | None = None,
        clock: Callable[[], int] = now_us,
        campaigns: CampaignRule | None = None,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        self.path = Path(path)
        self.campaigns = campaigns or CampaignRule()
        self.durability = durability
        self.max_db_bytes = max_db_bytes
        self.max_batch = max_batch
        self.quarantine_keep = quarantine_keep
        self.quarantine_body_max = quarantine_body_max
        self.busy_timeout_ms = busy_timeout_ms
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_dirty = checkpoint_dirty
        self.commit_window = commit_window
        self.on_commit = on_commit
        self.on_health = on_health
        self.clock = clock
        self.failing: str | None = None
        # What this process committed (the hub's counters cover every instance of a shared
        # database): for its metrics.
        self.stored = self.duplicates = 0
        # Used only on the writer thread:
        self._db: sqlite3.Connection | None = None  # the log, nothing attached
        self._state_read: sqlite3.Connection | None = None  # the state file, for lookups
        self._lock = WriterLock(self.path)
        self.state = StateCache()
        self._stale = False  # a failed batch left folded state that is not in the log
        self._last_id = 0  # the newest event in the log
        self.replayed = 0  # events folded again at the last open (crash recovery)
        # Used only on the checkpoint thread:
        self._state_db: sqlite3.Connection | None = None
        # On the loop:
        self._checkpoint_id = 0  # the newest event the state file covers
        self._checkpoint_at = time.monotonic()
        self._checkpointing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[QueuedRequest | None] = asyncio.Queue()
        self._rejections: list[Rejection] = []
        self._task: asyncio.Task[None] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    def note_feed(self, url: str) -> None:
        """Where this process serves its viewers' feed (kept in the lock file)."""
        self._lock.note_feed(url)

    async def shared_token(self) -> str:
        """A SQLite database is not shared: its feed token is a file beside it."""
        raise NotImplementedError("a SQLite database keeps its feed token in a file")

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smswatch-writer")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="smswatch-checkpoint")
        try:
            await self._on_thread(self._connect)
        except BaseException:
            await self._on_thread(self._disconnect)
            self._shutdown_threads()
            raise
        self._task = asyncio.create_task(self._run(), name="smswatch-writer")

    def _connect(self) -> None:
        """Open the database, or raise CannotOpen saying what is wrong with it or its path."""
        problem = location_problem(self.path)
        if problem is not None:
            raise CannotOpen(f"cannot open the database {self.path}: {problem}")
        try:
            self._open_files()
        except CannotOpen:
            self._lock.release(remove=True)
            raise
        except sqlite3.DatabaseError as exc:
            self._lock.release(remove=True)
            if is_not_sqlite(exc):
                raise NotOurs(f"{self.path} is not an smswatch database ({exc})") from None
            raise cannot_open(self.path, exc) from None
        except OSError as exc:
            self._lock.release(remove=True)
            raise cannot_open(self.path, exc) from None

    def _open_files(self) -> None:
        self._lock.acquire()
        prepare_database(self.path)
        # Two connections, not one with the state file attached: a write transaction takes the
        # write lock of every attached file, and the log's commits must never wait for the
        # state file's (a checkpoint writes it for hundreds of milliseconds).
        self._db = db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._state_read = sqlite3.connect(
            state_path(self.path), isolation_level=None, check_same_thread=False
        )
        self._state_read.execute("PRAGMA query_only=1")
        db.execute(f"PRAGMA synchronous={self.durability.upper()}")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        db.execute("PRAGMA cache_size=-16384")  # the dedupe index's pages, read at every batch
        if self.max_db_bytes:
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={max(self.max_db_bytes // page_size, 1)}")
        self._state_db = connect_state(self.path)
        # Derived data: a power loss may roll back its last checkpoints, and the log (synced
        # at every commit) then gives them back.
        self._state_db.execute("PRAGMA synchronous=NORMAL")
        # The state's B-trees are written all over at every checkpoint: 32 MB of pages cached
        # cut the CPU of a row by a sixth (8.7 against 10.4 us on a 20 MB table).
        self._state_db.execute("PRAGMA cache_size=-32768")
        self._state_db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        self._recover()
        self.state.touched.clear()  # the hub starts from the totals, replay included

    def _recover(self) -> None:
        """The state is the last checkpoint plus the log after it, folded again."""
        db, state_read = self._db, self._state_read
        assert db is not None and state_read is not None
        if self._checkpointer is not None:  # a checkpoint under way moves the marker: let it
            self._checkpointer.submit(lambda: None).result()
        self.state.clear()
        self._checkpoint_id = read_checkpoint(state_read, "main")
        self._last_id = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        self.replayed = 0
        if self._last_id > self._checkpoint_id:
            # Checkpoints here only shorten the next replay: if the disk is full they fail,
            # and the state simply stays in memory, dirty, until one succeeds.
            for upto, chunk in stored_after(db, self._checkpoint_id):
                self.replayed += self.state.replay(state_read, chunk)
                if self.state.dirty >= REPLAY_CHECKPOINT_EVERY:
                    with contextlib.suppress(sqlite3.Error):
                        self._checkpoint_here(upto)
            with contextlib.suppress(sqlite3.Error):
                self._checkpoint_here(self._last_id)
        self._stale = False

    def _checkpoint_here(self, upto: int) -> None:
        """A checkpoint written from the writer's thread (at open, and at close)."""
        assert self._state_db is not None
        snapshot = self.state.snapshot(self._checkpoint_id, upto)
        try:
            write_checkpoint(self._state_db, snapshot)
        except sqlite3.Error:
            self.state.redirty(snapshot)
            raise
        self._checkpoint_id = upto
        self.state.trim()

    def _disconnect(self) -> None:
        # The log last: the state connection has it attached, and only the last connection
        # to close checkpoints the log's WAL into it and removes the -wal file.
        for conn in (self._state_read, self._state_db, self._db):
            if conn is not None:
                conn.close()
        self._db = self._state_read = self._state_db = None
        self._lock.release()

    def _shutdown_threads(self) -> None:
        for executor in (self._executor, self._checkpointer):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._checkpointer = None

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Commit what is queued, checkpoint, then close the connections and their threads."""
        await self.drain()
        if self._checkpointing is not None:
            await self._checkpointing
        if self._executor is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._on_thread(self._final_checkpoint)
            await self._on_thread(self._disconnect)
        self._shutdown_threads()

    def _final_checkpoint(self) -> None:
        if self._stale:
            self._recover()
        if self.state.dirty or self._last_id > self._checkpoint_id:
            self._checkpoint_here(self._last_id)

    # --- checkpoints, from the loop -------------------------------------------------------------

    async def _maybe_checkpoint(self) -> None:
        if self._checkpointing is not None:
            return
        due = time.monotonic() - self._checkpoint_at >= self.checkpoint_interval
        if self.state.dirty and (due or self.state.dirty >= self.checkpoint_dirty):
            self._start_checkpoint()

    def _start_checkpoint(self) -> asyncio.Task[None]:
        # Marked as under way before the snapshot is taken: a `settle` arriving in between must
        # wait for it, not find nothing dirty and read the file before it is written.
        self._checkpointing = asyncio.create_task(self._checkpoint())
        return self._checkpointing

    def _take(self, snapshot: CheckpointRows) -> bool:
        if self._stale:
            self._recover()
        return self.state.take(snapshot, SNAPSHOT_SLICE, self._last_id)

    async def _checkpoint(self) -> None:
        """Take a snapshot on the writer thread, a slice between batches, then write it on the
        checkpoint thread while the writer goes on committing."""
        loop = asyncio.get_running_loop()
        snapshot = CheckpointRows(self._checkpoint_id)
        try:
            while not await self._on_thread(self._take, snapshot):
                pass
            try:
                await loop.run_in_executor(self._checkpointer, self._write_snapshot, snapshot)
            except sqlite3.Error as exc:
                # The log is safe and the state stays in memory: written next time.
                log.warning("checkpoint failed: %s", exc)
                await self._on_thread(self.state.redirty, snapshot)
            else:
                self._checkpoint_id = snapshot.upto
                await self._on_thread(self.state.trim)
        finally:
            self._checkpoint_at = time.monotonic()
            self._checkpointing = None

    def _write_snapshot(self, snapshot: CheckpointRows) -> None:
        assert self._state_db is not None
        write_checkpoint(self._state_db, snapshot)

    def settle(self) -> concurrent.futures.Future[None]:
        """Checkpoint now if anything changed, so that queries of the state file see every event
        stored so far: a screen asking right after a webhook then shows it. Callable from any
        thread. A checkpoint that fails leaves the state one checkpoint behind, which a screen
        can live with: the result is still None."""
        if self._loop is None or self._task is None or self._loop.is_closed():
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        return asyncio.run_coroutine_threadsafe(self._settle(), self._loop)

    async def _settle(self) -> None:
        if self._checkpointing is not None:
            await self._checkpointing
        if self.state.dirty and self._executor is not None:
            await self._start_checkpoint()

    async def starting_totals(self) -> Totals:
        """The counters the hub starts from: what the database holds (this is its only
        writer, so nothing changes it until the listener starts)."""
        async with await Reader.open(self.path) as reader:
            return await reader.totals()

    async def pull_changes(self, copies: bool = True) -> MessageChanges:
        """What changed in the messages since the last call (the hub asks once a tick); with
        `copies`, copies of the changed messages too."""
        if self._executor is None or self._db is None:
            return MessageChanges()
        if not self.state.touched and not self._stale:
            # Nothing folded since the last call: no trip to the writer's thread. (Read from
            # the loop without the thread: a batch folding right now is seen at the next tick.)
            return NO_CHANGES
        return await self._on_thread(self._pull, copies)

    def _pull(self, copies: bool) -> MessageChanges:
        if self._state_read is None:
            return MessageChanges()
        if self._stale:
            self._recover()
        return pull_changes(self.state, self._state_read, copies)

    # --- the writer task ----------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        last = 0  # the size of the last batch
        while not stopping:
            if self._queue.empty():
                try:
                    item = await asyncio.wait_for(self._queue.get(), self.checkpoint_interval)
                except TimeoutError:
                    await self._maybe_checkpoint()  # quiet: let the screens catch up
                    continue
            else:
                item = self._queue.get_nowait()
            if (
                item is not None
                and self.commit_window
                and last >= WINDOW_AFTER
                and self._queue.qsize() < self.max_batch // 2
            ):
                # Under load every commit costs the same (its fsync above all), however many
                # events ride in it: give the loop a moment to read more requests first.
                await asyncio.sleep(self.commit_window)
            batch, stopping = self._batch_from(item)
            last = len(batch)
            if batch or self._rejections:
                try:
                    await self._commit_batch(batch)
                except Exception as exc:  # keep the writer alive whatever happens
                    log.exception("writer batch failed")
                    self._fail(batch, StoreUnavailable(f"internal error: {exc}"))
            await self._maybe_checkpoint()

    async def _commit_batch(self, batch: list[QueuedRequest]) -> None:
        rejections, self._rejections = self._rejections, []
        try:
            effects, outcomes = await self._on_thread(self._transaction, batch, rejections)
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
        self.stored += len(effects.new_events)
        self.duplicates += effects.duplicates
        for pending, result in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
        if self.on_commit and (effects.new_events or effects.duplicates or rejections):
            self.on_commit(
                Commit(
                    at=self.clock(),
                    events=tuple(effects.new_events),
                    duplicates=effects.duplicates,
                    transitions=tuple(effects.transitions),
                    rejections_stored=len(rejections),
                )
            )

    # --- on the writer thread -----------------------------------------------------------------

    def _transaction(
        self, batch: list[QueuedRequest], rejections: list[Rejection]
    ) -> tuple[BatchEffects, list[list[Stored]]]:
        """One transaction for the whole batch: the new events appended to the log."""
        db = self._db
        assert db is not None
        if self._stale:
            self._recover()
        effects = BatchEffects()
        first_id = self._last_id + 1
        db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = self._fold_batch(db, batch, effects)
            if effects.new_events:
                db.executemany(
                    _INSERT_EVENTS,
                    [(first_id + i, *log_row(ev)) for i, ev in enumerate(effects.new_events)],
                )
            if effects.new_messages and (tags := self.campaigns.tags(effects.new_messages)):
                db.executemany(_INSERT_CAMPAIGNS, tags)
            if rejections:
                self._store_rejections(db, rejections)
            db.execute("COMMIT")
        except BaseException:
            # The state has folded events the log does not have: rebuild it before the next.
            self._stale = True
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._last_id += len(effects.new_events)
        return effects, outcomes

    def _fold_batch(
        self, db: sqlite3.Connection, batch: list[QueuedRequest], effects: BatchEffects
    ) -> list[list[Stored]]:
        events = [ev for pending in batch for ev in pending.events]
        existing = self._existing_keys(db, {ev.dedupe_key for ev in events})
        state_read = self._state_read
        assert state_read is not None
        self.state.load(state_read, [ev for ev in events if ev.dedupe_key not in existing])
        state = self.state
        tables = TablesLatest(state, state_read)
        return state.fold_requests(
            [pending.events for pending in batch],
            existing,
            effects,
            lambda ev: state.attribute(ev, tables),
        )

    def _existing_keys(self, db: sqlite3.Connection, keys: set[str]) -> dict[str, str]:
        """Dedupe keys already stored, with the message each was attributed to."""
        found: dict[str, str] = {}
        ordered = list(keys)
        for i in range(0, len(ordered), CHUNK):
            chunk = ordered[i : i + CHUNK]
            sql = (
                "SELECT dedupe_key, message_id FROM events "
                f"WHERE dedupe_key IN ({placeholders(len(chunk))})"
            )
            found.update(db.execute(sql, chunk).fetchall())
        return found

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
