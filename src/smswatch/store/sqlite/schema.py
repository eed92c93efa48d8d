"""SQLite schema and migrations, for the two files of a database.

The database (`--db PATH`) holds the log: `events`, the append-only record of every unique
event with its raw payload and the only table written before a webhook is answered, and
`quarantine`, a bounded sample of rejected requests. Beside it, `PATH-state` holds what is
derived from the log: `recipients` and `messages` (the folded state) and `timeline` (each
recipient's events in event time), so that no screen ever has to scan the log. The state file
is written at checkpoints (store/sqlite/writer.py) by a thread of its own, which is why it is a
file of its own: SQLite has one write lock per file, and a checkpoint must not hold up the
commits that webhooks are waiting for. Its `meta.checkpoint` is the id of the last event it
covers (the log after it is newer), and `meta.log_id` names the log it was derived from; a
state file that does not match its log is rebuilt from the log.

Each file's schema version lives in its `PRAGMA user_version`. `MIGRATIONS[n]` (and
`STATE_MIGRATIONS[n]`) take a file from version n to n+1, so a file written by an older smswatch
is upgraded in place when it is opened; a file from a newer smswatch is refused rather than
misread. Times are INTEGER microseconds since the epoch (UTC).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from smswatch.store.errors import CannotOpen, NotOurs

SCHEMA_VERSION = 3

_V1 = """
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    state           TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    recipient       TEXT,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    time_estimated  INTEGER NOT NULL DEFAULT 0,
    carrier         TEXT,
    error_code      TEXT,
    error_message   TEXT,
    payload         TEXT NOT NULL
);
CREATE INDEX events_by_recipient ON events (message_id, recipient, occurred_at);

CREATE TABLE messages (
    message_id        TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    total_recipients  INTEGER,
    total_messages    INTEGER,
    total_cost        REAL,
    currency          TEXT,
    scheduled_at      INTEGER,
    channel           TEXT,
    metadata          TEXT,
    n_queued          INTEGER NOT NULL DEFAULT 0,
    n_processing      INTEGER NOT NULL DEFAULT 0,
    n_sent            INTEGER NOT NULL DEFAULT 0,
    n_delivered       INTEGER NOT NULL DEFAULT 0,
    n_failed          INTEGER NOT NULL DEFAULT 0,
    known_recipients  INTEGER NOT NULL DEFAULT 0,
    conflicts         INTEGER NOT NULL DEFAULT 0,
    events            INTEGER NOT NULL DEFAULT 0,
    queued_at         INTEGER,
    first_at          INTEGER,
    last_at           INTEGER,
    first_received_at INTEGER,
    last_received_at  INTEGER,
    finished_at       INTEGER
);
CREATE INDEX messages_by_activity ON messages (last_received_at);

CREATE TABLE recipients (
    message_id     TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    provider       TEXT NOT NULL,
    state          TEXT,
    state_at       INTEGER,
    queued_at      INTEGER,
    processing_at  INTEGER,
    sent_at        INTEGER,
    delivered_at   INTEGER,
    failed_at      INTEGER,
    carrier        TEXT,
    carrier_at     INTEGER,
    error_code     TEXT,
    error_message  TEXT,
    retryable      INTEGER,
    error_at       INTEGER,
    conflict       INTEGER NOT NULL DEFAULT 0,
    events         INTEGER NOT NULL DEFAULT 0,
    last_event_at  INTEGER,
    updated_at     INTEGER,
    PRIMARY KEY (message_id, recipient)
) WITHOUT ROWID;
CREATE INDEX recipients_by_phone ON recipients (recipient);
CREATE INDEX recipients_failed ON recipients (provider, error_code) WHERE state = 'failed';
CREATE INDEX recipients_open ON recipients (state, state_at)
    WHERE state IN ('queued', 'processing', 'sent');

CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY,
    received_at   INTEGER NOT NULL,
    remote        TEXT,
    method        TEXT,
    path          TEXT,
    provider      TEXT,
    status        INTEGER NOT NULL,
    code          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    content_type  TEXT,
    body_size     INTEGER,
    body          BLOB
);
"""

# Version 2: the log's file holds the log alone. The per-event secondary index goes (a
# recipient's events are found through the state file's `timeline`), the log keeps the two
# fields of an event it lacked so that the state can be folded from it alone, and it gets a
# name. A version-1 file's `recipients` and `messages` are current; the writer moves them into
# the state file (`adopt_legacy_state`).
_V2 = """
DROP INDEX events_by_recipient;
ALTER TABLE events ADD COLUMN retryable INTEGER;
ALTER TABLE events ADD COLUMN info TEXT;  -- the event's message facts (JSON array), if any
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta VALUES ('log_id', lower(hex(randomblob(16))));
"""

# Version 3: the named campaign of each message (campaigns/__init__.py). A fact decided when the
# message is first stored (or tagged later by hand), not derived from the log, so it lives in
# the log's file and is written in the same transaction as the message's first event. A rowid
# table: its inserts append, where a key on the random message id would rewrite index pages all
# over at every commit. At most one row per message (`campaign tag` deletes and inserts, so a
# new id marks every change). The index covers the message id: listing a campaign's 100,000
# messages through the table's rows took 150 ms, through the index 5 ms.
_V3 = """
CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL,
    campaign    TEXT NOT NULL,
    source      TEXT NOT NULL,
    tagged_at   INTEGER NOT NULL
);
CREATE INDEX campaigns_by_name ON campaigns (campaign, message_id);
"""

# MIGRATIONS[n] upgrades a version-n log file to n+1. Version 0 is an empty file.
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2, 2: _V3}

STATE_SCHEMA_VERSION = 3
_STATE_V1 = (
    _V1[_V1.index("CREATE TABLE messages") : _V1.index("CREATE TABLE quarantine")]
    + """
