"""asyncpg against psycopg 3 on the insert path of a PostgreSQL webhook store (issue 11).

    python -m benchmarks.pg_drivers [--rounds 7] [--events 20000] [--loop uvloop|asyncio]

A throwaway server (tests/pg_server.py) with a database per driver. 32 concurrent senders each
hand one event at a time to a single writer and wait for its commit, as the listener's webhook
handlers do. The writer takes up to 256 pending events per transaction (group commit):

    INSERT INTO events (12 columns) SELECT * FROM unnest($1::text[], ...)
        ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, seq
    INSERT INTO recipients ... SELECT * FROM unnest(...) ON CONFLICT (message_id, recipient)
        DO UPDATE ...                  -- one row per (message, recipient) newly stored
    COMMIT                             -- synchronous_commit = on, fsync = on

then resolves the senders' futures. 5% of the events repeat an earlier event (dedupe path).
The drivers take turns round by round (same events, same table sizes at each round); the first
round of each is a warm-up. Client CPU is this process's (getrusage), harness included: the
`harness` line is the same senders and writer with no database. Server CPU is the postmaster
and its children (/proc). Medians of the rounds; prints one JSON object.

Drivers, each in its fastest idiom we found:
  asyncpg           prepared statements, `fetch` with arrays (binary protocol), transaction()
  psycopg           AsyncConnection, prepared, binary arrays (%b) and binary results, a cursor
                    reused, transaction() (BEGIN, INSERT, UPSERT, COMMIT: 4 round trips)
  psycopg-pipeline  the same in pipeline mode: BEGIN+INSERT, then UPSERT+COMMIT (2 round trips)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
from tests.pg_server import _children, start_postgres

SENDERS = 32
MAX_BATCH = 256
RECIPIENTS = 20_000  # distinct (message, recipient) pairs: the first rounds insert, later update
DUPLICATE_EVERY = 20  # 5%
STATUSES = ("queued", "processing", "sent", "delivered")
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCHEMA = """
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    dedupe_key text NOT NULL UNIQUE,
    provider text NOT NULL,
    event_id text NOT NULL,
    message_id text NOT NULL,
    recipient text NOT NULL,
    status text NOT NULL,
    error_code text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    campaign text,
    attempt integer NOT NULL,
    payload jsonb NOT NULL
);
CREATE TABLE recipients (
    message_id text NOT NULL,
    recipient text NOT NULL,
    status text NOT NULL,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    events integer NOT NULL DEFAULT 1,
    PRIMARY KEY (message_id, recipient)
);
"""

COLUMNS = (
    "dedupe_key, provider, event_id, message_id, recipient, status, error_code, "
    "occurred_at, received_at, campaign, attempt, payload"
)
TYPES = (
    "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]",
    "timestamptz[]", "timestamptz[]", "text[]", "int4[]", "jsonb[]",
)  # fmt: skip
UPSERT_TYPES = ("text[]", "text[]", "text[]", "int8[]", "timestamptz[]")
UPSERT_TAIL = (
    " ON CONFLICT (message_id, recipient) DO UPDATE SET status = EXCLUDED.status,"
    " last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at,"
    " events = recipients.events + 1"
)


def insert_sql(mark: Callable[[int], str]) -> str:
    arrays = ", ".join(f"{mark(i + 1)}::{t}" for i, t in enumerate(TYPES))
    return (
        f"INSERT INTO events ({COLUMNS}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, seq"
    )


def upsert_sql(mark: Callable[[int], str]) -> str:
    arrays = ", ".join(f"{mark(i + 1)}::{t}" for i, t in enumerate(UPSERT_TYPES))
    return (
        "INSERT INTO recipients (message_id, recipient, status, last_seq, updated_at)"
        f" SELECT * FROM unnest({arrays}){UPSERT_TAIL}"
    )


Event = tuple[Any, ...]


def make_events(start: int, count: int) -> list[Event]:
    """Events start..start+count: recipient n % RECIPIENTS moves one status on per pass."""
    base = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    pad = "x" * 170
    events = []
    for n in range(start, start + count):
        k = n - 7 if n % DUPLICATE_EVERY == 0 and n >= start + 7 else n  # a repeat of an original
        pair = k % RECIPIENTS
        message_id = f"msg{pair // 40:06d}"
        recipient = f"+2439{pair:08d}"
        status = STATUSES[(k // RECIPIENTS) % len(STATUSES)]
        failed = status == "delivered" and k % 17 == 0
        event_id = f"evt-{k:010d}"
        when = base + timedelta(milliseconds=k)
        payload = json.dumps(
            {
                "event_id": event_id,
                "event_type": f"sms.{'failed' if failed else status}",
                "timestamp": when.isoformat(),
                "message_id": message_id,
                "data": {
                    "recipient_phone": recipient,
                    "segments": 1,
                    "error_code": "1003" if failed else None,
                    "campaign": "black-friday",
                    "note": pad,
                },
            }
        )
        events.append(
            (
                f"lisoloo:{event_id}",
                "lisoloo",
                event_id,
                message_id,
                recipient,
                "failed" if failed else status,
                "1003" if failed else None,
                when,
                when + timedelta(milliseconds=40),
                "black-friday",
                1,
                payload,
            )
        )
    return events


def upsert_columns(events: Sequence[Event], seqs: dict[str, int]) -> list[list[Any]]:
    """One row per (message, recipient) among the newly stored events, the latest one."""
    latest: dict[tuple[str, str], tuple[str, int, datetime]] = {}
    for ev in events:
        seq = seqs.get(ev[0])
        if seq is not None:
            latest[(ev[3], ev[4])] = (ev[5], seq, ev[7])
    mids, rcpts, statuses, last, times = [], [], [], [], []
    for (mid, rcpt), (status, seq, when) in latest.items():
        mids.append(mid)
        rcpts.append(rcpt)
        statuses.append(status)
        last.append(seq)
        times.append(when)
    return [mids, rcpts, statuses, last, times]


def columns(events: Sequence[Event]) -> list[list[Any]]:
    return [list(c) for c in zip(*events, strict=True)]


class Driver:
    name = "harness"

    async def open(self, url: str) -> None:
        pass

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        cols = columns(events)
        seqs = {key: i for i, key in enumerate(cols[0])}
        upsert_columns(events, seqs)
        return seqs

    async def close(self) -> None:
        pass


class Asyncpg(Driver):
    name = "asyncpg"

    async def open(self, url: str) -> None:
        self.conn = await asyncpg.connect(url)
        self.insert = await self.conn.prepare(insert_sql(lambda i: f"${i}"))
        self.upsert = await self.conn.prepare(upsert_sql(lambda i: f"${i}"))

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        async with self.conn.transaction():
            rows = await self.insert.fetch(*columns(events))
            seqs = {key: seq for key, seq in rows}
            await self.upsert.fetch(*upsert_columns(events, seqs))
        return seqs

    async def close(self) -> None:
        await self.conn.close()


class Psycopg(Driver):
    name = "psycopg"

    async def open(self, url: str) -> None:
        self.conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        self.cur = self.conn.cursor(binary=True)
        self.insert = insert_sql(lambda i: "%b")
        self.upsert = upsert_sql(lambda i: "%b")

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        cur = self.cur
        async with self.conn.transaction():
            await cur.execute(self.insert, columns(events), prepare=True)
            seqs = {key: seq for key, seq in await cur.fetchall()}
            await cur.execute(self.upsert, upsert_columns(events, seqs), prepare=True)
        return seqs

    async def close(self) -> None:
        await self.conn.close()


class PsycopgPipeline(Psycopg):
    name = "psycopg-pipeline"

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        cur = self.cur
        async with self.conn.pipeline(), self.conn.transaction():
            await cur.execute(self.insert, columns(events), prepare=True)
            seqs = {key: seq for key, seq in await cur.fetchall()}  # sends BEGIN + INSERT
            await cur.execute(self.upsert, upsert_columns(events, seqs), prepare=True)
        return seqs  # the pipeline's exit sent UPSERT + COMMIT and read their results


async def run_round(driver: Driver, events: list[Event]) -> dict[str, float]:
    """32 senders, one group-committing writer; returns this round's figures."""
    pending: collections.deque[tuple[Event, asyncio.Future[int | None]]] = collections.deque()
    wake = asyncio.Event()
    source = iter(events)
    latencies: list[float] = []
    batches: list[int] = []
    loop = asyncio.get_running_loop()

    async def sender() -> None:
        for ev in source:
            fut: asyncio.Future[int | None] = loop.create_future()
            t0 = time.perf_counter()
            pending.append((ev, fut))
            wake.set()
            await fut
            latencies.append(time.perf_counter() - t0)

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while pending:
                take = min(len(pending), MAX_BATCH)
                batch = [pending.popleft() for _ in range(take)]
                batches.append(take)
                seqs = await driver.write([ev for ev, _ in batch])
                for ev, fut in batch:
                    fut.set_result(seqs.get(ev[0]))

    server_before = server_cpu()
    cpu_before = client_cpu()
    t0 = time.perf_counter()
    writing = asyncio.create_task(writer())
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    elapsed = time.perf_counter() - t0
    client = client_cpu() - cpu_before
    server = server_cpu() - server_before
    writing.cancel()
    latencies.sort()
    n = len(events)
    return {
        "events_per_s": n / elapsed,
        "client_cpu_us_per_event": client / n * 1e6,
        "server_cpu_us_per_event": server / n * 1e6,
        "batch_mean": statistics.fmean(batches),
        "ack_p50_ms": latencies[n // 2] * 1e3,
        "ack_p99_ms": latencies[int(n * 0.99)] * 1e3,
    }


def client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


POSTMASTER = 0


def server_cpu() -> float:
    """User + system seconds of the postmaster, its live children and its reaped ones."""
    if not POSTMASTER:
        return 0.0
    ticks = 0
    for i, pid in enumerate([POSTMASTER, *_children(POSTMASTER)]):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if i == 0:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    global POSTMASTER
    drivers: list[Driver] = [Asyncpg(), Psycopg(), PsycopgPipeline()]
    with tempfile.TemporaryDirectory(prefix="pg-drivers-") as tmp:
        server = start_postgres(tmp)
        POSTMASTER = server.pid
        try:
            for driver in drivers:
                url = server.create_database(driver.name.replace("-", "_"))
                conn = await asyncpg.connect(url)
                await conn.execute(SCHEMA)
                version = await conn.fetchval("SHOW server_version")
                await conn.close()
                await driver.open(url)
            results: dict[str, list[dict[str, float]]] = {d.name: [] for d in drivers}
            harness = Driver()
            harness_rounds = []
            for r in range(args.rounds + 1):
                events = make_events(r * args.events, args.events)
                harness_rounds.append(await run_round(harness, events))
                order = drivers if r % 2 == 0 else drivers[::-1]
                for driver in order:
                    figures = await run_round(driver, events)
                    if r > 0:  # round 0 warms up caches, plans and the server
                        results[driver.name].append(figures)
                    print(driver.name, r, json.dumps(figures), file=sys.stderr, flush=True)
            rows = {}  # the same work must leave the same rows with every driver
            for driver in drivers:
                await driver.close()
                conn = await asyncpg.connect(server.url(driver.name.replace("-", "_")))
                rows[driver.name] = dict(
                    await conn.fetchrow(
                        "SELECT (SELECT count(*) FROM events) AS events,"
                        " (SELECT count(*) FROM recipients) AS recipients,"
                        " (SELECT sum(events) FROM recipients) AS recipient_updates"
                    )
                )
                await conn.close()
        finally:
            server.stop()

    def median(rounds: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.median(x[k] for x in rounds), 2) for k in rounds[0]}

    return {
        "rounds": args.rounds,
        "events_per_round": args.events,
        "senders": SENDERS,
        "max_batch": MAX_BATCH,
        "loop": args.loop,
        "server": f"PostgreSQL {version}",
        "asyncpg": asyncpg.__version__,
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()})",
        "results": {name: median(rounds) for name, rounds in results.items()},
        "harness": median(harness_rounds[1:]),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(bench(args))
    else:
        result = asyncio.run(bench(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
