"""Durable storage: the store seam. `--db` names a SQLite file (the embedded default) or a
PostgreSQL database (a `postgresql://` URL); nothing outside this package knows which.

`backend_for` is the one place that tells them apart; store/api.py says what a back end makes
(writer, readers, outbox, lease). The SQLite back end is the `sqlite` package, the PostgreSQL
one the `postgres` package; the SQL and row mapping both run are in `queries`. Both writers
take events and answer the same way (group commit, futures resolved after COMMIT), and both
readers answer the same queries (tests/test_store_conformance.py runs one suite against both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from smswatch.campaigns.rule import own_name
from smswatch.store.api import Backend, EventStore, StoreReader, WriterOptions
from smswatch.store.errors import NoDatabase, StoreUnavailable, Unstorable
from smswatch.store.location import describe, is_url


def backend_for(db: str | Path) -> Backend:
    """The back end `--db` names: a PostgreSQL database for a URL, else a SQLite file."""
    if is_url(db):
        from smswatch.store.postgres.backend import PostgresBackend

        return PostgresBackend(str(db))
    # Imported here, as PostgreSQL's is: a program that never opens a store (the monitor
    # attached to a remote feed) loads neither back end.
    from smswatch.store.sqlite.backend import SqliteBackend

    return SqliteBackend(db)


def make_writer(
    db: str | Path, options: WriterOptions | None = None, **changes: object
) -> EventStore:
    """The writer for `--db`, with `options` (or the defaults) and any field changed by name."""
    chosen = options or WriterOptions()
    if changes:
        chosen = dataclasses.replace(chosen, **changes)
    return backend_for(db).make_writer(chosen)


async def open_reader(db: str | Path, *, current: bool = False) -> StoreReader:
    """A reader for `--db`. `current` (SQLite): see the state as of the newest event, not of
    the last checkpoint; PostgreSQL's state is always current."""
    return await backend_for(db).open_reader(current=current)


async def tag_messages(db: str | Path, name: str, message_ids: Iterable[str], at: int) -> int:
    """Put messages in the named campaign (replacing whatever campaign they had). A write of
    its own, beside a running writer: SQLite takes the log's write lock for a moment."""
    clean = own_name(name)
    if not clean:
        raise ValueError("a campaign needs a name")
    ids = sorted({m for m in message_ids if m})
    if not ids:
        return 0
    return await backend_for(db).tag_messages(clean, ids, at)


__all__ = [
    "Backend",
    "EventStore",
    "NoDatabase",
    "StoreReader",
    "StoreUnavailable",
    "Unstorable",
    "WriterOptions",
    "backend_for",
    "describe",
    "is_url",
    "make_writer",
    "open_reader",
    "tag_messages",
]
