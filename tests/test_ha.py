"""High availability over real HTTP: three `serve` processes on one PostgreSQL database behind
HAProxy, a simulated campaign through the balancer, and one instance killed with SIGKILL
halfway.

HAProxy takes the dead instance out on its health checks (`GET /healthz`), and a request that
met the dead instance (refused connection, or a connection that closed with no answer) is
retried on another one, by HAProxy (`retry-on`, `option redispatch`) or else by the simulator,
as a gateway would. Replaying a POST is safe: an event retried to two instances is stored
once. So in the end every delivery is acknowledged, every acknowledged event is stored exactly
once, every recipient is in the simulator's truth, and a viewer attached to a surviving
instance before the campaign started shows the whole campaign, including the events the other
instances (the killed one too) stored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from smswatch.core.domain import FUNNEL
from smswatch.core.live import Counters, Delta
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.feed.client import RemoteSource
from smswatch.source.api import Connection, Snapshot
from smswatch.store import open_reader
from tests.helpers import SMSWATCH, acked_ids, free_port, start_simulate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# The campaign: ~4,000 deliveries (10% sent twice) spread over ~9 s, both gateways.
CAMPAIGN = SimConfig(
    provider="mixed",
    messages=40,
    recipients=30,
    duplicate_rate=0.1,
    seed=2027,
    speed=10,
    spread=60,
)
RATE = 600  # requests per second at most: the plan's own pace, ~460/s, sets the length
KILLED, VIEWED = 2, 0  # the instance killed halfway, and the one the viewer watches

HAPROXY_MISSING = (
    "tests/test_ha.py needs HAProxy, the load balancer it puts in front of three instances, "
    "and it is not installed. Install it with `sudo apt-get install haproxy` (Debian, Ubuntu; "
    "`make test` run as root does it by itself), `sudo dnf install haproxy` or "
    "`brew install haproxy`."
)


def haproxy_binary() -> str:
    """HAProxy from the system's packages; /usr/sbin is often not on a user's PATH."""
    found = shutil.which("haproxy")
    for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if found is None and os.access(path, os.X_OK):
            found = path
    if found is None:
        pytest.fail(HAPROXY_MISSING, pytrace=False)
    return found


class Instance:
    """`smswatch serve` on the shared database, its webhook and feed ports picked by itself."""

    def __init__(self, index: int, db_url: str, directory: Path) -> None:
        self.index = index
        self.log = directory / f"serve-{index}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*SMSWATCH, "serve", "--db", db_url, "--port", "0", "--feed-port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.port = 0
        self.feed_url = self.token = ""

    async def ready(self, seconds: float = 30) -> None:
        """Waits for the banner: the webhook port, the feed address and its token."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.log.read_text()
            listening = re.search(r"serving webhooks on http://127\.0\.0\.1:(\d+)", text)
            feed = re.search(r"smswatch attach (ws://\S+) --token (\S+)", text)
            if listening and feed and "Health check" in text:
                self.port = int(listening[1])
                self.feed_url, self.token = feed[1], feed[2]
                return
            if self.proc.poll() is not None:
                pytest.fail(f"serve {self.index} exited:\n{text}")
            await asyncio.sleep(0.05)
        pytest.fail(f"serve {self.index} did not come up:\n{self.log.read_text()}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def haproxy_config(port: int, stats_port: int, backends: list[int]) -> str:
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    return f"""\
global
    maxconn 2000

defaults
    mode http
    # The simulator keeps an idle connection 15 s: HAProxy keeps it longer, so it never closes
    # one the simulator is about to reuse. Its own idle connections to an instance are closed
    # well before the listener's 15 s idle timeout (pool-purge-delay below), and a request on
    # one the listener closed anyway is retried (empty-response).
    timeout connect 1s
    timeout client 30s
    timeout http-keep-alive 30s
    timeout server 10s
    timeout check 2s
    # A request that met a dead instance (refused, or its connection closed with no answer) is
    # sent again, to another instance: a replayed POST is stored once (dedupe).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend webhooks
    bind 127.0.0.1:{port}
    default_backend smswatch

backend smswatch
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    # Two failed checks 100 ms apart take a dead instance out.
    default-server check inter 250ms fastinter 100ms downinter 500ms fall 2 rise 2
    default-server pool-purge-delay 1s
{servers}

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def start_haproxy(binary: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground (-db), its messages in `log`."""
    with log.open("w") as out:
        return subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out, stderr=out)


