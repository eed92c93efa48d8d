"""The read queries of store/queries/reader.py, answered by PostgreSQL.

The shared SQL is run with its `?` placeholders numbered as `$n`, PostgreSQL's style; only the
queries over SQLite's timeline table, which this back end does not need, are written here.
Every commit is visible at once (the state is written with the events), so a reader is always
current and has no checkpoint to lay a tail over. A small pool: the TUI's data
source may have several queries in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from smswatch.core.records import StoredEvent
from smswatch.store.errors import NoDatabase
from smswatch.store.location import describe
from smswatch.store.postgres.dialect import numbered
from smswatch.store.postgres.schema import SCHEMA_VERSION, schema_version
from smswatch.store.queries.reader import ESCAPED, StoreQueries
from smswatch.store.queries.rows import STORED_EVENT_COLUMNS, stored_event


class PgReader(StoreQueries):
    LIKE = f"ILIKE {ESCAPED}"
    NO_LIMIT = None

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._db = pool
        self.path = describe(url)
        self.url = url

    @classmethod
    async def open(cls, url: str) -> PgReader:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=4,
                timeout=5,
                command_timeout=60,
                server_settings={
                    "application_name": "smswatch-reader",
                    "plan_cache_mode": "force_custom_plan",  # see writer.py
                    # Bursts are the messages `NOT IN` the campaigns table: PostgreSQL hashes
                    # that list only if it fits work_mem (4 MB by default, ~40,000 ids), and
                    # otherwise compares every message with every tagged id.
                    "work_mem": "64MB",
                },
            )
        except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as exc:
            # ValueError: a URL asyncpg refuses (an sslmode it does not know, ...)
            raise NoDatabase(f"cannot reach the database at {describe(url)}: {exc}") from None
        try:
            async with pool.acquire() as conn:
                version = await schema_version(conn)
        except BaseException:
            await pool.close()
            raise
        if version == 0 or version > SCHEMA_VERSION:
            await pool.close()
            what = "has no smswatch tables" if version == 0 else "was written by a newer smswatch"
            raise NoDatabase(f"the database at {describe(url)} {what}")
        return cls(pool, url)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> PgReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._db.fetchval(numbered(sql), *params)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        rows = await self._db.fetch(numbered(sql), *params)
        return [tuple(r) for r in rows]

    # --- where PostgreSQL's SQL differs ---------------------------------------------------------

    async def timeline(self, message_id: str, recipient: str | None) -> list[StoredEvent]:
        which, params = (
            ("recipient = ?", (message_id, recipient))
            if recipient
            else (
                "recipient IS NULL",
                (message_id,),
            )
        )
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE message_id = ? AND {which} "
            "ORDER BY occurred_at, id",
            params,
        )
        return [stored_event(r) for r in rows]

    async def message_events(self, message_id: str) -> list[StoredEvent]:
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE message_id = ? "
            "ORDER BY recipient NULLS FIRST, occurred_at, id",
            (message_id,),
        )
        return [stored_event(r) for r in rows]

    async def events_after(
        self, after: int, limit: int = 1000, message_id: str | None = None
    ) -> list[StoredEvent]:
        if message_id:
            sql = (
                f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE message_id = ? AND id > ? "
                "ORDER BY id LIMIT ?"
            )
            params: tuple[Any, ...] = (message_id, after, limit)
        else:
            sql = f"SELECT {STORED_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?"
            params = (after, limit)
        return [stored_event(r) for r in await self._all(sql, params)]
