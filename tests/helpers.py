"""Running the real `smswatch` command as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SMSWATCH = [sys.executable, "-m", "smswatch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        # pytest puts COLUMNS=80 in its children's environment (not in os.environ): a command
        # piped here must see what a script's pipe sees, no width at all, unless a test says so.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [*SMSWATCH, *args], capture_output=True, text=True, timeout=timeout, check=check, env=env
    )


def start_simulate(*args: str) -> subprocess.Popen[str]:
    """`smswatch simulate` in the background, for tests that kill the server under it."""
    return subprocess.Popen(
        [*SMSWATCH, "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acked_ids(path: Path) -> set[str]:
    """The event ids a simulator's `--acked` file says got a 2xx."""
    return {json.loads(line)["event_id"] for line in path.read_text().splitlines() if line.strip()}


class Server:
    """`smswatch serve` in a child process."""

    def __init__(self, db: Path | str, port: int, *extra: str, log: Path | None = None) -> None:
        self.db, self.port, self.extra = db, port, extra
        self.proc: subprocess.Popen[str] | None = None
        self.log = log or Path(db).with_suffix(f".{port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def feed_port(self) -> tuple[str, ...]:
        """A free feed port unless the test chose: `serve`'s default (8788) is one port for the
        whole machine, and tests run side by side (pytest -n)."""
        chosen = any(a in ("--feed-port", "--no-feed") for a in self.extra)
        return () if chosen else ("--feed-port", "0")

    def start(self) -> Server:
        out = self.log.open("a")
        self.proc = subprocess.Popen(
            [
                *SMSWATCH,
                "serve",
                "--db",
                str(self.db),
                "--port",
                str(self.port),
                "--summary-interval",
                "0.5",
                *self.extra,
                *self.feed_port(),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("serve did not come up")

    def wait_for_log(self, ready: Callable[[str], bool], within: float = 60) -> None:
        """Wait until the server's output so far satisfies `ready` (a generous ceiling)."""
        deadline = time.monotonic() + within
        while not ready(self.log.read_text()):
            assert time.monotonic() < deadline, f"not in the log in time:\n{self.log.read_text()}"
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)
        return self.log.read_text()


def export_records(db: Path | str) -> list[dict[str, Any]]:
    out = run("export", "--db", str(db)).stdout
    return [json.loads(line) for line in out.splitlines()]


def on_a_terminal(*args: str, columns: int | None = None, timeout: float = 60) -> str:
    """`smswatch ARGS` with stdout on a pseudo-terminal; what it printed. `columns`: the
    terminal's own width (no COLUMNS); without it, COLUMNS=200."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    if columns is None:
        env = {**os.environ, "COLUMNS": "200"}
    else:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([*SMSWATCH, *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout) == 0, proc.stderr.read() if proc.stderr else ""
    return out.decode("utf-8").replace("\r\n", "\n")
