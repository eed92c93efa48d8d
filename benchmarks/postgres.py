"""`make bench` rows for the PostgreSQL store: ingest with one and two instances against SQLite
in the same run, and what following the other instances' commits costs.

The PostgreSQL server is a throwaway one (tests/pg_server.py), on this machine: on two cores it
shares them with smswatch and the load. So the rows say what the shared store costs per request
(smswatch's CPU and the database server's, both measured) and how the pieces scale here; more
instances only add throughput when they, and the database, have cores of their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
from tests.pg_server import PostgresServer, start_postgres

from benchmarks.run import (
    Row,
    Running,
    acked_ids,
    loadgen,
    rps,
    server,
    stored_ids,
    throughput,
    wrk,
)

FOLLOW_RATE = 2_000  # events/s one instance takes while another only follows


def database_cpu(pg: PostgresServer) -> float:
    """CPU seconds used so far by the database server's processes (the postmaster and the
    backends serving our connections, which live as long as the connections)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == pg.pid or int(fields[1]) == pg.pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pg_stored_ids(url: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            return {r[0] for r in await conn.fetch("SELECT event_id FROM events")}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def two_instances(pg: PostgresServer, url: str, seconds: int, acked: Path) -> dict[str, Any]:
    """Two `serve` instances on one database, one on each CPU, each loaded by its own wrk."""
    with server("serve", url, cpu="0") as a, server("serve", url, cpu="1") as b:
        cpu0 = a.cpu_seconds() + b.cpu_seconds()
        db0 = database_cpu(pg)
        results: list[dict[str, Any]] = []

        def load(srv: Running, tag: str) -> None:
            results.append(wrk(srv.url, seconds, 16, acked.with_name(acked.name + tag)))

        threads = [threading.Thread(target=load, args=(s, t)) for s, t in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        requests = sum(r["requests"] for r in results)
        return {
            "rps": sum(r["rps"] for r in results),
            "requests": requests,
            "cpu_us": (a.cpu_seconds() + b.cpu_seconds() - cpu0) / max(requests, 1) * 1e6,
            "db_us": (database_cpu(pg) - db0) / max(requests, 1) * 1e6,
        }


def one_instance(pg: PostgresServer, url: str, seconds: int, acked: Path) -> dict[str, Any]:
    with server("serve", url) as srv:
        db0 = database_cpu(pg)
        data = throughput(srv, seconds, acked)
        data["db_us"] = (database_cpu(pg) - db0) / max(data["requests"], 1) * 1e6
        return data


def follow_cost(url: str, seconds: int) -> dict[str, Any]:
    """CPU of an instance that takes no webhooks and follows one that takes FOLLOW_RATE a
    second, against the same instance idle for as long."""
    with server("serve", url, cpu="0") as ingest, server("serve", url, cpu="1") as follower:
        idle0 = follower.cpu_seconds()
        time.sleep(seconds)
        idle = follower.cpu_seconds() - idle0
        busy0 = follower.cpu_seconds()
        result = loadgen("open", ingest.url, FOLLOW_RATE, seconds)
        busy = follower.cpu_seconds() - busy0
    return {"idle": idle / seconds, "busy": busy / seconds, "events": result["ok"], "secs": seconds}


def postgres_rows(seconds: int, rounds: int) -> list[Row]:
    if not shutil.which("wrk"):
        return [Row("PostgreSQL rows", "skipped: they need wrk", "—", None, "—", None)]
    sqlite, one, two, checks = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        pg = start_postgres(Path(tmp) / "pg")
        try:
            for r in range(rounds):
                with tempfile.TemporaryDirectory() as work:
                    db, acked = Path(work) / "s.db", Path(work) / "acked-s"
                    with server("serve", db) as srv:
                        sqlite.append(throughput(srv, seconds, acked))
                    got = acked_ids(acked)
                    checks.append(len(got - stored_ids(db)))
                    url = pg.create_database(f"bench_one_{r}")
                    acked = Path(work) / "acked-p"
                    one.append(one_instance(pg, url, seconds, acked))
                    got = acked_ids(acked)
                    checks.append(len(got - pg_stored_ids(url)))
                    url = pg.create_database(f"bench_two_{r}")
                    acked = Path(work) / "acked-2"
                    two.append(two_instances(pg, url, seconds, acked))
                    got = acked_ids(acked)
                    checks.append(len(got - pg_stored_ids(url)))
            follow = follow_cost(pg.create_database("bench_follow"), seconds)
        finally:
            pg.stop()
    best_sqlite = max(r["rps"] for r in sqlite)
    lost = sum(checks)
    median = statistics.median

    def cpu(results: list[dict[str, Any]]) -> str:
        return (
            f"smswatch {median(r['cpu_us'] for r in results):,.0f} µs + database server "
            f"{median(r['db_us'] for r in results):,.0f} µs of CPU a request"
        )

    shared = (
        f"rounds (req/s): SQLite {rps(sqlite)}; PostgreSQL one instance {rps(one)}; "
        f"two instances {rps(two)}; wrk with 32 connections in all ({seconds}s); "
        f"SQLite: {median(r['cpu_us'] for r in sqlite):,.0f} µs of CPU a request; "
        f"every 2xx checked against the database, missing {lost}"
    )
    best_one = max(r["rps"] for r in one)
    best_two = max(r["rps"] for r in two)
    follow_us = (follow["busy"] - follow["idle"]) * follow["secs"] / max(follow["events"], 1) * 1e6
    return [
        Row(
            "Ingest on PostgreSQL, one `serve` instance (synchronous_commit on)",
            f"{best_one:,.0f} req/s; {cpu(one)}",
            f"{best_sqlite:,.0f} req/s (SQLite, `serve`, durability full)",
            best_one / best_sqlite,
            "(reference)",
            None if lost == 0 else False,
            [
                shared,
                "serve on CPU 0, wrk on CPU 1, the database server unpinned (PostgreSQL 16 "
                "from the pgserver wheel, fsync on)",
            ],
        ),
        Row(
            "Ingest on PostgreSQL, two `serve` instances on one database",
            f"{best_two:,.0f} req/s together; {cpu(two)}",
            f"{best_sqlite:,.0f} req/s (SQLite, one `serve`)",
            best_two / best_sqlite,
            "(reference)",
            None if lost == 0 else False,
            [
                "one instance on each CPU, each loaded by its own wrk (16 connections), the "
                "database server unpinned: five busy processes on two cores"
            ],
        ),
        Row(
            "The cross-instance fan-out: an instance following another's commits",
            f"{follow['busy'] * 100:.1f}% of a core while the other takes "
            f"{FOLLOW_RATE:,} events/s ({follow_us:,.0f} µs a followed event)",
            f"{follow['idle'] * 100:.1f}% of a core with nothing to follow",
            None,
            "(reference)",
            None,
            [
                f"{follow['events']:,} events in {follow['secs']}s through the ingesting "
                "instance (open loop); the follower reads them once a 100 ms tick into its "
                "hub (counters, live transitions), with its feed open"
            ],
        ),
    ]
