"""Read queries over the store: what inspect, export, stats and the TUI's data source ask.

A separate connection in query-only mode; in WAL mode it reads alongside the writer without
waiting for it. Every list is bounded by a `limit` or streamed, so no query loads all events.

The state tables are written at checkpoints (store/sqlite/writer.py), so on their own they
may lag the log by up to one checkpoint; a live screen is fed by the hub and can afford that.
Timelines always add the log after the checkpoint, so they never lag. A reader opened with
`current=True` (the command-line tools) folds that part of the log itself at open and lays it
over the tables through temporary views of the same names, so every query sees the state as of
the newest stored event.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from smswatch.core.campaigns import Selector
from smswatch.core.domain import FUNNEL, UNATTRIBUTED, MessageState, RecipientState, State
from smswatch.core.figures import FailureGroup, Latency, Percentiles, Totals, percentiles
from smswatch.core.records import Rejection, StoredEvent
from smswatch.store.errors import CannotOpen, NoDatabase, location_problem
from smswatch.store.queries.campaign_rows import CampaignRows
from smswatch.store.queries.campaigns import CampaignQueries, message_member, recipient_member
from smswatch.store.queries.paging import paged
from smswatch.store.queries.reconcile_rows import ReconcileRows
from smswatch.store.queries.rows import (
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    STORED_EVENT_COLUMNS,
    message_from_row,
    placeholders,
    recipient_from_row,
    stored_event,
)
from smswatch.store.sqlite.files import connect_log, prepare_database, stored_after
from smswatch.store.sqlite.schema import (
    SCHEMA_VERSION,
    STATE_SCHEMA_VERSION,
    is_not_sqlite,
    read_checkpoint,
    refuse_foreign,
    state_path,
    state_version,
)
from smswatch.store.state import StateCache

# What a user types in a filter matches anywhere in a field, whatever the case: `contains`
# gives the pattern, with LIKE's wildcards escaped so a typed `%` or `_` is literal. SQLite's
# LIKE ignores ASCII case; PostgreSQL's reader turns LIKE into ILIKE.
_LIKE = "LIKE ? ESCAPE '\\'"


def literal(text: str) -> str:
    """`text` as a LIKE pattern (for `_LIKE`) that matches only itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(text: str) -> str:
    """The LIKE pattern (for `_LIKE`) matching `text` anywhere, taken literally."""
    return f"%{literal(text)}%"


# The log after the last checkpoint is newer than the state tables and the timeline.
_CHECKPOINT = "(SELECT value FROM state.meta WHERE key = 'checkpoint')"
# The ids of a message's events (?1): through the timeline, plus the log after the checkpoint.
_OF_MESSAGE = (
    "SELECT event FROM timeline WHERE message_id = ?1 UNION ALL "
    f"SELECT id FROM events WHERE id > {_CHECKPOINT} AND message_id = ?1"
)


