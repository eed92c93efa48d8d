"""The two files of a SQLite store: the append-only log and the state file derived from it.

Preparing them (create, migrate, pair the state file with its log), connecting to them, and
reading the log back as events: what the writer, the reader and recovery all need.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from smswatch.core.domain import Event
from smswatch.store.queries.rows import LOG_COLUMNS, event_from_row
from smswatch.store.sqlite.schema import (
    adopt_legacy_state,
    check_ours,
    has_legacy_state,
    log_id,
    migrate,
    migrate_state,
    reset_state,
    state_path,
)


def prepare_database(path: str | Path) -> None:
    """Create or migrate the log file and its state file, both in WAL mode (persistent), and
    make sure the state file belongs to this log. Blocking."""
    steps = ((Path(path), migrate, "events"), (state_path(path), migrate_state, "meta"))
    for file, upgrade, table in steps:
        conn = sqlite3.connect(file, isolation_level=None)
        try:
            check_ours(conn, file, table)
            conn.execute("PRAGMA journal_mode=WAL")
            upgrade(conn)
        finally:
            conn.close()
    conn = connect_log(path)
    try:
        if has_legacy_state(conn):
            adopt_legacy_state(conn)
        elif log_id(conn, "state") != log_id(conn):
            reset_state(conn)  # made from another log, or new: fold this log into it
    finally:
        conn.close()


def connect_log(path: str | Path) -> sqlite3.Connection:
    """The log file, with its state file attached as `state`."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("ATTACH DATABASE ? AS state", (str(state_path(path)),))
    return conn


def connect_state(path: str | Path) -> sqlite3.Connection:
    """The state file, with its log attached (read only, for the timeline) as `log`."""
    conn = sqlite3.connect(state_path(path), isolation_level=None, check_same_thread=False)
    conn.execute("ATTACH DATABASE ? AS log", (str(path),))
    return conn


def stored_after(db: sqlite3.Connection, after: int) -> Iterator[tuple[int, list[Event]]]:
    """The log after an id, as events again, in chunks (with the last id of each)."""
    while True:
        rows = db.execute(
            f"SELECT id, {LOG_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT 2000",
            (after,),
        ).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield after, [event_from_row(row[1:]) for row in rows]
