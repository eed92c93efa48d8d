"""Durable storage: the store seam. `--db` names a SQLite file (the embedded default) or a
PostgreSQL database (a `postgresql://` URL); nothing outside this package knows which.

The SQLite back end is schema.py, state.py, writer.py and reader.py; the PostgreSQL one is the
`postgres` package. Both writers take events and answer the same way (group commit, futures
resolved after COMMIT), and both readers answer the same queries (tests/test_store_conformance.py
runs one suite against both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smswatch.store.location import describe, is_url
from smswatch.store.reader import NoDatabase, Reader
from smswatch.store.writer import StoreUnavailable, Unstorable, Writer


def make_writer(db: str | Path, **options: Any) -> Writer:
    """The writer for `--db`: a SQLite file's, or a PostgreSQL database's."""
    if is_url(db):
        from smswatch.store.postgres.writer import PgWriter

        return PgWriter(str(db), **options)  # type: ignore[return-value]
    return Writer(db, **options)


async def open_reader(db: str | Path, *, current: bool = False) -> Reader:
    """A reader for `--db`. `current` (SQLite): see the state as of the newest event, not of
    the last checkpoint; PostgreSQL's state is always current."""
    if is_url(db):
        from smswatch.store.postgres.reader import PgReader

        return await PgReader.open(db)
    return await Reader.open(db, current=current)


__all__ = [
    "NoDatabase",
    "Reader",
    "StoreUnavailable",
    "Unstorable",
    "Writer",
    "describe",
    "is_url",
    "make_writer",
    "open_reader",
]