class Reader(CampaignQueries, CampaignRows, ReconcileRows):
    """Queries over the SQLite back end; store/postgres/reader.py answers the same ones."""

    NO_LIMIT: int | None = -1  # what LIMIT takes for "no limit"

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: str | Path, *, current: bool = False) -> Reader:
        """`current`: see the state as of the newest stored event, not of the last checkpoint
        (costs a fold of the log after it, once, at open)."""
        path = Path(path)
        problem = location_problem(path, writing=False)
        if not path.is_file():
            raise NoDatabase(
                f"no smswatch database at {path}" + (f": {problem}" if problem else "")
            )
        if problem is not None:
            raise NoDatabase(f"cannot read the database {path}: {problem}")
        db = await aiosqlite.connect(path)
        try:
            await db.execute("PRAGMA busy_timeout=5000")
            version = await cls._scalar(db, "PRAGMA user_version")
            if version == 0:
                await asyncio.to_thread(refuse_foreign, path)  # names what it holds instead
                raise NoDatabase(f"{path} is not an smswatch database (it is empty)")
            if version > SCHEMA_VERSION:
                raise NoDatabase(
                    f"{path} was written by a newer smswatch (schema {version}); upgrade smswatch"
                )
            if (
                version < SCHEMA_VERSION
                or not state_path(path).is_file()
                or state_version(state_path(path)) < STATE_SCHEMA_VERSION
            ):
                # Written by an older smswatch, or copied without its state file: do what a
                # writer does when it opens it (upgrade in place, the state folded from the
                # log), then read it.
                await asyncio.to_thread(prepare_database, path)
                current = True
            await db.execute("ATTACH DATABASE ? AS state", (str(state_path(path)),))
            if current:
                await overlay_tail(db, path)
            await db.execute("PRAGMA query_only=1")
        except sqlite3.OperationalError as exc:  # locked, unreadable: the file may be fine
            await db.close()
            if not is_not_sqlite(exc):
                raise NoDatabase(f"cannot read the database {path}: {exc}") from None
            raise NoDatabase(f"{path} is not an smswatch database ({exc})") from None
        except sqlite3.DatabaseError as exc:  # not SQLite at all, or damaged
            await db.close()
            raise NoDatabase(f"{path} is not an smswatch database ({exc})") from None
        except CannotOpen as exc:  # prepare_database refused it
            await db.close()
            raise NoDatabase(str(exc)) from None
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def _scalar(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
        async with db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # --- messages -------------------------------------------------------------------------------

    async def resolve_message_id(self, text: str) -> str | None:
        """An exact message id, or the one message whose id starts with `text`."""
        found = await self.message_ids_starting(text, 2)
        return found[0] if len(found) == 1 else None

    async def message_ids_starting(self, text: str, limit: int = 3) -> list[str]:
        """[text] if it is a message id, else up to `limit` ids that start with it."""
        if await self._scalar(self._db, "SELECT 1 FROM messages WHERE message_id = ?", (text,)):
            return [text]
        rows = await self._all(
            f"SELECT message_id FROM messages WHERE message_id {_LIKE} ORDER BY message_id LIMIT ?",
            (literal(text) + "%", limit),
        )
        return [r[0] for r in rows]

    async def message(self, message_id: str) -> MessageState | None:
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
        )
        return message_from_row(rows[0]) if rows else None

    async def recent_messages(
        self, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]:
        """Newest activity first; `failed_only`: with failed or conflicting recipients."""
        where = "WHERE n_failed > 0 OR conflicts > 0" if failed_only else ""
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages {where} "
            "ORDER BY last_received_at DESC LIMIT ?",
            (limit,),
        )
        return [message_from_row(r) for r in rows]

    async def search_messages(
        self, query: str, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]:
        """Messages matching a filter: `query` within the message id, a recipient's phone, a
        state, an error code, a carrier, the gateway or the channel (`contains`). Newest
        activity first."""
        q = query.strip()
        if not q:
            return await self.recent_messages(limit, failed_only=failed_only)
        like = contains(q)
        clauses = [f"m.message_id {_LIKE}", f"m.provider {_LIKE}", f"m.channel {_LIKE}"]
        params: list[Any] = [like, like, like]
        clauses.append(
            f"m.message_id IN (SELECT message_id FROM recipients WHERE recipient {_LIKE} "
            f"OR error_code {_LIKE} OR carrier {_LIKE})"
        )
        params += [like, like, like]
        # A state is matched by the message's count of it (a column), not a scan of recipients.
        clauses += [f"m.n_{s.value} > 0" for s in FUNNEL if q.lower() in s.value]
        failed = " AND (m.n_failed > 0 OR m.conflicts > 0)" if failed_only else ""
        sql = (
            f"SELECT {', '.join('m.' + c.strip() for c in MESSAGE_COLUMNS.split(','))} "
            f"FROM messages m WHERE ({' OR '.join(clauses)}){failed} "
            "ORDER BY m.last_received_at DESC LIMIT ?"
        )
        rows = await self._all(sql, (*params, limit))
        return [message_from_row(r) for r in rows]

    # --- recipients and events ------------------------------------------------------------------

    async def count_recipients(self, message_id: str) -> int:
        return int(
            await self._scalar(
                self._db, "SELECT count(*) FROM recipients WHERE message_id = ?", (message_id,)
            )
        )

    async def recipients(
        self,
        message_id: str,
        *,
        state: State | None = None,
        text: str | None = None,
        failed_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecipientState]:
        clauses = ["message_id = ?"]
        params: list[Any] = [message_id]
        if state is not None:
            clauses.append("state = ?")
            params.append(state.value)
        if failed_only:
            clauses.append("(state = 'failed' OR conflict = 1)")
        if text:
            like = contains(text)
            clauses.append(
                f"(recipient {_LIKE} OR state {_LIKE} OR error_code {_LIKE} OR carrier {_LIKE})"
            )
            params += [like] * 4
        sql = (
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE {' AND '.join(clauses)} "
            "ORDER BY recipient LIMIT ? OFFSET ?"
        )
        rows = await self._all(sql, (*params, self.NO_LIMIT if limit is None else limit, offset))
        return [recipient_from_row(r) for r in rows]

    async def recipient(self, message_id: str, recipient: str) -> RecipientState | None:
        rows = await self._all(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE message_id = ? AND recipient = ?",
            (message_id, recipient),
        )
        return recipient_from_row(rows[0]) if rows else None

    async def timeline(self, message_id: str, recipient: str | None) -> list[StoredEvent]:
        """A recipient's events (or the message-level ones, for None) in event-time order."""
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE id IN ("
            "SELECT event FROM timeline WHERE message_id = ?1 AND recipient = ?2 UNION ALL "
            f"SELECT id FROM events WHERE id > {_CHECKPOINT} AND message_id = ?1 "
            "AND coalesce(recipient, '') = ?2) ORDER BY occurred_at, id",
            (message_id, recipient or ""),
        )
        return [stored_event(r) for r in rows]

    async def message_events(self, message_id: str) -> list[StoredEvent]:
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE id IN ({_OF_MESSAGE}) "
            "ORDER BY recipient, occurred_at, id",
            (message_id,),
        )
        return [stored_event(r) for r in rows]

    async def recent_events(self, limit: int = 200) -> list[StoredEvent]:
        """The newest stored events, oldest first (for filling a live log at start)."""
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [stored_event(r) for r in reversed(rows)]

    async def events_after(
        self, after: int, limit: int = 1000, message_id: str | None = None
    ) -> list[StoredEvent]:
        """Up to `limit` stored events with an id above `after`, in storage order: one page of
        a keyset pagination."""
        if message_id:
            sql = (
                f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE id > ?2 "
                f"AND id IN ({_OF_MESSAGE}) ORDER BY id LIMIT ?3"
            )
            params: tuple[Any, ...] = (message_id, after, limit)
        else:
            sql = f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?"
            params = (after, limit)
        rows = await self._all(sql, params)
        return [stored_event(r) for r in rows]

    async def log_fields(self, ids: Sequence[int]) -> dict[int, tuple[str, bool | None, Any]]:
        """What the log keeps of these events beyond a StoredEvent: (dedupe key, retryable,
        message facts as the log's JSON text), for an export that `smswatch import` restores."""
        found: dict[int, tuple[str, bool | None, Any]] = {}
        for start in range(0, len(ids), 500):  # bounded: PostgreSQL numbers its parameters
            part = list(ids[start : start + 500])
            rows = await self._all(
                "SELECT id, dedupe_key, retryable, info FROM events "
                f"WHERE id IN ({placeholders(len(part))})",
                part,
            )
            for i, key, retryable, info in rows:
                found[i] = (key, None if retryable is None else bool(retryable), info)
        return found

    async def iter_events(
        self, message_id: str | None = None, chunk: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        """Every stored event (of one message, if given) in storage order, a page at a time."""
        async for ev in paged(lambda after, n: self.events_after(after, n, message_id), chunk):
            yield ev

    # --- aggregates -----------------------------------------------------------------------------

    async def totals(self, campaign: Selector | None = None) -> Totals:
        """The whole store's counters, or one campaign's."""
        rcond, rparams = recipient_member(campaign)
        mcond, mparams = message_member(campaign)
        funnel = dict.fromkeys(FUNNEL, 0)
        for state, n in await self._all(
            f"SELECT r.state, count(*) FROM recipients r WHERE r.state IS NOT NULL AND {rcond} "
            "GROUP BY r.state",
            rparams,
        ):
            funnel[State(state)] += n
        unseen = await self._scalar(
            self._db,
            "SELECT coalesce(sum(CASE WHEN m.total_recipients > m.known_recipients "
            f"THEN m.total_recipients - m.known_recipients ELSE 0 END), 0) FROM messages m "
            f"WHERE {mcond}",
            mparams,
        )
        funnel[State.QUEUED] += int(unseen or 0)
        # Each message counts its own events: summing them avoids scanning the events table.
        by_provider = {
            p: int(n)
            for p, n in await self._all(
                f"SELECT m.provider, sum(m.events) FROM messages m WHERE {mcond} "
                "GROUP BY m.provider",
                mparams,
            )
        }
        row = (
            await self._all(
                "SELECT count(*), "
                "coalesce(sum(CASE WHEN m.finished_at IS NULL THEN 1 ELSE 0 END), 0), "
                "coalesce(sum(m.conflicts), 0), min(m.first_received_at), "
                f"max(m.last_received_at) FROM messages m WHERE {mcond}",
                mparams,
            )
        )[0]
        return Totals(
            events=sum(by_provider.values()),
            messages=row[0],
            in_flight=int(row[1]),
            funnel=funnel,
            conflicts=int(row[2]),
            first_received_at=row[3],
            last_received_at=row[4],
            by_provider=by_provider,
        )

    async def failures(
        self,
        limit: int = 50,
        message_id: str | None = None,
        campaign: Selector | None = None,
    ) -> list[FailureGroup]:
        """Failed recipients grouped by gateway and error code, most frequent first."""
        cond, params = recipient_member(campaign)
        where = f"r.state = 'failed' AND {cond}"
        if message_id:
            where += " AND r.message_id = ?"
            params = [*params, message_id]
        # The latest message of the code among the same recipients (the campaign's).
        inner, inner_params = recipient_member(campaign, "r2")
        rows = await self._all(
            "SELECT r.provider, r.error_code, count(*), max(r.error_at), "
            "(SELECT r2.error_message FROM recipients r2 WHERE r2.state = 'failed' "
            " AND r2.provider = r.provider AND (r2.error_code = r.error_code "
            f" OR (r2.error_code IS NULL AND r.error_code IS NULL)) AND {inner} "
            " ORDER BY r2.error_at DESC NULLS LAST LIMIT 1), "
            "max(r.retryable) "
            f"FROM recipients r WHERE {where} GROUP BY r.provider, r.error_code "
            "ORDER BY count(*) DESC LIMIT ?",
            (*inner_params, *params, limit),
        )
        return [
            FailureGroup(p, code, n, at, msg, None if retry is None else bool(retry))
            for p, code, n, at, msg, retry in rows
        ]

    async def stuck(
        self, deadlines: dict[State, int], now: int, limit: int = 200, since: int | None = None
    ) -> list[RecipientState]:
        """Recipients still queued/processing/sent longer than their state's deadline (µs);
        with `since`, only those that entered it since then."""
        parts, params = [], []
        for state, deadline in deadlines.items():
            if since is None:
                parts.append("(state = ? AND state_at < ?)")
                params += [state.value, now - deadline]
            else:
                parts.append("(state = ? AND state_at < ? AND state_at >= ?)")
                params += [state.value, now - deadline, since]
        if not parts:
            return []
        rows = await self._all(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients "
            f"WHERE state IN ('queued', 'processing', 'sent') AND ({' OR '.join(parts)}) "
            "ORDER BY state_at LIMIT ?",
            (*params, limit),
        )
        return [recipient_from_row(r) for r in rows]

    async def count_stuck(
        self, deadlines: dict[State, int], now: int, campaign: Selector | None = None
    ) -> int:
        cond, params = recipient_member(campaign)
        total = 0
        for state, deadline in deadlines.items():
            total += await self._scalar(
                self._db,
                "SELECT count(*) FROM recipients r WHERE r.state = ? AND r.state_at < ? "
                f"AND {cond}",
                (state.value, now - deadline, *params),
            )
        return total

    async def latency_samples(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> dict[str, list[int]]:
        """Each recipient's time from queued to sent, from sent to delivered and from queued to
        delivered (µs): what latency percentiles and histograms are made of."""
        cond, params = recipient_member(campaign)
        if message_id is not None:
            cond += " AND r.message_id = ?"
            params = [*params, message_id]
        rows = await self._all(
            "SELECT coalesce(r.queued_at, m.queued_at), r.sent_at, r.delivered_at "
            f"FROM recipients r JOIN messages m ON m.message_id = r.message_id WHERE {cond}",
            params,
        )
        return {
            "queued_to_sent": [
                s - q for q, s, _ in rows if q is not None and s is not None and s >= q
            ],
            "sent_to_delivered": [
                d - s for _, s, d in rows if s is not None and d is not None and d >= s
            ],
            "queued_to_delivered": [
                d - q for q, _, d in rows if q is not None and d is not None and d >= q
            ],
        }

    async def latency(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> Latency:
        samples = await self.latency_samples(message_id, campaign)
        return Latency(
            percentiles(samples["queued_to_sent"]),
            percentiles(samples["sent_to_delivered"]),
            percentiles(samples["queued_to_delivered"]),
        )

    async def quarantine(self, limit: int = 100) -> list[Rejection]:
        """The newest rejected requests first."""
        rows = await self._all(
            "SELECT received_at, status, code, reason, remote, method, path, provider, "
            "content_type, body_size, body FROM quarantine ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [Rejection(*r) for r in rows]

    async def quarantine_count(self) -> int:
        return int(await self._scalar(self._db, "SELECT count(*) FROM quarantine") or 0)


__all__ = [
    "UNATTRIBUTED",
    "FailureGroup",
    "Latency",
    "Percentiles",
    "Reader",
    "Totals",
    "percentiles",
]


async def overlay_tail(db: aiosqlite.Connection, path: Path) -> int:
    """Fold the log after the last checkpoint (on a connection of its own, in a thread) and lay
    the result over the state tables as temporary views named like them. Returns the number of
    events folded; with none, the tables are current and nothing is laid over them."""
    recipients, messages, folded = await asyncio.to_thread(fold_tail, path)
    if not folded:
        return 0
    for name, columns, rows, key in (
        ("recipients", RECIPIENT_COLUMNS, recipients, ("message_id", "recipient")),
        ("messages", MESSAGE_COLUMNS, messages, ("message_id",)),
    ):
        await db.execute(f"CREATE TEMP TABLE tail_{name} AS SELECT * FROM state.{name} WHERE 0")
        await db.execute(
            f"CREATE UNIQUE INDEX temp.tail_{name}_key ON tail_{name} ({', '.join(key)})"
        )
        if rows:
            marks = ",".join("?" * len(rows[0]))
            await db.executemany(f"INSERT INTO tail_{name} ({columns}) VALUES ({marks})", rows)
        same = " AND ".join(f"t.{k} = m.{k}" for k in key)
        await db.execute(
            f"CREATE TEMP VIEW {name} AS SELECT * FROM state.{name} m WHERE NOT EXISTS "
            f"(SELECT 1 FROM tail_{name} t WHERE {same}) UNION ALL SELECT * FROM tail_{name}"
        )
    await db.commit()
    return folded


def fold_tail(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """(recipient rows, message rows, events folded): the state the log after the last
    checkpoint leads to, for what it touched."""
    conn = connect_log(path)
    try:
        conn.execute("PRAGMA query_only=1")
        conn.execute("BEGIN")  # one snapshot: the checkpoint and the log after it agree
        state = StateCache()
        folded = 0
        for _upto, chunk in stored_after(conn, read_checkpoint(conn)):
            folded += state.replay(conn, chunk)
        conn.execute("COMMIT")
        recipient_rows, message_rows = state.dirty_rows()
        return recipient_rows, message_rows, folded
    finally:
        conn.close()
