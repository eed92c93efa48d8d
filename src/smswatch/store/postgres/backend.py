"""The PostgreSQL back end behind the store seam: `--db` is a `postgresql://` URL, and several
instances may share the database. The driver is imported only once something is opened."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from smswatch.campaigns.rule import TAG
from smswatch.store.api import EventStore, Lease, Outbox, StoreReader, WriterOptions
from smswatch.store.location import describe


class PostgresBackend:
    """Every instance writes; jobs that must run once are leased."""

    shared = True

    def __init__(self, url: str) -> None:
        self.db = url

    def describe(self) -> str:
        return describe(self.db)

    def errors(self) -> tuple[type[BaseException], ...]:
        import asyncpg

        return (sqlite3.Error, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

    def make_writer(self, options: WriterOptions) -> EventStore:
        from smswatch.store.postgres.writer import PgWriter

        o = options
        return PgWriter(
            self.db,
            durability=o.durability,
            max_db_bytes=o.max_db_bytes,
            max_batch=o.max_batch,
            quarantine_keep=o.quarantine_keep,
            quarantine_body_max=o.quarantine_body_max,
            on_commit=o.on_commit,
            on_health=o.on_health,
            clock=o.clock,
            connect_timeout=o.connect_timeout,
            forward_targets=o.forward_targets,
            campaigns=o.campaigns,
        )

    async def open_reader(self, *, current: bool = False) -> StoreReader:
        """Every commit is visible at once here: a reader is always current."""
        from smswatch.store.postgres.reader import PgReader

        return await PgReader.open(self.db)

    def open_outbox(self, instance: str = "", lease_us: int = 30_000_000) -> Outbox:
        from smswatch.store.postgres.outbox import PgOutbox

        return PgOutbox(self.db, instance, lease_us)

    def lease(self, name: str) -> Lease | None:
        from smswatch.store.postgres.lease import PgLease

        return PgLease(self.db, name=name)

    async def tag_messages(self, name: str, message_ids: Sequence[str], at: int) -> int:
        import asyncpg

        ids = list(message_ids)
        conn = await asyncpg.connect(self.db)
        try:
            # Deleted and inserted, not updated: the new id tells readers the row changed.
            async with conn.transaction():
                await conn.execute("DELETE FROM campaigns WHERE message_id = ANY($1::text[])", ids)
                await conn.execute(
                    "INSERT INTO campaigns (message_id, campaign, source, tagged_at) "
                    "SELECT unnest($1::text[]), $2, $3, $4",
                    ids,
                    name,
                    TAG,
                    at,
                )
        finally:
            await conn.close()
        return len(ids)
