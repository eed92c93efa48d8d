"""A bad `--db` is one line that names the problem, in every command: not a traceback, not a
port problem. Each case runs the real CLI in a child process against real files."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import SMSWATCH, Server, free_port

pytestmark = pytest.mark.slow

# Every command that opens a database, with what it needs besides --db. The monitor's start
# fails before its screen is drawn, so it needs no terminal here.
COMMANDS = {
    "serve": ["serve", "--port", "0", "--feed-port", "0"],
    "monitor": ["--port", "0"],
    "stats": ["stats"],
    "inspect": ["inspect", "abc"],
    "export": ["export"],
    "campaign": ["campaign", "list"],
    "report": ["report"],
    "forward": ["forward", "status"],
    "reconcile": [
        "reconcile",
        "--lisoloo-app-key",
        "sk_test_x",
        "--lisoloo-api-url",
        "http://127.0.0.1:9",
    ],
}
WRITERS = ["serve", "monitor"]


def smswatch(*args: str, prefix: tuple[str, ...] = ()) -> str:
    """Run a command that must fail: its whole output, checked to be a one-line refusal."""
    proc = subprocess.run(
        [*prefix, *SMSWATCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return out


def foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()


def tables(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


def beside(db: Path) -> list[str]:
    """The files next to the database that smswatch would make."""
    return sorted(p.name for p in db.parent.iterdir() if p.name != db.name)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_text_file_is_not_an_smswatch_database(tmp_path: Path, command: str) -> None:
    db = tmp_path / "notes.db"
    db.write_text("hello, this is not a database\n")
    out = smswatch(*COMMANDS[command], "--db", str(db))
    assert f"{db} is not an smswatch database" in out
    assert db.read_text() == "hello, this is not a database\n"
    assert beside(db) == []  # no lock, state or token file left beside someone else's file


@pytest.mark.parametrize("command", [*WRITERS, "stats"])
def test_random_bytes_are_not_an_smswatch_database(tmp_path: Path, command: str) -> None:
    db = tmp_path / "noise.db"
    noise = os.urandom(8192)
    db.write_bytes(noise)
    out = smswatch(*COMMANDS[command], "--db", str(db))
    assert f"{db} is not an smswatch database" in out
    assert db.read_bytes() == noise


@pytest.mark.parametrize("command", list(COMMANDS))
def test_another_applications_sqlite_database_is_refused(tmp_path: Path, command: str) -> None:
    db = tmp_path / "other.db"
    foreign_sqlite(db)
    out = smswatch(*COMMANDS[command], "--db", str(db))
    assert f"{db} is not an smswatch database" in out
    assert "invoices" in out
    assert tables(db) == ["invoices"]  # none of smswatch's tables added to it
    assert beside(db) == []


@pytest.mark.parametrize("command", [*WRITERS, "stats", "export", "forward"])
def test_a_missing_directory_is_named(tmp_path: Path, command: str) -> None:
    db = tmp_path / "missing-dir" / "x.db"
    out = smswatch(*COMMANDS[command], "--db", str(db))
    assert f"the directory {db.parent} does not exist" in out
    assert "listen" not in out and "port" not in out
    assert not db.parent.exists()


@pytest.mark.parametrize("command", WRITERS)
def test_a_file_where_a_directory_should_be_is_named(tmp_path: Path, command: str) -> None:
    (tmp_path / "afile").write_text("x")
    db = tmp_path / "afile" / "x.db"
    out = smswatch(*COMMANDS[command], "--db", str(db))
    assert f"{tmp_path / 'afile'} is a file, not a directory" in out
    assert "listen" not in out


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A directory with an smswatch database in it, and a prefix that runs a command with the
    directory bind-mounted read-only over itself (in a mount namespace of its own, so nothing
    outside the child sees it). Skipped where mount namespaces are not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    ro = tmp_path / "ro"
    ro.mkdir()
    Server(ro / "x.db", free_port(), "--no-feed").start().stop()
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ("unshare", "-m", "sh", "-c", script, str(ro))
    probe = subprocess.run([*prefix, "touch", str(ro / "probe")], capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot mount read-only here: {probe.stderr.strip()}")
    yield ro, prefix


@pytest.mark.parametrize("command", WRITERS)
def test_a_read_only_file_system_is_named(
    read_only_dir: tuple[Path, tuple[str, ...]], command: str
) -> None:
    ro, prefix = read_only_dir
    out = smswatch(*COMMANDS[command], "--db", str(ro / "x.db"), prefix=prefix)
    assert "read-only file system" in out
    assert "listen" not in out


def test_a_forbidden_directory_is_named(tmp_path: Path) -> None:
    """As root every permission is granted, except on an immutable directory (chattr +i)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        out = smswatch(*COMMANDS["serve"], "--db", str(locked / "x.db"))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert f"the directory {locked} is not writable" in out
    assert "listen" not in out


