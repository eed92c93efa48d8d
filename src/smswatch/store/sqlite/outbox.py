"""The forwarding outbox of a SQLite store: which stored event has reached which target app.

It is a file of its own beside the log (`PATH-forward`), written by the forwarder and never by
the webhook path: a webhook's commit costs nothing more with forwarding on. The forwarder finds
new work by walking the log past a cursor per target (log ids are given in commit order by the
single writer), and adds a `pending` row for each event a target takes. A row ends `delivered`
(the app answered 2xx: status and time kept) or `failed` (no more automatic attempts: the last
status and an excerpt of the answer kept); until then it waits for `next_at`. Every attempt is
kept in `attempts`, for the recipient timelines. Nothing here is derived from anything else, so
unlike the state file it is never rebuilt: a lost outbox would resend every event.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from smswatch.core.forwarding import RECENT_S, Attempt, Forward, Job, Outcome, Target, TargetStatus
from smswatch.store.queries.outbox import forwards_of, status_queries, target_status
from smswatch.store.sqlite.schema import log_id

SCHEMA_VERSION = 1

_V1 = """
CREATE TABLE forwards (
    event         INTEGER NOT NULL,   -- the event's id in the log
    target        TEXT NOT NULL,      -- the target's URL
    state         TEXT NOT NULL,      -- pending | delivered | failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,   -- µs: a pending row is not tried before
    status        INTEGER,            -- the last answer's HTTP status (NULL: no answer)
    error         TEXT,               -- the last failure: an excerpt of the answer, or why none
    last_at       INTEGER,
    delivered_at  INTEGER,
    PRIMARY KEY (event, target)
) WITHOUT ROWID;
CREATE INDEX forwards_due ON forwards (next_at) WHERE state = 'pending';
CREATE INDEX forwards_delivered ON forwards (target, delivered_at) WHERE state = 'delivered';
CREATE INDEX forwards_failed ON forwards (target, status) WHERE state = 'failed';
CREATE TABLE attempts (
    event     INTEGER NOT NULL,
    target    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    status    INTEGER,
    error     TEXT,
    ms        INTEGER
);
CREATE INDEX attempts_by_event ON attempts (event, at);
CREATE INDEX attempts_by_target ON attempts (target, at);
-- `after`: the last log id looked at for the target; `rows`: its rows in `forwards`, so that
-- the status (asked every second) counts the delivered ones without reading them all.
CREATE TABLE cursors (
    target  TEXT PRIMARY KEY,
    after   INTEGER NOT NULL,
    rows    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta VALUES ('log_id', '');
"""

_STATUS = status_queries("attempts")


def outbox_path(log: str | Path) -> Path:
    log = Path(log)
    return log.with_name(log.name + "-forward")


class Outbox:
    """Blocking; one connection, used from one thread at a time."""

    def __init__(self, log: str | Path) -> None:
        self.log = Path(log)
        self.path = outbox_path(log)
        self.db: sqlite3.Connection | None = None

    def open(self) -> Outbox:
        db = sqlite3.connect(
            f"file:{self.path}", uri=True, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise sqlite3.DatabaseError(f"{self.path} was written by a newer smswatch")
        if version == 0:
            db.executescript(f"BEGIN;\n{_V1}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
        db.execute("ATTACH DATABASE ? AS log", (f"file:{self.log}?mode=ro",))
        self.db = db
        self._bind()
        return self

    def _bind(self) -> None:
        """An outbox belongs to one log: one beside a new log (the old file replaced) starts
        over rather than take ids of another log for its own."""
        db = self._conn()
        mine = db.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()[0]
        current = log_id(db, "log")
        if mine != current:
            db.execute("BEGIN IMMEDIATE")
            for table in ("forwards", "attempts", "cursors"):
                db.execute(f"DELETE FROM {table}")
            db.execute("UPDATE meta SET value = ? WHERE key = 'log_id'", (current,))
            db.execute("COMMIT")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _conn(self) -> sqlite3.Connection:
        assert self.db is not None, "outbox not open"
        return self.db

    # --- the forwarder's side -------------------------------------------------------------

    def register(self, targets: Sequence[Target]) -> None:
        """Start a target seen for the first time at the newest stored event: forwarding
        begins when it is configured, it does not replay the past (`forward retry --since`
        does). Called by the engine before it takes webhooks."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            top = db.execute("SELECT coalesce(max(id), 0) FROM log.events").fetchone()[0]
            db.executemany(
                "INSERT OR IGNORE INTO cursors (target, after) VALUES (?, ?)",
                [(t.url, top) for t in targets],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def enqueue(self, targets: Sequence[Target], now: int, limit: int = 5000) -> int:
        """Add a pending row for each event stored since the target's cursor that it takes
        (`register` sets a new target's cursor)."""
        db = self._conn()
        added = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            top = db.execute("SELECT coalesce(max(id), 0) FROM log.events").fetchone()[0]
            for target in targets:
                row = db.execute(
                    "SELECT after FROM cursors WHERE target = ?", (target.url,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO cursors (target, after) VALUES (?, ?)", (target.url, top)
                    )
                    continue
                after = row[0]
                rows = db.execute(
                    "SELECT id, provider, event_type FROM log.events WHERE id > ? ORDER BY id "
                    "LIMIT ?",
                    (after, limit),
                ).fetchall()
                if not rows:
                    continue
                wanted = [(i, target.url, now) for i, p, kind in rows if target.takes(p, kind)]
                n = self._add(db, target.url, wanted)
                db.execute(
                    "UPDATE cursors SET after = ? WHERE target = ?", (rows[-1][0], target.url)
                )
                added += n
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    @staticmethod
    def _add(db: sqlite3.Connection, target: str, rows: list[tuple[int, str, int]]) -> int:
        """Insert pending rows (event, target, next_at) that are not there yet; count them."""
        n = db.executemany(
            "INSERT OR IGNORE INTO forwards (event, target, state, next_at) "
            "VALUES (?, ?, 'pending', ?)",
            rows,
        ).rowcount
        db.execute("UPDATE cursors SET rows = rows + ? WHERE target = ?", (n, target))
        return n

    def due(
        self, now: int, limit: int, skip: Iterable[tuple[int, str]] = (), target: str | None = None
    ) -> list[Job]:
        """Pending rows whose time has come (of one target, if given), oldest first, with what
        to send; `skip`: those already in flight."""
        skipped = set(skip)
        which = "" if target is None else "AND f.target = ? "
        sql = (
            "SELECT f.event, f.target, f.attempts, e.provider, e.event_id, e.message_id, "
            "e.payload, e.event_type FROM forwards f JOIN log.events e ON e.id = f.event "
            f"WHERE f.state = 'pending' AND f.next_at <= ? {which}"
            "ORDER BY f.next_at, f.event LIMIT ?"
        )
        params = (now, *(() if target is None else (target,)), limit + len(skipped))
        rows = self._conn().execute(sql, params).fetchall()
        jobs = [Job(*r) for r in rows if (r[0], r[1]) not in skipped]
        return jobs[:limit]

    def hurry(self, target: str, now: int) -> int:
        """Make the target's forwards that wait out a backoff due now."""
        db = self._conn()
        return db.execute(
            "UPDATE forwards SET next_at = ? "
            "WHERE state = 'pending' AND target = ? AND next_at > ?",
            (now, target, now),
        ).rowcount

    def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (a.event, a.target, a.at, a.status, a.error, a.ms)
                    for a in (o.attempt for o in outcomes)
                ],
            )
            db.executemany(
                "UPDATE forwards SET attempts = attempts + 1, status = ?, last_at = ?, "
                "state = ?, next_at = ?, error = ?, delivered_at = ? "
                "WHERE event = ? AND target = ?",
                [
                    (
                        o.attempt.status,
                        o.attempt.at,
                        "delivered" if o.delivered else "pending" if o.retry_at else "failed",
                        o.retry_at or o.attempt.at,
                        None if o.delivered else o.attempt.error,
                        o.attempt.at if o.delivered else None,
                        o.job.event,
                        o.job.target,
                    )
                    for o in outcomes
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- what screens and the CLI ask ----------------------------------------------------

    def status(self, now: int) -> list[TargetStatus]:
        """Each target's outbox."""
        db, q = self._conn(), _STATUS
        top = db.execute("SELECT coalesce(max(id), 0) FROM log.events").fetchone()[0]
        out = []
        cursors = db.execute("SELECT target, after, rows FROM cursors ORDER BY target").fetchall()
        for target, after, rows in cursors:
            pending = db.execute(q.pending, (target,)).fetchone()[0]
            by_status = tuple(db.execute(q.failed_by_status, (target,)).fetchall())
            recent_after = now - RECENT_S * 1_000_000
            recent = db.execute(q.delivered_since, (target, recent_after)).fetchone()[0]
            last_ok = db.execute(q.last_delivered, (target,)).fetchone()[0]
            last = db.execute(q.last_attempt, (target,)).fetchone()
            since, failed_attempts = db.execute(q.failing_since, (target, last_ok or 0)).fetchone()
            out.append(
                target_status(
                    target,
                    rows,
                    max(top - after, 0),
                    pending,
                    by_status,
                    recent,
                    last,
                    since,
                    failed_attempts,
                )
            )
        return out

    def attempts(self, events: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {}
        ids = list(events)
        for i in range(0, len(ids), 400):
            chunk = ids[i : i + 400]
            marks = ",".join("?" * len(chunk))
            for row in self._conn().execute(
                f"SELECT event, target, at, status, error, ms FROM attempts "
                f"WHERE event IN ({marks}) ORDER BY at",
                chunk,
            ):
                found.setdefault(row[0], []).append(Attempt(*row))
        return found

    def forwards(self, events: Sequence[int], targets: Sequence[str]) -> dict[int, list[Forward]]:
        """Each event's forwarding to each of `targets`: its state and every attempt."""
        db = self._conn()
        ids = list(dict.fromkeys(events))
        tried = self.attempts(ids)
        cursors = dict(db.execute("SELECT target, after FROM cursors").fetchall())
        states: dict[tuple[int, str], str] = {}
        for i in range(0, len(ids), 400):
            chunk = ids[i : i + 400]
            marks = ",".join("?" * len(chunk))
            for event, target, state in db.execute(
                f"SELECT event, target, state FROM forwards WHERE event IN ({marks})", chunk
            ):
                states[(event, target)] = state

        def unqueued(event: int, target: str) -> str:  # no row: not queued yet, or never to be
            after = cursors.get(target)
            return "pending" if after is None or event > after else "not forwarded"

        return forwards_of(ids, targets, states, tried, unqueued)

    def retry(
        self,
        now: int,
        *,
        failed_only: bool = True,
        since: int | None = None,
        events: Sequence[int] | None = None,
        targets: Sequence[Target] = (),
    ) -> int:
        """Send again now: the failed rows, or with `failed_only` False the delivered ones too,
        of the events received since `since` (µs) or of `events`. With `failed_only` False,
        events a target never had (stored before it was configured) are added as well."""
        db = self._conn()
        conds: list[str] = []
        params: list[object] = []
        if since is not None:
            conds.append("e.received_at >= ?")
            params.append(since)
        if events is not None:
            conds.append(f"e.id IN ({','.join('?' * len(events)) or 'NULL'})")
            params += list(events)
        scope = " AND ".join(conds) or "1"
        states = "('failed')" if failed_only else "('failed', 'delivered')"
        db.execute("BEGIN IMMEDIATE")
        try:
            n = db.execute(
                # A fresh start: a forward that used up its attempts gets them all again.
                f"UPDATE forwards SET state = 'pending', next_at = ?, attempts = 0 "
                f"WHERE state IN {states} "
                f"AND event IN (SELECT e.id FROM log.events e WHERE {scope})",
                (now, *params),
            ).rowcount
            if not failed_only and conds:
                rows = db.execute(
                    f"SELECT e.id, e.provider, e.event_type FROM log.events e WHERE {scope}", params
                ).fetchall()
                for target in targets:
                    db.execute(
                        # A target new here starts at the newest event, as `register` does,
                        # not at the log's beginning once it is configured.
                        "INSERT OR IGNORE INTO cursors (target, after) "
                        "SELECT ?, coalesce(max(id), 0) FROM log.events",
                        (target.url,),
                    )
                    n += self._add(
                        db,
                        target.url,
                        [(i, target.url, now) for i, p, kind in rows if target.takes(p, kind)],
                    )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    def log_ids(self, event_ids: Sequence[str]) -> dict[str, list[int]]:
        """The log ids of events by their gateway event id (`export`'s `event_id`, the
        forwards' X-Smswatch-Event-Id), for `forward retry --event`. An id two gateways both
        used has two; an id not stored is not in the answer."""
        found: dict[str, list[int]] = {}
        wanted = list(dict.fromkeys(event_ids))
        for i in range(0, len(wanted), 400):
            chunk = wanted[i : i + 400]
            marks = ",".join("?" * len(chunk))
            for event_id, row_id in self._conn().execute(
                f"SELECT event_id, id FROM log.events WHERE event_id IN ({marks}) ORDER BY id",
                chunk,
            ):
                found.setdefault(event_id, []).append(row_id)
        return found


class AsyncOutbox:
    """The SQLite outbox behind the interface the forwarder and the engine use for both back
    ends (store/postgres/outbox.py is natively asynchronous): each call on a thread."""

    def __init__(self, log: str | Path) -> None:
        self.outbox = Outbox(log)

    async def open(self) -> AsyncOutbox:
        await asyncio.to_thread(self.outbox.open)
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self.outbox.close)

    async def reopen(self) -> None:
        """After a failure: SQLite's connection stays good (the failure was the file's)."""

    async def register(self, targets: Sequence[Target]) -> None:
        await asyncio.to_thread(self.outbox.register, targets)

    async def enqueue(self, targets: Sequence[Target], now: int) -> int:
        return await asyncio.to_thread(self.outbox.enqueue, targets, now)

    async def due(
        self, now: int, limit: int, skip: Iterable[tuple[int, str]] = (), target: str | None = None
    ) -> list[Job]:
        return await asyncio.to_thread(self.outbox.due, now, limit, list(skip), target)

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        await asyncio.to_thread(self.outbox.record, outcomes)

    async def hurry(self, target: str, now: int) -> int:
        return await asyncio.to_thread(self.outbox.hurry, target, now)

    async def status(self, now: int) -> list[TargetStatus]:
        return await asyncio.to_thread(self.outbox.status, now)

    async def attempts(self, events: Sequence[int]) -> dict[int, list[Attempt]]:
        return await asyncio.to_thread(self.outbox.attempts, events)

    async def retry(
        self,
        now: int,
        *,
        failed_only: bool = True,
        since: int | None = None,
        events: Sequence[int] | None = None,
        targets: Sequence[Target] = (),
    ) -> int:
        return await asyncio.to_thread(
            lambda: self.outbox.retry(
                now, failed_only=failed_only, since=since, events=events, targets=targets
            )
        )

    async def forwards(
        self, events: Sequence[int], targets: Sequence[str]
    ) -> dict[int, list[Forward]]:
        return await asyncio.to_thread(self.outbox.forwards, events, targets)

    async def log_ids(self, event_ids: Sequence[str]) -> dict[str, list[int]]:
        return await asyncio.to_thread(self.outbox.log_ids, event_ids)
