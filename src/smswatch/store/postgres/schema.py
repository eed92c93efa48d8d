"""PostgreSQL schema and its versioned migrations.

The tables mirror the SQLite back end's columns and types (times are BIGINT microseconds since
the epoch, every integer BIGINT), so the same row converters (store/queries/rows.py) read both.
What differs:

- Several instances write at once, so the folded state is written in the same transaction as
  the events (under row locks; store/postgres/writer.py), not checkpointed: no instance holds
  the whole state in memory.
- `xid` columns record the transaction that last wrote a row. A follower on every instance
  reads what changed since the oldest transaction still running at its last look
  (store/postgres/follow.py): that is how each instance sees what the others committed, in
  whatever order their transactions finish.
- Each event row keeps what it did to its recipient (`t_before`, `t_after`, `t_since`), so
  any instance can draw another's transitions.
- Text columns use the "C" collation: the byte order SQLite sorts in, whatever the server's
  locale.
- `totals` has one row per running instance, changed only by that instance's transactions:
  counters without a hot row that every commit would wait for; the totals are their sum.

Migrations run at start under a transaction-level advisory lock, so several instances that
start at once apply each step once; a database from a newer smswatch is refused.
"""

from __future__ import annotations

from typing import Any

from smswatch.store.errors import CannotOpen

SCHEMA_VERSION = 5
ADVISORY_LOCK = 0x736D7377  # "smsw": serializes migrations across instances

_V1 = """
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    dedupe_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    event_id        TEXT COLLATE "C" NOT NULL,
    provider        TEXT COLLATE "C" NOT NULL,
    event_type      TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL,
    message_id      TEXT COLLATE "C" NOT NULL,
    recipient       TEXT COLLATE "C",
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    time_estimated  BIGINT NOT NULL DEFAULT 0,
    carrier         TEXT COLLATE "C",
    error_code      TEXT COLLATE "C",
    error_message   TEXT COLLATE "C",
    payload         TEXT COLLATE "C" NOT NULL,
    retryable       BIGINT,
    info            TEXT COLLATE "C",
    t_before        TEXT COLLATE "C",
    t_after         TEXT COLLATE "C",
    t_since         BIGINT,
    instance        TEXT COLLATE "C" NOT NULL,
    xid             xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX events_by_recipient ON events (message_id, recipient, occurred_at);
CREATE INDEX events_by_xid ON events (xid);

CREATE TABLE messages (
    message_id        TEXT COLLATE "C" PRIMARY KEY,
    provider          TEXT COLLATE "C" NOT NULL,
    total_recipients  BIGINT,
    total_messages    BIGINT,
    total_cost        DOUBLE PRECISION,
    currency          TEXT COLLATE "C",
    scheduled_at      BIGINT,
    channel           TEXT COLLATE "C",
    metadata          TEXT COLLATE "C",
    n_queued          BIGINT NOT NULL DEFAULT 0,
    n_processing      BIGINT NOT NULL DEFAULT 0,
    n_sent            BIGINT NOT NULL DEFAULT 0,
    n_delivered       BIGINT NOT NULL DEFAULT 0,
    n_failed          BIGINT NOT NULL DEFAULT 0,
    known_recipients  BIGINT NOT NULL DEFAULT 0,
    conflicts         BIGINT NOT NULL DEFAULT 0,
    events            BIGINT NOT NULL DEFAULT 0,
    queued_at         BIGINT,
    first_at          BIGINT,
    last_at           BIGINT,
    first_received_at BIGINT,
    last_received_at  BIGINT,
    finished_at       BIGINT,
    xid               xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX messages_by_activity ON messages (last_received_at);
CREATE INDEX messages_by_xid ON messages (xid);

CREATE TABLE recipients (
    message_id     TEXT COLLATE "C" NOT NULL,
    recipient      TEXT COLLATE "C" NOT NULL,
    provider       TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C",
    state_at       BIGINT,
    queued_at      BIGINT,
    processing_at  BIGINT,
    sent_at        BIGINT,
    delivered_at   BIGINT,
    failed_at      BIGINT,
    carrier        TEXT COLLATE "C",
    carrier_at     BIGINT,
    error_code     TEXT COLLATE "C",
    error_message  TEXT COLLATE "C",
    retryable      BIGINT,
    error_at       BIGINT,
    conflict       BIGINT NOT NULL DEFAULT 0,
    events         BIGINT NOT NULL DEFAULT 0,
    last_event_at  BIGINT,
    updated_at     BIGINT,
    PRIMARY KEY (message_id, recipient)
);
CREATE INDEX recipients_by_phone ON recipients (recipient, provider, updated_at);
CREATE INDEX recipients_failed ON recipients (provider, error_code) WHERE state = 'failed';
CREATE INDEX recipients_open ON recipients (state, state_at)
    WHERE state IN ('queued', 'processing', 'sent');

CREATE TABLE quarantine (
    id            BIGSERIAL PRIMARY KEY,
    received_at   BIGINT NOT NULL,
    remote        TEXT COLLATE "C",
    method        TEXT COLLATE "C",
    path          TEXT COLLATE "C",
    provider      TEXT COLLATE "C",
    status        INTEGER NOT NULL,
    code          TEXT COLLATE "C" NOT NULL,
    reason        TEXT COLLATE "C" NOT NULL,
    content_type  TEXT COLLATE "C",
    body_size     BIGINT,
    body          BYTEA
);

CREATE TABLE totals (
    instance          TEXT COLLATE "C" PRIMARY KEY,
    events            BIGINT NOT NULL DEFAULT 0,
    duplicates        BIGINT NOT NULL DEFAULT 0,
    messages          BIGINT NOT NULL DEFAULT 0,
    in_flight         BIGINT NOT NULL DEFAULT 0,
    conflicts         BIGINT NOT NULL DEFAULT 0,
    n_queued          BIGINT NOT NULL DEFAULT 0,
    n_processing      BIGINT NOT NULL DEFAULT 0,
    n_sent            BIGINT NOT NULL DEFAULT 0,
    n_delivered       BIGINT NOT NULL DEFAULT 0,
    n_failed          BIGINT NOT NULL DEFAULT 0,
    first_received_at BIGINT,
    last_received_at  BIGINT,
    started_at        BIGINT
);

CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT COLLATE "C" NOT NULL);
"""