def test_an_unusable_feed_token_file_is_named(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    (tmp_path / "x.db.feed-token").mkdir()  # where the token would be kept
    out = smswatch(*COMMANDS["serve"], "--db", str(db))
    assert f"cannot keep the feed token in {db}.feed-token: it is a directory" in out
    assert "listen" not in out


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_busy_webhook_port_is_named(tmp_path: Path, busy_port: int) -> None:
    out = smswatch("serve", "--port", str(busy_port), "--no-feed", "--db", str(tmp_path / "x.db"))
    assert f"cannot listen for webhooks on 127.0.0.1:{busy_port}: the port is in use" in out
    assert "--port" in out
    assert "feed" not in out and "None" not in out


def test_a_busy_feed_port_is_named(tmp_path: Path, busy_port: int) -> None:
    out = smswatch(
        "serve", "--port", "0", "--feed-port", str(busy_port), "--db", str(tmp_path / "x.db")
    )
    assert f"cannot listen for the feed on 127.0.0.1:{busy_port}: the port is in use" in out
    assert "--feed-port" in out
    assert "webhooks on" not in out


def test_a_busy_metrics_port_is_named(tmp_path: Path, busy_port: int) -> None:
    out = smswatch(
        "serve",
        *("--port", "0", "--no-feed", "--metrics-port", str(busy_port)),
        *("--db", str(tmp_path / "x.db")),
    )
    assert f"cannot listen for metrics on 127.0.0.1:{busy_port}: the port is in use" in out
    assert "--metrics-port" in out


def test_the_monitors_busy_port_is_named(tmp_path: Path, busy_port: int) -> None:
    out = smswatch("--port", str(busy_port), "--db", str(tmp_path / "x.db"))
    assert f"cannot listen for webhooks on 127.0.0.1:{busy_port}: the port is in use" in out


def test_the_demo_keeps_a_port_it_was_given(busy_port: int) -> None:
    """Only the default port gives way to a free one: one asked for is an error when busy."""
    out = smswatch("--demo", "--port", str(busy_port))
    assert f"cannot listen for webhooks on 127.0.0.1:{busy_port}: the port is in use" in out


def test_the_demo_moves_off_a_busy_default_port_and_says_so(busy_port: int) -> None:
    from smswatch.gateways.sandboxing import SandboxKeys
    from smswatch.live.engine import EngineConfig
    from smswatch.live.monitor import demo_config

    keys = SandboxKeys(lisoloo_app_key="sk_test_k", yebolink_api_key="ybk_k")
    config = EngineConfig(port=busy_port)
    moved, workdir = demo_config(config, "http://127.0.0.1:9", keys)
    kept, workdir2 = demo_config(config, "http://127.0.0.1:9", keys, port_given=True)
    shutil.rmtree(workdir)
    shutil.rmtree(workdir2)
    assert moved.port == 0
    assert kept.port == busy_port


def test_a_second_terminal_is_told_exactly_how_to_watch(tmp_path: Path) -> None:
    """One process writes a SQLite file: a second monitor on it is told what to attach to."""
    db = tmp_path / "shared.db"
    feed_port = free_port()
    server = Server(db, free_port(), "--feed-port", str(feed_port)).start()
    try:
        out = smswatch("--no-listen", "--db", str(db))
    finally:
        server.stop()
    assert f"another smswatch (pid {server.proc.pid if server.proc else ''})" in out
    assert f'smswatch attach ws://127.0.0.1:{feed_port} --token "$(cat {db}.feed-token)"' in out


def test_a_second_terminal_is_told_the_writer_needs_a_feed(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    server = Server(db, free_port(), "--no-feed").start()
    try:
        out = smswatch("--no-listen", "--db", str(db))
    finally:
        server.stop()
    assert "serves no feed" in out and "--feed-port PORT" in out
    assert "smswatch attach ws://127.0.0.1:PORT" in out


def test_the_demo_says_on_screen_that_its_default_port_moved(tmp_path: Path) -> None:
    """With the default port (8787) busy the demo takes a free one, and the screen says so."""
    from tests.test_terminal_gone import Terminal

    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
        except OSError:
            pytest.skip("port 8787 is in use here already")
        taken.listen()
        term = Terminal([*SMSWATCH, "--demo"], tmp_path)
        try:
            term.wait_for(b"8787 is in use", timeout=60)
        finally:
            term.kill()


@pytest.mark.parametrize("side", ["-state", "-writer"])
def test_an_unusable_file_beside_the_database_is_named(tmp_path: Path, side: str) -> None:
    db = tmp_path / "x.db"
    (tmp_path / f"x.db{side}").mkdir()
    out = smswatch(*COMMANDS["serve"], "--db", str(db))
    assert f"{db}{side} (which smswatch keeps beside the database) is a directory" in out
