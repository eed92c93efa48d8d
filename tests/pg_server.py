"""A throwaway PostgreSQL server for tests and benchmarks, listening on 127.0.0.1.

    server = start_postgres(tmp_dir)
    url = server.create_database("t1")    # postgresql://smswatch:PW@127.0.0.1:PORT/t1
    ...
    server.stop()

The binaries come from the `pgserver` wheel (PostgreSQL 16, a dev dependency), so a fresh clone
needs only pip; `SMSWATCH_PG_BINDIR` points at other binaries (e.g. /usr/lib/postgresql/16/bin).
The server is our own `initdb` + `postgres`, not pgserver's manager: that one listens only on a
Unix socket and, as root, adds a system user and opens up every parent directory.

PostgreSQL refuses to run as root. As root, the cluster is owned by `nobody` and run as `nobody`;
its files then go in a fresh directory under the system temp directory when the given one is
private (pytest's are 0700), and `stop()` removes it.

`postgres` runs under a small watchdog process that holds a pipe from this process: `stop()`
closes it, and so does the kernel when this process dies in any way (even SIGKILL). The watchdog
then shuts the server down (fast shutdown, then SIGKILL for the postmaster and its children), so
no server outlives its test run. Nothing here needs a third-party import.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
USER = "smswatch"
RUN_AS_ROOT_USER = "nobody"

# Command-line settings (they override postgresql.conf). Durability stays as in production:
# fsync and synchronous_commit on, so tests of "acknowledged means committed" mean something.
SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket path to fit or to clean up
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "timezone": "UTC",
    "jit": "off",
    "log_min_messages": "warning",
}


class PostgresServer:
    """A running throwaway server. `url()` and `create_database()` give asyncpg/psql URLs."""

    def __init__(
        self,
        *,
        port: int,
        password: str,
        directory: Path,
        bindir: Path,
        watchdog: subprocess.Popen[bytes],
        pid: int,
        remove_directory: bool,
    ) -> None:
        self.host = HOST
        self.port = port
        self.user = USER
        self.password = password
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_path = directory / "postgres.log"
        self.pid = pid  # the postmaster
        self._bindir = bindir
        self._watchdog: subprocess.Popen[bytes] | None = watchdog
        self._remove_directory = remove_directory
        atexit.register(self.stop)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._watchdog is not None and self._watchdog.poll() is None

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Runs SQL with the server's own psql (a single statement runs outside a transaction,
        as CREATE/DROP DATABASE need) and returns its unaligned output."""
        env = _child_env()
        env["PGPASSWORD"] = self.password
        done = subprocess.run(
            [
                *(str(self._bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its URL."""
        self.psql(f"CREATE DATABASE {_ident(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def stop(self) -> None:
        """Shuts the server down and waits until its processes are gone. Idempotent."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        atexit.unregister(self.stop)
        with contextlib.suppress(OSError):
            watchdog.stdin.close()  # type: ignore[union-attr]
        try:
            watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()
            _kill_postmaster(self.pid)
        if self._remove_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostgresServer {self.host}:{self.port} pid={self.pid} {state}>"


def start_postgres(
    directory: Path | str,
    *,
    settings: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> PostgresServer:
    """Initialises a cluster under `directory` and starts a server on a free port of 127.0.0.1.
    The superuser `smswatch` has a random password; `settings` add or override server settings
    (e.g. {"shared_buffers": "256MB"})."""
    base = Path(directory).resolve()
    base.mkdir(parents=True, exist_ok=True)
    bindir = pg_bindir()
    as_root = os.geteuid() == 0
    owner = _run_as_user() if as_root else None
    if owner is None or _reachable_by_others(base):
        server_dir = Path(tempfile.mkdtemp(prefix="postgres-", dir=base))
        remove = False
    else:
        server_dir = Path(tempfile.mkdtemp(prefix="smswatch-postgres-"))
        remove = True
    try:
        server_bindir = bindir
        if owner is not None:
            server_dir.chmod(0o755)
            if not _runs_as(bindir / "initdb", owner):
                server_bindir = _linked_copy(bindir, server_dir)
        password = secrets.token_hex(12)
        data = server_dir / "data"
        _initdb(server_bindir, data, password, owner, server_dir)
        values = dict(SETTINGS)
        values.update(settings or {})
        for _ in range(5):  # a free port can be taken between choosing it and binding it
            port = _free_port()
            values["port"] = str(port)
            started = _start(server_bindir, server_dir, values, owner, timeout, remove)
            if started is not None:
                watchdog, pid = started
                return PostgresServer(
                    port=port,
                    password=password,
                    directory=server_dir,
                    bindir=bindir,
                    watchdog=watchdog,
                    pid=pid,
                    remove_directory=remove,
                )
        raise RuntimeError(f"postgres found no free port; see {server_dir / 'postgres.log'}")
    except BaseException:
        if remove:
            shutil.rmtree(server_dir, ignore_errors=True)
        raise


@cache
def pg_bindir() -> Path:
    """The directory holding initdb, postgres and psql."""
    configured = os.environ.get("SMSWATCH_PG_BINDIR")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("pgserver")  # locates the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no PostgreSQL binaries: install the dev extra (`make setup` installs pgserver) "
            "or set SMSWATCH_PG_BINDIR to a directory with initdb, postgres and psql"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST...) of the caller must not steer our server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run_as_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(RUN_AS_ROOT_USER)
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root and there is no `{RUN_AS_ROOT_USER}` user "
            "to run it as"
        ) from None


def _as(owner: pwd.struct_passwd | None) -> dict[str, Any]:
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _runs_as(program: Path, owner: pwd.struct_passwd) -> bool:
    try:
        done = subprocess.run(
            [str(program), "--version"], capture_output=True, cwd="/", timeout=30, **_as(owner)
        )
    except OSError:
        return False
    return done.returncode == 0


def _linked_copy(bindir: Path, server_dir: Path) -> Path:
    """As root with the binaries under a private directory (/root/...): a copy `nobody` can
    run, hard-linked where possible. It keeps the install's layout (bin, lib, share and the
    wheel's sibling `<package>.libs` that its RPATHs point to)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    install = bindir.parent
    package = install.parent
    target = server_dir / "install" / package.name / install.name
    for part in ("bin", "lib", "share"):
        if (install / part).is_dir():
            shutil.copytree(install / part, target / part, copy_function=link_or_copy)
    for libs in package.parent.glob(package.name + "*.libs"):
        shutil.copytree(libs, target.parent.parent / libs.name, copy_function=link_or_copy)
    for path in (server_dir / "install").rglob("*"):
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return target / "bin"


def _initdb(
    bindir: Path, data: Path, password: str, owner: pwd.struct_passwd | None, cwd: Path
) -> None:
    pwfile = cwd / "pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    if owner is not None:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        data.mkdir(mode=0o700)
        os.chown(data, owner.pw_uid, owner.pw_gid)
    try:
        done = subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}"),
                *("--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C"),
                # Unsynced files are fine for a cluster no machine crash will ever see.
                *("--no-sync", "--no-instructions"),
            ],
            capture_output=True,
            cwd=cwd,
            env=_child_env(),
            timeout=120,
            **_as(owner),
        )
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")


def _start(
    bindir: Path,
    server_dir: Path,
    values: Mapping[str, str],
    owner: pwd.struct_passwd | None,
    timeout: float,
    remove: bool,
) -> tuple[subprocess.Popen[bytes], int] | None:
    """Starts postgres under a watchdog; returns (watchdog, postmaster pid) once the server
    accepts connections, None if its port was taken. Raises on any other failure."""
    data = server_dir / "data"
    log = server_dir / "postgres.log"
    log.write_bytes(b"")
    cmd = [str(bindir / "postgres"), "-D", str(data)]
    for key, value in values.items():
        cmd += ["-c", f"{key}={value}"]
    spec = {
        "cmd": cmd,
        "cwd": str(data),
        "log": str(log),
        "env": _child_env(),
        "uid": owner.pw_uid if owner else None,
        "gid": owner.pw_gid if owner else None,
        "remove": str(server_dir) if remove else None,
    }
    with log.open("ab") as log_file:
        watchdog = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), "--watchdog", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,  # the terminal's ^C goes to the test run, not to the server
        )
    assert watchdog.stdout is not None
    line = watchdog.stdout.readline()
    watchdog.stdout.close()
    if not line:
        watchdog.wait()
        raise RuntimeError(f"postgres did not start:\n{log.read_text(errors='replace')}")
    pid = int(line)
    deadline = time.monotonic() + timeout
    pidfile = data / "postmaster.pid"
    while True:
        if watchdog.poll() is not None:
            text = log.read_text(errors="replace")
            if "could not bind" in text or "Address already in use" in text:
                return None
            raise RuntimeError(f"postgres exited at start:\n{text}")
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready":
                return watchdog, pid
        if time.monotonic() > deadline:
            watchdog.stdin.close()  # type: ignore[union-attr]
            watchdog.wait()
            raise RuntimeError(f"postgres not ready in {timeout}s:\n{log.read_text()}")
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _kill_postmaster(pid: int) -> None:
    """SIGKILL for the postmaster and its children (they are session leaders of their own, so
    not in its process group)."""
    for victim in [*_children(pid), pid]:
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)


def _watchdog(spec_json: str) -> None:
    """Runs postgres until our stdin reaches EOF (the test process closed it or died), then
    shuts it down: fast shutdown, SIGKILL after 15 s. Removes a directory made outside the
    caller's own."""
    spec = json.loads(spec_json)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    as_user: dict[str, Any] = {}
    if spec["uid"] is not None:
        as_user = {"user": spec["uid"], "group": spec["gid"], "extra_groups": []}
    with open(spec["log"], "ab") as log:
        server = subprocess.Popen(
            spec["cmd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec["cwd"],
            env=spec["env"],
            **as_user,
        )
    sys.stdout.write(f"{server.pid}\n")
    sys.stdout.flush()
    while server.poll() is None and not stop_requested:
        try:
            ready, _, _ = select.select([sys.stdin.fileno()], [], [], 0.5)
        except InterruptedError:
            continue
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    if server.poll() is None:
        server.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, then checkpoints
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _kill_postmaster(server.pid)
            server.wait()
    if spec["remove"]:
        shutil.rmtree(spec["remove"], ignore_errors=True)
    sys.exit(server.returncode if server.returncode and server.returncode > 0 else 0)


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    _watchdog(sys.argv[2])
