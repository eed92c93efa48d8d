"""The SQLite back end behind the store seam: `--db` is a path."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from smswatch.campaigns.rule import TAG
from smswatch.store.api import Lease, Outbox, StoreReader, WriterOptions
from smswatch.store.sqlite.outbox import AsyncOutbox
from smswatch.store.sqlite.reader import Reader
from smswatch.store.sqlite.writer import Writer


class SqliteBackend:
    """One process writes the file (a lock file says which); readers open it beside it."""

    shared = False

    def __init__(self, db: str | Path) -> None:
        self.db = db

    def describe(self) -> str:
        return str(self.db)

    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error, OSError, TimeoutError)

    def make_writer(self, options: WriterOptions) -> Writer:
        o = options
        return Writer(
            self.db,
            durability=o.durability,
            max_db_bytes=o.max_db_bytes,
            max_batch=o.max_batch,
            quarantine_keep=o.quarantine_keep,
            quarantine_body_max=o.quarantine_body_max,
            busy_timeout_ms=o.busy_timeout_ms,
            checkpoint_interval=o.checkpoint_interval,
            checkpoint_dirty=o.checkpoint_dirty,
            commit_window=o.commit_window,
            on_commit=o.on_commit,
            on_health=o.on_health,
            clock=o.clock,
            campaigns=o.campaigns,
        )

    async def open_reader(self, *, current: bool = False) -> StoreReader:
        return await Reader.open(self.db, current=current)

    def open_outbox(self, instance: str = "", lease_us: int = 30_000_000) -> Outbox:
        return AsyncOutbox(self.db)  # one forwarder per file: nothing to claim or lease

    def lease(self, name: str) -> Lease | None:
        return None

    async def tag_messages(self, name: str, message_ids: Sequence[str], at: int) -> int:
        return await asyncio.to_thread(_tag, Path(self.db), name, list(message_ids), at)


def _tag(path: Path, name: str, ids: list[str], at: int) -> int:
    # The log alone: with the state file attached, the transaction would lock it too.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TEMP TABLE tagging (message_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO temp.tagging VALUES (?)", [(m,) for m in ids])
        conn.execute("DELETE FROM campaigns WHERE message_id IN (SELECT message_id FROM tagging)")
        conn.executemany(
            "INSERT INTO campaigns (message_id, campaign, source, tagged_at) VALUES (?, ?, ?, ?)",
            [(m, name, TAG, at) for m in ids],
        )
        conn.execute("COMMIT")
        return len(ids)
    finally:
        conn.close()
