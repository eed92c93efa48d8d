"""The read side of a SQLite store: store/queries/reader.py's queries over its two files.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from smswatch.core.records import StoredEvent
from smswatch.store.errors import CannotOpen, NoDatabase, location_problem
from smswatch.store.queries.reader import ESCAPED, StoreQueries
from smswatch.store.queries.rows import (
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    STORED_EVENT_COLUMNS,
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

# The log after the last checkpoint is newer than the state tables and the timeline.
_CHECKPOINT = "(SELECT value FROM state.meta WHERE key = 'checkpoint')"
# The ids of a message's events (?1): through the timeline, plus the log after the checkpoint.
_OF_MESSAGE = (
    "SELECT event FROM timeline WHERE message_id = ?1 UNION ALL "
    f"SELECT id FROM events WHERE id > {_CHECKPOINT} AND message_id = ?1"
)


class Reader(StoreQueries):
    """The queries of store/queries/reader.py, on a SQLite store."""

    LIKE = f"LIKE {ESCAPED}"
    NO_LIMIT = -1

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

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._scalar(self._db, sql, params)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # --- where the SQLite back end's SQL is its own --------------------------------------------
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