def haproxy_servers(stats_port: int) -> dict[str, dict[str, str]]:
    """The backend's servers as HAProxy's stats page sees them (status, sessions, retries)."""
    url = f"http://127.0.0.1:{stats_port}/stats;csv"
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode().lstrip("# ")
    return {
        row["svname"]: row
        for row in csv.DictReader(io.StringIO(text))
        if row["pxname"] == "smswatch" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


class Viewer:
    """A headless `smswatch attach`: the feed client, keeping what a screen would draw."""

    def __init__(self, url: str, token: str) -> None:
        self.source = RemoteSource(url, token)
        self.snapshots = 0
        self.counters: Counters | None = None
        self.transitions: collections.Counter[str] = collections.Counter()
        self.dropped = 0
        self.deltas_with_events = 0
        self.connection: list[str] = []
        self.source.subscribe(self._update)

    def _update(self, update: Any) -> None:
        if isinstance(update, Snapshot):
            self.snapshots += 1
            self.counters = update.counters
        elif isinstance(update, Delta):
            self.counters = update.counters
            self.transitions.update(t.event.event_id for t in update.transitions)
            self.dropped += update.dropped
            self.deltas_with_events += bool(update.transitions)
        elif isinstance(update, Connection):
            self.connection.append(f"{update.state}: {update.detail}")

    @property
    def events(self) -> int:
        return self.counters.events if self.counters else 0

    async def wait(self, condition: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"the viewer never {what}: {self.counters}, {self.connection}")
            await asyncio.sleep(0.05)


def simulate_args(url: str, truth: Path, acked: Path) -> list[str]:
    c = CAMPAIGN
    return [
        *("--url", url, "--provider", c.provider, "--messages", str(c.messages)),
        *("--recipients", str(c.recipients), "--duplicate-rate", str(c.duplicate_rate)),
        *("--seed", str(c.seed), "--speed", str(c.speed), "--spread", str(c.spread)),
        *("--rate", str(RATE), "--max-attempts", "30", "-q"),
        *("--truth", str(truth), "--acked", str(acked)),
    ]


async def test_three_instances_behind_haproxy_one_killed_halfway(
    pg_url: str, tmp_path: Path
) -> None:
    haproxy = haproxy_binary()
    plan = plan_campaign(CAMPAIGN)  # the same seed plans the same campaign the CLI sends
    truth, acked = tmp_path / "truth.jsonl", tmp_path / "acked.jsonl"
    instances = [Instance(i, pg_url, tmp_path) for i in range(3)]  # started at once
    balancer: subprocess.Popen[bytes] | None = None
    sim: subprocess.Popen[str] | None = None
    viewer: Viewer | None = None
    haproxy_log = tmp_path / "haproxy.log"

    def logs() -> str:
        parts = [f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log"))]
        return "\n".join(parts)

    try:
        await asyncio.gather(*(i.ready() for i in instances))
        # With a shared database the feed token is shared too: one token for any instance.
        assert len({i.token for i in instances}) == 1, logs()

        port, stats_port = free_port(), free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config(port, stats_port, [i.port for i in instances]))
        balancer = start_haproxy(haproxy, config, haproxy_log)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError):
                servers = haproxy_servers(stats_port)
                if [s["status"] for s in servers.values()] == ["UP"] * 3:
                    break
            assert balancer.poll() is None, f"haproxy exited:\n{logs()}"
            assert time.monotonic() < deadline, f"haproxy never saw 3 instances up:\n{logs()}"
            await asyncio.sleep(0.1)

        viewer = Viewer(instances[VIEWED].feed_url, instances[VIEWED].token)
        await viewer.source.open()
        await viewer.wait(lambda: viewer.source.connection.live, 10, "connected")
        assert viewer.events == 0

        sim = start_simulate(*simulate_args(f"http://127.0.0.1:{port}", truth, acked))
        started = time.monotonic()
        await viewer.wait(lambda: viewer.events >= plan.events // 2, 40, "saw half the events")
        assert sim.poll() is None, "the campaign was over before the kill"
        seen_before_kill = set(viewer.transitions)
        instances[KILLED].kill9()
        killed_after = time.monotonic() - started

        _, err = await asyncio.to_thread(sim.communicate, timeout=90)
        campaign_seconds = time.monotonic() - started
        summary = err.strip()
        assert sim.returncode == 0, f"{summary}\n{logs()}"
        m = re.search(
            r"(\d+) acknowledged \((\d+) as duplicates\) of ([\d,]+) deliveries, (\d+) retried, "
            r"(\d+) rejected, (\d+) given up",
            summary,
        )
        assert m is not None, summary
        answered, as_duplicates, planned, _, rejected, given_up = (
            int(g.replace(",", "")) for g in m.groups()
        )
        assert (answered, planned, rejected, given_up) == (len(plan.deliveries),) * 2 + (0, 0)

        await viewer.wait(lambda: viewer.events >= plan.events, 10, "caught up")
        await asyncio.sleep(0.3)  # a few more ticks: nothing more may arrive
        servers = haproxy_servers(stats_port)
        shown = await viewer.source.messages(limit=10_000)
        assert viewer.source.connection.live
    finally:
        if viewer is not None:
            await viewer.source.close()
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait(10)
        for i in instances:
            i.stop()
        if balancer is not None:
            balancer.terminate()
            balancer.wait(10)

    assert instances[KILLED].proc.returncode == -signal.SIGKILL
    for i, instance in enumerate(instances):
        if i != KILLED:
            assert instance.proc.returncode == 0, logs()
    # HAProxy took the dead instance out and kept the others.
    status = {name: s["status"] for name, s in servers.items()}
    assert status[f"s{KILLED}"] == "DOWN", status
    assert all(s.startswith("UP") for n, s in status.items() if n != f"s{KILLED}"), status

    # Every acknowledged event is stored, once; and every planned event was acknowledged.
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT event_id, instance FROM events")
    finally:
        await conn.close()
    stored = collections.Counter(r["event_id"] for r in rows)
    assert max(stored.values()) == 1, [e for e, n in stored.items() if n > 1][:5]
    assert acked_ids(acked) <= set(stored)
    assert len(acked_ids(acked)) == len(stored) == plan.events

    # Every recipient ends in the truth.
    want = {
        (t["message_id"], t["recipient"]): (t["state"], t["error_code"])
        for t in map(json.loads, truth.read_text().splitlines())
    }
    reader = await open_reader(pg_url)
    try:
        got = {}
        for message_id, recipient in want:
            rec = await reader.recipient(message_id, recipient)
            assert rec is not None, (message_id, recipient)
            got[message_id, recipient] = (rec.state.value if rec.state else None, rec.error_code)
        totals = await reader.totals()
    finally:
        await reader.close()
    assert got == want
    truth_funnel = collections.Counter(state for state, _ in want.values())
    assert totals.funnel == {s: truth_funnel[s.value] for s in FUNNEL}
    assert (totals.events, totals.in_flight) == (plan.events, 0)

    # The viewer shows the whole campaign: its counters are the database's and the truth's ...
    c = viewer.counters
    assert c is not None
    assert (c.events, c.funnel, c.messages, c.in_flight, c.conflicts) == (
        totals.events,
        totals.funnel,
        totals.messages,
        totals.in_flight,
        totals.conflicts,
    )
    assert c.duplicates >= as_duplicates
    # ... every message, each with its recipients' final states ...
    per_message: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (message_id, _), (state, _) in want.items():
        per_message[message_id][state] += 1
    assert len(shown) == totals.messages == len(per_message)
    for msg in shown:
        counts = {s.value: n for s, n in msg.counts.items() if n}
        assert counts == dict(per_message[msg.message_id]), msg.message_id
    # ... and it was live all along, on one connection: every stored event reached it once as a
    # transition (or was counted as left out of a burst), whichever instance stored it.
    assert viewer.snapshots == 1, viewer.connection
    assert max(viewer.transitions.values()) == 1
    assert set(viewer.transitions) <= set(stored)
    assert len(viewer.transitions) + viewer.dropped == len(stored)
    # The events table says which instance stored each event: "host:pid:random".
    by_pid = {inst.proc.pid: inst.index for inst in instances}
    stored_by = {r["event_id"]: by_pid[int(r["instance"].rsplit(":", 2)[1])] for r in rows}
    seen_from = collections.Counter(stored_by[e] for e in viewer.transitions)
    stored_from = collections.Counter(stored_by.values())
    live_from = collections.Counter(stored_by[e] for e in seen_before_kill)
    for i in range(3):
        assert stored_from[i] > 0, f"instance {i} stored nothing: {stored_from}"
        # Live: while the campaign ran, not only once it was over.
        assert live_from[i] > 0, f"before the kill, nothing instance {i} stored: {live_from}"
    assert viewer.deltas_with_events >= 20

    retries = {name: int(s["wretr"] or 0) for name, s in servers.items()}
    redispatched = {name: int(s["wredis"] or 0) for name, s in servers.items()}
    print(
        f"\nHA run: {summary}\n"
        f"  instance {KILLED} killed {killed_after:.1f}s into a {campaign_seconds:.1f}s campaign"
        f" (viewer at {plan.events // 2}+ of {plan.events} events)\n"
        f"  stored by instance: {dict(sorted(stored_from.items()))}; the viewer (on instance"
        f" {VIEWED}) saw: {dict(sorted(seen_from.items()))}, {viewer.dropped} left out of"
        f" bursts, {viewer.deltas_with_events} deltas with events\n"
        f"  haproxy: {status}, retries {retries}, redispatches {redispatched}"
    )
