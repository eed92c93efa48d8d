"""What every instance committed, for this instance's hub: the cross-instance fan-out.

Each tick the hub asks for changes, and the follower reads, in one read-only snapshot:
- the events written by transactions not yet seen (every instance's, this one's included);
- the sum of the instances' counters (`totals`), whose change since the last look is what the
  hub's counters move by;
- with `copies`, the messages those transactions changed.

A serial id does not say what is new: ids are taken when a row is inserted, and transactions
commit in another order, so a reader that kept "the highest id seen" would skip an event whose
transaction committed after a later one's. The cursor is therefore a transaction id: the
snapshot's `xmin`, the oldest transaction still running when it was taken. Everything written
by an older transaction is finished and was read at that look or before; rows of newer ones are
read again at the next look, and the ids already handed out since `xmin` are remembered, so each
event reaches the hub once. Why not LISTEN/NOTIFY: a notification sent while the listening
connection is being re-made is lost, its payload is limited to 8,000 bytes, and it would still
need this cursor to read the rows; a poll a tick is one index range scan (its cost is a row of
`make bench`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg

from smswatch.core.domain import FUNNEL, MessageState, State
from smswatch.core.figures import Totals
from smswatch.core.live import Commit, MessageChanges, Transition
from smswatch.store.queries.rows import (
    LOG_COLUMNS,
    MESSAGE_COLUMNS,
    event_from_row,
    message_from_row,
)

MAX_EVENTS = 10_000  # a poll reads at most this many events; the rest come at the next one
MAX_MESSAGES = 5_000

_SNAPSHOT = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
_TOTALS = (
    "SELECT coalesce(sum(events), 0), coalesce(sum(duplicates), 0), coalesce(sum(messages), 0), "
    "coalesce(sum(in_flight), 0), coalesce(sum(conflicts), 0), coalesce(sum(n_queued), 0), "
    "coalesce(sum(n_processing), 0), coalesce(sum(n_sent), 0), coalesce(sum(n_delivered), 0), "
    "coalesce(sum(n_failed), 0), coalesce(sum(n_unconfirmed), 0), min(first_received_at), "
    "max(last_received_at) FROM totals"
)
_END = 5 + len(FUNNEL)  # the funnel's counts in a _TOTALS row: [5:_END]
_EVENTS = (
    f"SELECT id, xid::text::bigint, {LOG_COLUMNS}, t_before, t_after, t_since FROM events "
    "WHERE xid >= $1::text::xid8 AND NOT (id = ANY($2::int8[])) ORDER BY id LIMIT $3"
)
_MESSAGES = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE xid >= $1::text::xid8 "
    "ORDER BY last_received_at DESC LIMIT $2"
)


class Follower:
    def __init__(self, url: str, instance: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.instance = instance
        self.connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None
        self._xmin = "0"
        self._seen: dict[int, int] = {}  # event id -> its transaction, for ids at or past xmin
        self._totals: tuple[Any, ...] = (0,) * (5 + len(FUNNEL)) + (None, None)
        self.start_totals = Totals(0, 0, 0, dict.fromkeys(FUNNEL, 0), 0, None, None, {})

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                command_timeout=30,
                server_settings={
                    "application_name": "smswatch-follower",
                    "plan_cache_mode": "force_custom_plan",  # see writer.py
                },
            )
        return self._conn

    async def open(self) -> None:
        """Take the starting point: the counters as of one snapshot, and every event visible
        in it counted as seen."""
        conn = await self._connection()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            self._xmin = await conn.fetchval(_SNAPSHOT)
            self._totals = tuple(await conn.fetchrow(_TOTALS))
            rows = await conn.fetch(
                "SELECT id, xid::text::bigint FROM events WHERE xid >= $1::text::xid8",
                self._xmin,
            )
        self._seen = {r[0]: r[1] for r in rows}
        t = self._totals
        self.start_totals = Totals(
            events=int(t[0]),
            messages=int(t[2]),
            in_flight=int(t[3]),
            funnel={s: int(n) for s, n in zip(FUNNEL, t[5:_END], strict=True)},
            conflicts=int(t[4]),
            first_received_at=t[_END],
            last_received_at=t[_END + 1],
            by_provider={},
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def poll(self, copies: bool, now: int) -> tuple[Commit | None, MessageChanges]:
        try:
            return await self._poll(copies, now)
        except BaseException:
            # A broken connection is made again at the next poll; the cursor is ours, not the
            # connection's, so nothing is skipped or counted twice.
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            raise

    async def _poll(self, copies: bool, now: int) -> tuple[Commit | None, MessageChanges]:
        conn = await self._connection()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            xmin = await conn.fetchval(_SNAPSHOT)
            rows = await conn.fetch(_EVENTS, self._xmin, list(self._seen), MAX_EVENTS)
            totals = tuple(await conn.fetchrow(_TOTALS))
            messages = await conn.fetch(_MESSAGES, self._xmin, MAX_MESSAGES) if copies else []
        if len(rows) < MAX_EVENTS:
            start = int(xmin)
        else:  # more to read: keep the cursor where it was
            start = int(self._xmin)
            xmin = self._xmin
        seen = {i: x for i, x in self._seen.items() if x >= start}
        seen.update((r[0], r[1]) for r in rows if r[1] >= start)
        self._seen, self._xmin = seen, xmin
        commit = _commit(rows, totals[1] - self._totals[1], now)
        changes = self._changes(totals, messages)
        self._totals = totals
        return commit, changes

    def _changes(self, totals: tuple[Any, ...], messages: list[Any]) -> MessageChanges:
        before = self._totals
        funnel = {
            s: int(now - then)
            for s, now, then in zip(FUNNEL, totals[5:_END], before[5:_END], strict=True)
        }
        copies: tuple[MessageState, ...] = tuple(message_from_row(tuple(r)) for r in messages)
        deltas = (totals[2] - before[2], totals[3] - before[3], totals[4] - before[4])
        moved = any(deltas) or any(funnel.values())
        return MessageChanges(
            messages=copies,
            funnel_delta=funnel,
            new_messages=int(deltas[0]),
            in_flight_delta=int(deltas[1]),
            conflicts_delta=int(deltas[2]),
            changed=len(copies) or int(moved),
        )


def _commit(rows: list[Any], duplicates: int, now: int) -> Commit | None:
    if not rows and not duplicates:
        return None
    events = []
    transitions = []
    for r in rows:
        ev = event_from_row(tuple(r[2:18]))
        events.append(ev)
        before = State(r[18]) if r[18] else None
        after = State(r[19]) if r[19] else None
        transitions.append(Transition(ev, before, after, r[20]))
    return Commit(
        at=now,
        events=tuple(events),
        duplicates=int(duplicates),
        transitions=tuple(transitions),
        rejections_stored=0,
    )
