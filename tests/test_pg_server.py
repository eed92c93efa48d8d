"""The throwaway PostgreSQL server the PostgreSQL tests and benchmarks run against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.pg_server import _children, start_postgres

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def test_pg_url_is_an_empty_database_over_tcp(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://smswatch:") and "@127.0.0.1:" in pg_url
    conn = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW fsync") == "on"
        await conn.execute("CREATE TABLE t (seq bigserial PRIMARY KEY, body jsonb NOT NULL)")
        await conn.execute("INSERT INTO t (body) VALUES ($1::jsonb)", '{"a": 1}')
        assert await conn.fetchval("SELECT body->>'a' FROM t") == "1"
    finally:
        await conn.close()


async def test_a_wrong_password_is_refused(postgres_server) -> None:
    url = postgres_server.url().replace(postgres_server.password, "wrong")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url)


async def test_stop_ends_every_server_process_and_closes_the_port(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    conn = await asyncpg.connect(server.create_database("x"))
    assert await conn.fetchval("SELECT 1") == 1
    processes = [server.pid, *_children(server.pid)]
    assert len(processes) > 1 and all(map(alive, processes))

    server.stop()  # with a client still connected
    assert not server.running
    assert wait_gone(processes) == []  # its own generous ceiling
    assert not port_open(server.port)
    conn.terminate()
    server.stop()  # again: nothing to do


@pytest.mark.slow
def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """SIGKILL leaves no atexit hook to run: the watchdog sees its pipe close."""
    script = (
        "import sys, time; from tests.pg_server import start_postgres; "
        "s = start_postgres(sys.argv[1]); print(s.pid, s.port, flush=True); time.sleep(120)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    pid, port = map(int, owner.stdout.readline().split())
    processes = [pid, *_children(pid)]
    assert port_open(port)

    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert wait_gone(processes) == []
    assert not port_open(port)