# Version 2: the forwarding outbox (store/postgres/outbox.py). A row per stored event and
# target, written in the event's own transaction by the instance that stored it; any
# instance's forwarder claims due rows with a lease (FOR UPDATE SKIP LOCKED), so each is sent
# by one instance at a time and a killed instance's claims run out and are taken again.
# `forward_rows` counts each instance's rows per target (no hot row), for the status.
_V2 = """
CREATE TABLE forwards (
    event         BIGINT NOT NULL,
    target        TEXT COLLATE "C" NOT NULL,
    state         TEXT COLLATE "C" NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    status        BIGINT,
    error         TEXT,
    last_at       BIGINT,
    delivered_at  BIGINT,
    lease_until   BIGINT,
    owner         TEXT,
    PRIMARY KEY (event, target)
);
CREATE INDEX forwards_due ON forwards (target, next_at) WHERE state = 'pending';
CREATE INDEX forwards_delivered ON forwards (target, delivered_at) WHERE state = 'delivered';
CREATE INDEX forwards_failed ON forwards (target, status) WHERE state = 'failed';
CREATE TABLE forward_attempts (
    event   BIGINT NOT NULL,
    target  TEXT COLLATE "C" NOT NULL,
    at      BIGINT NOT NULL,
    status  BIGINT,
    error   TEXT,
    ms      BIGINT
);
CREATE INDEX forward_attempts_by_event ON forward_attempts (event, at);
CREATE INDEX forward_attempts_by_target ON forward_attempts (target, at);
CREATE TABLE forward_rows (
    instance  TEXT COLLATE "C" NOT NULL,
    target    TEXT COLLATE "C" NOT NULL,
    rows      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (instance, target)
);
"""

# Version 3: each message's named campaign (campaigns/__init__.py), written in the transaction
# that stores the message's first event. Keyed by message: the messages table is written in
# every transaction here anyway, so a random key costs nothing the SQLite back end avoids.
# `id` grows with every row written (a tag by hand deletes and inserts), so a reader can ask
# what changed since the last id it saw, as on SQLite.
_V3 = """
CREATE TABLE campaigns (
    id          BIGSERIAL,
    message_id  TEXT COLLATE "C" PRIMARY KEY,
    campaign    TEXT COLLATE "C" NOT NULL,
    source      TEXT COLLATE "C" NOT NULL,
    tagged_at   BIGINT NOT NULL
);
CREATE INDEX campaigns_by_name ON campaigns (campaign, message_id);
CREATE INDEX campaigns_by_id ON campaigns (id);
"""

# Version 4: what polling the gateways' status APIs adds (reconcile/), as in the SQLite state.
_V4 = """
ALTER TABLE recipients ADD COLUMN polled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN gateway_delivered BIGINT;
ALTER TABLE messages ADD COLUMN gateway_failed BIGINT;
ALTER TABLE messages ADD COLUMN gateway_pending BIGINT;
ALTER TABLE messages ADD COLUMN gateway_at BIGINT;
CREATE INDEX recipients_polled ON recipients (message_id) WHERE polled = 1;
"""

# Version 5: the terminal state `unconfirmed` (core/domain.py), as in the SQLite state.
_V5 = """
ALTER TABLE messages ADD COLUMN n_unconfirmed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN unconfirmed_at BIGINT;
ALTER TABLE totals ADD COLUMN n_unconfirmed BIGINT NOT NULL DEFAULT 0;
"""

# MIGRATIONS[n] takes a database from version n to n + 1; version 0 is an empty database.
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2, 2: _V3, 3: _V4, 4: _V5}


class SchemaError(CannotOpen):
    pass


async def migrate(conn: Any) -> int:
    """Bring the database to SCHEMA_VERSION. Safe when several instances start at once: each
    step runs in a transaction that first takes the same advisory lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS smswatch_schema (version INTEGER NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM smswatch_schema")
        version = version or 0
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema version {version} is newer than this smswatch understands "
                f"({SCHEMA_VERSION}); upgrade smswatch"
            )
        while version < SCHEMA_VERSION:
            await conn.execute(MIGRATIONS[version])
            version += 1
            await conn.execute("INSERT INTO smswatch_schema VALUES ($1)", version)
        # A dump restored into another cluster keeps its rows' transaction ids, which may be
        # ahead of this cluster's: the followers would read those rows again at every look
        # until the counter caught up. Such rows are old news: mark them as written long ago.
        for table in ("events", "messages"):
            await conn.execute(
                f"UPDATE {table} SET xid = '1'::xid8 "
                "WHERE xid >= pg_snapshot_xmax(pg_current_snapshot())"
            )
    return version


async def schema_version(conn: Any) -> int:
    exists = await conn.fetchval("SELECT to_regclass('smswatch_schema') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM smswatch_schema"))
