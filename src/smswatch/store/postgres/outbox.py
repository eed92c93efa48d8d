"""The forwarding outbox of a PostgreSQL store, shared by every instance.

Unlike SQLite's, the rows are not found by walking the log: several instances commit in any
order, so the instance that stores an event adds its forward rows in the same transaction
(store/postgres/writer.py). Any instance's forwarder then claims due rows with a lease:
`FOR UPDATE SKIP LOCKED` makes two forwarders take different rows, and the lease (the forward
timeout and a margin) keeps a row from being sent twice at once. A forwarder killed mid-attempt
leaves its rows leased; when the lease runs out another instance takes them: nothing stranded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple
from typing import Any

import asyncpg

from smswatch.core.forwarding import RECENT_S, Attempt, Forward, Job, Outcome, Target, TargetStatus
from smswatch.store.postgres.dialect import numbered
from smswatch.store.queries.outbox import StatusQueries, forwards_of, status_queries, target_status

_CLAIM = """
WITH due AS (
    SELECT event, target FROM forwards
    WHERE state = 'pending' AND target = $1 AND next_at <= $2
      AND (lease_until IS NULL OR lease_until < $2) AND NOT (event = ANY($5::int8[]))
    ORDER BY next_at, event LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE forwards f SET lease_until = $2 + $4, owner = $6
FROM due WHERE f.event = due.event AND f.target = due.target
RETURNING f.event, f.target, f.attempts
"""
_RECORD = """
UPDATE forwards SET attempts = attempts + 1, status = $3, last_at = $4, state = $5,
    next_at = $6, error = $7, delivered_at = $8, lease_until = NULL, owner = NULL
WHERE event = $1 AND target = $2
"""

# The shared SQL of a target's status, in PostgreSQL's placeholder style.
_STATUS = StatusQueries(*(numbered(sql) for sql in astuple(status_queries("forward_attempts"))))


class PgOutbox:
    """Async; one connection (the forwarder's, or the engine's for status and resends)."""

    def __init__(self, url: str, instance: str = "", lease_us: int = 30_000_000) -> None:
        self.url = url
        self.instance = instance
        self.lease_us = lease_us
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> PgOutbox:
        self._conn = await asyncpg.connect(
            self.url,
            timeout=5,
            command_timeout=30,
            server_settings={
                "application_name": "smswatch-forward",
                "plan_cache_mode": "force_custom_plan",  # see writer.py
            },
        )
        return self

    async def reopen(self) -> None:
        """After a failure: the connection may be gone with the database; make a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        await self.open()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(timeout=2)

    def _c(self) -> asyncpg.Connection:
        assert self._conn is not None, "outbox not open"
        return self._conn

    async def register(self, targets: Sequence[Target]) -> None:
        """Rows are added by the writer as events are stored: nothing to register."""

    async def enqueue(self, targets: Sequence[Target], now: int, limit: int = 5000) -> int:
        return 0  # see register

    async def due(
        self, now: int, limit: int, skip: Iterable[tuple[int, str]] = (), target: str | None = None
    ) -> list[Job]:
        """Claim (lease) due rows of `target` and return what to send."""
        assert target is not None, "the PostgreSQL outbox claims one target's rows at a time"
        conn = self._c()
        skipped = [event for event, t in skip if t == target]
        async with conn.transaction():
            claimed = await conn.fetch(
                _CLAIM, target, now, limit, self.lease_us, skipped, self.instance
            )
            if not claimed:
                return []
            rows = await conn.fetch(
                "SELECT id, provider, event_id, message_id, payload, event_type FROM events "
                "WHERE id = ANY($1::int8[])",
                [r[0] for r in claimed],
            )
        events = {r[0]: r for r in rows}
        return [Job(c[0], c[1], c[2], *events[c[0]][1:]) for c in claimed if c[0] in events]

    async def hurry(self, target: str, now: int) -> int:
        """As the SQLite outbox's."""
        result = await self._c().execute(
            "UPDATE forwards SET next_at = $2 WHERE state = 'pending' AND target = $1 "
            "AND next_at > $2",
            target,
            now,
        )
        return int(result.split()[-1])

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        conn = self._c()
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO forward_attempts VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (a.event, a.target, a.at, a.status, no_nul(a.error), a.ms)
                    for a in (o.attempt for o in outcomes)
                ],
            )
            await conn.executemany(
                _RECORD,
                [
                    (
                        o.job.event,
                        o.job.target,
                        o.attempt.status,
                        o.attempt.at,
                        "delivered" if o.delivered else "pending" if o.retry_at else "failed",
                        o.retry_at or o.attempt.at,
                        None if o.delivered else no_nul(o.attempt.error),
                        o.attempt.at if o.delivered else None,
                    )
                    for o in outcomes
                ],
            )

    async def status(self, now: int) -> list[TargetStatus]:
        """Each target's outbox: the rows every instance added (no log to walk here)."""
        conn, q = self._c(), _STATUS
        out = []
        targets = await conn.fetch(
            "SELECT target, sum(rows) FROM forward_rows GROUP BY target ORDER BY target"
        )
        for target, rows in targets:
            pending = await conn.fetchval(q.pending, target)
            by_status = tuple(
                (r[0], int(r[1])) for r in await conn.fetch(q.failed_by_status, target)
            )
            recent = await conn.fetchval(q.delivered_since, target, now - RECENT_S * 1_000_000)
            last_ok = await conn.fetchval(q.last_delivered, target)
            last = await conn.fetchrow(q.last_attempt, target)
            since, failed_attempts = await conn.fetchrow(q.failing_since, target, last_ok or 0)
            out.append(
                target_status(
                    target,
                    int(rows),
                    0,
                    int(pending),
                    by_status,
                    int(recent),
                    last,
                    since,
                    int(failed_attempts),
                )
            )
        return out

    async def attempts(self, events: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {}
        for row in await self._c().fetch(
            "SELECT event, target, at, status, error, ms FROM forward_attempts "
            "WHERE event = ANY($1::int8[]) ORDER BY at",
            list(events),
        ):
            found.setdefault(row[0], []).append(Attempt(*row))
        return found

    async def forwards(
        self, events: Sequence[int], targets: Sequence[str]
    ) -> dict[int, list[Forward]]:
        """As the SQLite outbox's: every row here was added with its event, so an event
        without one was stored before the target was configured (or is of a gateway it does
        not take)."""
        ids = list(dict.fromkeys(events))
        tried = await self.attempts(ids)
        rows = await self._c().fetch(
            "SELECT event, target, state FROM forwards WHERE event = ANY($1::int8[])", ids
        )
        states = {(r[0], r[1]): r[2] for r in rows}
        return forwards_of(ids, targets, states, tried, lambda _event, _target: "not forwarded")

    async def log_ids(self, event_ids: Sequence[str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for event_id, row_id in await self._c().fetch(
            "SELECT event_id, id FROM events WHERE event_id = ANY($1::text[]) ORDER BY id",
            list(dict.fromkeys(event_ids)),
        ):
            found.setdefault(event_id, []).append(row_id)
        return found

    async def retry(
        self,
        now: int,
        *,
        failed_only: bool = True,
        since: int | None = None,
        events: Sequence[int] | None = None,
        targets: Sequence[Target] = (),
    ) -> int:
        """As the SQLite outbox's `retry`."""

        def scope(first: int) -> tuple[str, list[Any]]:
            """The events concerned, with parameters numbered from `first`."""
            conds, params = ["TRUE"], []
            if since is not None:
                params.append(since)
                conds.append(f"e.received_at >= ${first + len(params) - 1}")
            if events is not None:
                params.append(list(events))
                conds.append(f"e.id = ANY(${first + len(params) - 1}::int8[])")
            return " AND ".join(conds), params

        states = "('failed')" if failed_only else "('failed', 'delivered')"
        conn = self._c()
        async with conn.transaction():
            where, params = scope(2)
            n = await conn.fetchval(
                "WITH done AS (UPDATE forwards SET state = 'pending', next_at = $1, attempts = 0, "
                f"lease_until = NULL WHERE state IN {states} "
                f"AND event IN (SELECT e.id FROM events e WHERE {where}) RETURNING 1) "
                "SELECT count(*) FROM done",
                now,
                *params,
            )
            if not failed_only and (since is not None or events is not None):
                where, params = scope(1)
                rows = await conn.fetch(
                    f"SELECT e.id, e.provider, e.event_type FROM events e WHERE {where}", *params
                )
                for target in targets:
                    wanted = [(r[0], target.url, now) for r in rows if target.takes(r[1], r[2])]
                    n += await add_forwards(conn, self.instance, target.url, wanted)
        return int(n)


def no_nul(text: str | None) -> str | None:
    """PostgreSQL's text cannot hold NUL: it is stored as U+2400 (the raw payload keeps it
    escaped as JSON wrote it)."""
    return text.replace("\x00", "\u2400") if text and "\x00" in text else text


async def add_forwards(
    conn: asyncpg.Connection, instance: str, target: str, rows: list[tuple[int, str, int]]
) -> int:
    """Pending rows (event, target, next_at) not there yet, counted in this instance's row."""
    if not rows:
        return 0
    added = await conn.fetchval(
        "WITH added AS (INSERT INTO forwards (event, target, state, next_at) "
        "SELECT e, t, 'pending', n FROM unnest($1::int8[], $2::text[], $3::int8[]) u(e, t, n) "
        "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM added",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )
    await conn.execute(
        "INSERT INTO forward_rows VALUES ($1, $2, $3) ON CONFLICT (instance, target) "
        "DO UPDATE SET rows = forward_rows.rows + excluded.rows",
        instance,
        target,
        added,
    )
    return int(added)
