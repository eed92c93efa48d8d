"""SQLite schema and migrations.

The schema version lives in `PRAGMA user_version`. `MIGRATIONS[n]` takes a database from version
n to n+1, so a file written by an older smswatch is upgraded in place when it is opened; a file
from a newer smswatch is refused rather than misread.

Times are INTEGER microseconds since the epoch (UTC). `events` is the append-only log of every
unique event with its raw payload, and the only table written before a webhook is answered;
`recipients` and `messages` hold the folded state and `timeline` a recipient's events in event
time, so that no screen ever has to scan the log. Those three are written at checkpoints (see
store/writer.py), and `meta.checkpoint` is the id of the last event they cover: the log after
it is newer than they are. `quarantine` holds a bounded sample of rejected requests.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

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

# Version 2: the log's per-event secondary index goes; a recipient's events are found through
# `timeline`, written at checkpoints. The log keeps the last two fields of an event it lacked,
# so that the state can be folded from it alone. A version-1 file has its state tables up to
# date: its checkpoint covers every event it holds.
_V2 = """
DROP INDEX events_by_recipient;
ALTER TABLE events ADD COLUMN retryable INTEGER;
ALTER TABLE events ADD COLUMN info TEXT;  -- the event's message facts (JSON array), if any
CREATE TABLE timeline (
    message_id   TEXT NOT NULL,
    recipient    TEXT NOT NULL,  -- '' for the message's own events
    occurred_at  INTEGER NOT NULL,
    event        INTEGER NOT NULL,
    PRIMARY KEY (message_id, recipient, occurred_at, event)
) WITHOUT ROWID;
INSERT INTO timeline
    SELECT message_id, coalesce(recipient, ''), occurred_at, id FROM events;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('checkpoint', (SELECT coalesce(max(id), 0) FROM events));
"""

# MIGRATIONS[n] upgrades a version-n database to n+1. Version 0 is an empty file.
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2}


class SchemaError(Exception):
    pass


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a database to SCHEMA_VERSION. Runs in the connection's own thread."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {version} is newer than this smswatch understands "
            f"({SCHEMA_VERSION}); upgrade smswatch"
        )
    while version < SCHEMA_VERSION:
        script = MIGRATIONS[version] + f"\nPRAGMA user_version = {version + 1};"
        try:
            conn.executescript(f"BEGIN;\n{script}\nCOMMIT;")
        except sqlite3.Error:
            conn.rollback()
            raise
        version += 1
    return version


def read_checkpoint(conn: sqlite3.Connection) -> int:
    """The id of the last event the state tables and the timeline cover."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    return int(row[0]) if row else 0