CREATE TABLE timeline (
    message_id   TEXT NOT NULL,
    recipient    TEXT NOT NULL,  -- '' for the message's own events
    occurred_at  INTEGER NOT NULL,
    event        INTEGER NOT NULL,
    PRIMARY KEY (message_id, recipient, occurred_at, event)
) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta VALUES ('checkpoint', 0), ('log_id', '');
"""
)
# State version 2: what polling the gateways' status APIs adds (reconcile/): whether a
# recipient's final state came from a poll, and a message's counts as the gateway last gave them.
_STATE_V2 = """
ALTER TABLE recipients ADD COLUMN polled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN gateway_delivered INTEGER;
ALTER TABLE messages ADD COLUMN gateway_failed INTEGER;
ALTER TABLE messages ADD COLUMN gateway_pending INTEGER;
ALTER TABLE messages ADD COLUMN gateway_at INTEGER;
CREATE INDEX recipients_polled ON recipients (message_id) WHERE polled = 1;
"""
# State version 3: the terminal state `unconfirmed` (core/domain.py): a message's count of it
# and a recipient's first time in it. Appended, as every reader names its columns.
_STATE_V3 = """
ALTER TABLE messages ADD COLUMN n_unconfirmed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN unconfirmed_at INTEGER;
"""
STATE_MIGRATIONS: dict[int, str] = {0: _STATE_V1, 1: _STATE_V2, 2: _STATE_V3}


class SchemaError(CannotOpen):
    pass


def migrate(
    conn: sqlite3.Connection,
    version_now: int | None = None,
    migrations: dict[int, str] | None = None,
) -> int:
    """Bring a log file (or, given the state's versions, a state file) to its current version.
    Runs in the connection's own thread."""
    target = SCHEMA_VERSION if version_now is None else version_now
    steps = MIGRATIONS if migrations is None else migrations
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > target:
        raise SchemaError(
            f"database schema version {version} is newer than this smswatch understands "
            f"({target}); upgrade smswatch"
        )
    while version < target:
        script = steps[version] + f"\nPRAGMA user_version = {version + 1};"
        try:
            conn.executescript(f"BEGIN;\n{script}\nCOMMIT;")
        except sqlite3.Error:
            conn.rollback()
            raise
        version += 1
    return version


def is_not_sqlite(exc: sqlite3.Error) -> bool:
    """SQLite's answer for a file that is not a database at all (text, random bytes)."""
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB"


def check_ours(conn: sqlite3.Connection, file: str | Path, table: str) -> None:
    """Refuse, before anything is written to it, a file that is not SQLite or that holds
    another application's tables: migrating it would add smswatch's tables beside them.
    `table` is one every version of this kind of file has (`events` in a log)."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
    except sqlite3.DatabaseError as exc:
        if is_not_sqlite(exc):
            raise NotOurs(f"{file} is not an smswatch database ({exc})") from None
        raise
    if tables and (version == 0 or table not in tables):
        shown = ", ".join(tables[:3]) + (", …" if len(tables) > 3 else "")
        raise NotOurs(
            f"{file} is not an smswatch database: it holds another application's tables "
            f"({shown}); give smswatch a file of its own with --db"
        )


def refuse_foreign(path: str | Path) -> None:
    """Raise NotOurs for an existing file that is not SQLite or not smswatch's, without
    writing to it; any other trouble opening it is left to the code that opens it next."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        check_ours(conn, path, "events")
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            raise NotOurs(f"{path} is not an smswatch database (it is empty)")
    except NotOurs:
        raise
    except sqlite3.Error:
        return
    finally:
        conn.close()


def migrate_state(conn: sqlite3.Connection) -> int:
    return migrate(conn, STATE_SCHEMA_VERSION, STATE_MIGRATIONS)


def state_version(path: Path) -> int:
    """A state file's schema version (0 if it cannot be read)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def state_path(log: str | Path) -> Path:
    """The state file that belongs to a log file."""
    log = Path(log)
    return log.with_name(log.name + "-state")


def log_id(conn: sqlite3.Connection, schema: str = "main") -> str:
    row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'log_id'").fetchone()
    return str(row[0]) if row else ""


def read_checkpoint(conn: sqlite3.Connection, schema: str = "state") -> int:
    """The id of the last event the state file covers."""
    row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'checkpoint'").fetchone()
    return int(row[0]) if row else 0


def has_legacy_state(conn: sqlite3.Connection) -> bool:
    """A version-1 log file still holds its folded state."""
    sql = "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'recipients'"
    return conn.execute(sql).fetchone() is not None


def adopt_legacy_state(conn: sqlite3.Connection) -> None:
    """Move a version-1 file's state (current up to its last event) into the attached state
    file, then out of the log. Two commits, in that order: interrupted, it is simply done
    again on the next open."""
    conn.execute("BEGIN IMMEDIATE")
    for table in ("timeline", "recipients", "messages"):
        conn.execute(f"DELETE FROM state.{table}")
    # Version 1's columns: the state file has grown columns since, which keep their defaults.
    for table in ("recipients", "messages"):
        columns = ", ".join(
            row[1] for row in conn.execute(f"PRAGMA main.table_info({table})").fetchall()
        )
        conn.execute(f"INSERT INTO state.{table} ({columns}) SELECT {columns} FROM main.{table}")
    conn.execute(
        "INSERT INTO state.timeline SELECT message_id, coalesce(recipient, ''), occurred_at, id "
        "FROM main.events"
    )
    conn.execute(
        "UPDATE state.meta SET value = (SELECT coalesce(max(id), 0) FROM main.events) "
        "WHERE key = 'checkpoint'"
    )
    conn.execute("UPDATE state.meta SET value = ? WHERE key = 'log_id'", (log_id(conn),))
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DROP TABLE main.recipients")
    conn.execute("DROP TABLE main.messages")
    conn.execute("COMMIT")


def reset_state(conn: sqlite3.Connection) -> None:
    """Empty the attached state file and bind it to this log: it will be folded from the log
    again (it was made from another log, or is missing)."""
    conn.execute("BEGIN IMMEDIATE")
    for table in ("timeline", "recipients", "messages"):
        conn.execute(f"DELETE FROM state.{table}")
    conn.execute("UPDATE state.meta SET value = 0 WHERE key = 'checkpoint'")
    conn.execute("UPDATE state.meta SET value = ? WHERE key = 'log_id'", (log_id(conn),))
    conn.execute("COMMIT")
