"""Forwarding to the team's own app, over real HTTP, with an app that misbehaves: it answers 500
to about 30% of requests, hangs on some past the forward timeout, and goes down for a few
seconds. Every stored event must reach it at least once, byte for byte, authenticated the way
it expects, with the event-id header; and the webhooks keep being answered meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import random
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from smswatch.config import Credentials
from smswatch.core.forwarding import Target
from smswatch.devtools.simulate import Delivery, Sender, SimConfig, plan_campaign
from smswatch.forward.config import ForwardConfig
from smswatch.gateways.yebolink.webhook import sign
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store import open_reader
from smswatch.store.sqlite.outbox import outbox_path
from tests.conftest import BASIC, SECRET, Client, basic_header, running
from tests.helpers import SMSWATCH, free_port

pytestmark = pytest.mark.timeout(120)


@dataclass
class App:
    """The team's app: records every request; fails, hangs and goes away on demand."""

    fail_rate: float = 0.0
    hang_rate: float = 0.0
    hang_for: float = 3.0
    port: int = 0
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    answers: list[int] = field(default_factory=list)
    runner: web.AppRunner | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("X-Smswatch-Event-Id", "")
        record: dict[str, Any] = {"body": body, "headers": dict(request.headers)}
        self.received[event_id].append(record)
        roll = self.rng.random()
        if roll < self.hang_rate:
            await asyncio.sleep(self.hang_for)  # past the forward timeout
        if roll < self.hang_rate + self.fail_rate:
            self.answers.append(record.setdefault("status", 500))
            return web.Response(status=500, text='{"error": "database is locked"}')
        self.answers.append(record.setdefault("status", 200))
        return web.json_response({"ok": True})

    async def start(self) -> App:
        app = web.Application()
        app.router.add_post("/hooks/sms", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sms"

    def delivered(self) -> set[str]:
        return {eid for eid, reqs in self.received.items() if reqs}


@pytest.fixture
async def app() -> AsyncIterator[App]:
    a = await App().start()
    yield a
    await a.stop()


def forward_config(url: str, **kw: Any) -> ForwardConfig:
    values: dict[str, Any] = dict(
        targets=(Target(url),),
        basic_auth=BASIC,
        secret=SECRET,
        timeout=0.5,
        concurrency=4,
        base_delay=0.05,
        max_delay=0.4,
        max_attempts=1000,
    )
    values.update(kw)
    return ForwardConfig(**values)


def check_each_request(event: dict[str, Any], requests: list[dict[str, Any]]) -> None:
    """Byte for byte, with the event-id header and the auth the gateway would have sent."""
    for req in requests:
        assert req["body"] == event["payload"].encode()
        headers = req["headers"]
        assert headers["X-Smswatch-Event-Id"] == event["event_id"]
        assert headers["Content-Type"] == "application/json"
        if event["provider"] == "lisoloo":
            assert headers["Authorization"] == basic_header(*BASIC)
        else:
            expected = sign(SECRET, req["body"])
            assert hmac.compare_digest(headers["X-YeboLink-Signature"], expected)


async def wait_until(condition: Any, within: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def tried_forwards(db: Path) -> int:
    """Events the outbox beside `db` has tried to forward at least once (0: no outbox yet)."""
    if not outbox_path(db).exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{outbox_path(db)}?mode=ro", uri=True)) as o:
        try:
            return o.execute("SELECT count(*) FROM forwards WHERE attempts > 0").fetchone()[0]
        except sqlite3.OperationalError:  # being created
            return 0


async def stored_events(db: Path) -> dict[str, dict[str, Any]]:
    async with await open_reader(db, current=True) as r:
        return {
            e.event_id: {"event_id": e.event_id, "provider": e.provider, "payload": e.payload}
            async for e in r.iter_events()
        }


async def test_every_event_reaches_a_failing_hanging_and_vanishing_app_at_least_once(
    tmp_path: Path, app: App, session: aiohttp.ClientSession
) -> None:
    app.fail_rate, app.hang_rate, app.hang_for = 0.3, 0.05, 1.0
    db = tmp_path / "fwd.db"
    config = EngineConfig(
        db_path=db,
        port=0,
        hub_tick=0.05,
        credentials=Credentials(BASIC, SECRET),
        forward=forward_config(app.url),
    )
    plan = plan_campaign(
        SimConfig(provider="mixed", messages=8, recipients=15, duplicate_rate=0.1, seed=21)
    )
    sends = [Delivery(0.0, i, d.provider, d.body, d.label) for i, d in enumerate(plan.deliveries)]
    half = len(sends) // 2
    async with running(Engine(config)) as engine:
        sender = Sender(
            SimConfig(
                url=engine.listener.base_url,
                rate=400,
                concurrency=8,
                basic_auth=BASIC,
                yebolink_secret=SECRET,
            )
        )
        await sender.run(sends[:half])
        # The app goes away for a few seconds; webhooks are still answered meanwhile.
        await app.stop()
        outage = asyncio.create_task(sender.run(sends[half:]))
        # Until the forwarder has tried the app while it was down, and failed.
        await wait_until(
            lambda: engine.hub.forwarding and engine.hub.forwarding[0].failed_attempts > 0,
            within=60,
        )
        await app.start()
        second = await outage
        # (One sender: its result counts both halves.)
        assert (second.acked, second.rejected, second.dropped) == (len(sends), 0, 0)
        stored = await stored_events(db)
        await wait_until(lambda: app.delivered() >= set(stored), within=60)
        # The outbox agrees: nothing left, nothing failed.
        await wait_until(
            lambda: engine.hub.forwarding and engine.hub.forwarding[0].backlog == 0, within=10
        )
        status = engine.hub.forwarding[0]
        assert (status.failed, status.delivered) == (0, len(stored))
    assert 500 in app.answers and 200 in app.answers
    for event_id, event in stored.items():
        check_each_request(event, app.received[event_id])
    assert set(app.received) == set(stored)  # nothing the store does not have


def serve(db: Path, port: int, forward_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *SMSWATCH,
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--no-feed",
            "--basic-auth",
            ":".join(BASIC),
            "--yebolink-secret",
            SECRET,
            "--forward-to",
            forward_url,
            "--forward-timeout",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not start")


def lisoloo(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"fwd-kill-{i}",
            "event_type": "sms.sent",
            "message_id": "kill-backlog",
            "data": {"recipient_phone": f"+2438{i:08d}"},
        }
    ).encode()


async def test_sigkill_with_a_backlog_then_restart_drains_it(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    db = tmp_path / "kill.db"
    app = App(port=free_port())
    port = free_port()
    proc = serve(db, port, app.url)  # the app is not up: everything waits in the outbox
    try:
        await wait_for_port(port)
        auth = {"Authorization": basic_header(*BASIC), "Content-Type": "application/json"}
        for i in range(60):
            url = f"http://127.0.0.1:{port}/webhooks/lisoloo"
            async with session.post(url, data=lisoloo(i), headers=auth) as resp:
                assert resp.status == 200
        # Until the forwarder has queued all 60 and tried each at least once.
        await wait_until(lambda: tried_forwards(db) == 60, within=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await app.start()
        proc = serve(db, port, app.url)
        await wait_for_port(port)
        wanted = {f"fwd-kill-{i}" for i in range(60)}
        await wait_until(lambda: app.delivered() >= wanted, within=30)
        for i in range(60):
            [first, *_] = app.received[f"fwd-kill-{i}"]
            assert first["body"] == lisoloo(i)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
        await app.stop()
    # No forwarder outlives its serve.
    assert not forwarders_of(db)


def forwarders_of(db: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"smswatch.forward {db}"], capture_output=True, text=True)
    return out.stdout.split()


def test_forwarding_metrics_label_targets_without_their_password() -> None:
    from smswatch.core.forwarding import Attempt, TargetStatus
    from smswatch.live.metrics import forwarding_metrics

    url = "https://hook:s3cret@app.example/sms"
    status = TargetStatus(url, 7, 2, 40, 3, Attempt(1, url, 5, None, "refused", 3), 4)
    families = {f.name: f for f in forwarding_metrics((status,))}
    values = {
        name: [(s.labels["target"], s.value) for s in f.samples if not s.name.endswith("_created")]
        for name, f in families.items()
    }
    label = "https://hook:***@app.example/sms"
    assert values == {
        "smswatch_forward_backlog": [(label, 7)],
        "smswatch_forward_delivered": [(label, 40)],
        "smswatch_forward_failed": [(label, 2)],
        "smswatch_forward_last_status": [(label, 0)],
    }


async def test_credentials_in_the_target_url_are_sent_as_basic_auth_for_every_forward(
    tmp_path: Path, app: App, session: aiohttp.ClientSession
) -> None:
    url = app.url.replace("http://", "http://app-user:app%20pw@")
    config = EngineConfig(
        db_path=tmp_path / "cred.db",
        port=0,
        credentials=Credentials(BASIC, SECRET),
        forward=forward_config(url),
    )
    async with running(Engine(config)) as engine:
        client = Client(session, engine.listener.base_url)
        lisoloo = json.dumps(
            {"event_id": "cred-1", "event_type": "sms.sent", "message_id": "m", "data": {}}
        )
        assert (await client.lisoloo(lisoloo, BASIC))[0] == 200
        yebo = json.dumps(
            {
                "event": "message.sent",
                "timestamp": "2026-11-30T10:00:00Z",
                "data": {"message_id": "y-cred", "recipient": "+1"},
            }
        )
        assert (await client.yebolink(yebo, SECRET))[0] == 200
        await wait_until(lambda: len(app.delivered()) == 2, within=15)
    expected = basic_header("app-user", "app pw")
    for requests in app.received.values():
        assert [r["headers"]["Authorization"] for r in requests] == [expected] * len(requests)


def test_a_retried_forward_gets_all_its_attempts_again(tmp_path: Path) -> None:
    import asyncio as aio

    from smswatch.core.forwarding import Attempt, Outcome
    from smswatch.store import make_writer
    from smswatch.store.sqlite.outbox import Outbox
    from tests.test_store_conformance import event

    db = tmp_path / "retry.db"

    async def store(*events: Any) -> None:
        writer = make_writer(db)
        await writer.open()
        await writer.submit(list(events))
        await writer.close()

    aio.run(store())  # the log exists, empty
    outbox = Outbox(db).open()
    target = Target("http://app/")
    outbox.register([target])
    aio.run(store(event(1)))
    outbox.enqueue([target], 1)
    for n in range(3):  # three attempts, the last one final
        [job] = outbox.due(10 + n, 1)
        attempt = Attempt(job.event, job.target, 10 + n, 500, "no", 1)
        outbox.record([Outcome(job, attempt, False, retry_at=None if n == 2 else 10 + n)])
    [status] = outbox.status(20)
    assert status.failed == 1
    assert outbox.retry(30) == 1
    [job] = outbox.due(30, 1)
    assert job.attempts == 0  # not one failure away from failed again
    # Waiting out a backoff, then the app answers again: hurried, it is due at once.
    outbox.record([Outcome(job, Attempt(job.event, job.target, 31, 503, "no", 1), False, 10**9)])
    assert outbox.due(40, 1) == []
    assert outbox.hurry(target.url, 40) == 1
    assert [j.event for j in outbox.due(40, 1)] == [job.event]
    outbox.close()


async def test_polled_answers_reach_only_the_apps_that_asked_for_them_marked_as_polled(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A status API's answer is no webhook: by default it is not forwarded; a target given
    --forward-polled gets it with X-Smswatch-Polled: 1 (and the webhooks without it)."""
    from types import SimpleNamespace

    from smswatch.gateways.lisoloo.api import status_event as lisoloo_status_event

    plain, polled = await App().start(), await App().start()
    db = tmp_path / "polled.db"
    forward = forward_config(
        plain.url, targets=(Target(plain.url), Target(polled.url, polled=True))
    )
    config = EngineConfig(
        db_path=db, port=0, hub_tick=0.05, credentials=Credentials(BASIC, SECRET), forward=forward
    )
    webhook = json.dumps(
        {
            "event_id": "ev-webhook",
            "event_type": "sms.sent",
            "timestamp": "2026-05-27T10:15:03Z",
            "message_id": "m-polled",
            "data": {"recipient_phone": "+243810000001"},
        }
    )
    status = SimpleNamespace(
        message_id="m-polled",
        status="completed",
        delivered=1,
        failed=0,
        pending=0,
        updated_at=1_795_400_000_000_000,
        created_at=None,
        raw={"message_id": "m-polled", "status": "completed"},
        total_recipients=1,
    )
    try:
        async with running(Engine(config)) as engine:
            client = Client(session, engine.listener.base_url)
            assert (await client.lisoloo(webhook, BASIC))[0] == 200
            # As the reconciler stores what it polled: through the engine's writer.
            await engine.writer.submit([lisoloo_status_event(status, 1_795_400_001_000_000)])
            await wait_until(lambda: len(polled.delivered()) == 2, within=30)
            await wait_until(lambda: "ev-webhook" in plain.delivered(), within=30)
            await wait_until(lambda: all(t.backlog == 0 for t in engine.hub.forwarding), within=10)
    finally:
        await plain.stop()
        await polled.stop()
    assert set(plain.received) == {"ev-webhook"}
    (poll_id,) = set(polled.received) - {"ev-webhook"}
    assert poll_id.startswith("poll:")
    (answer,) = polled.received[poll_id]
    assert answer["headers"]["X-Smswatch-Polled"] == "1"
    assert json.loads(answer["body"]) == status.raw
    for app in (plain, polled):
        (hook,) = app.received["ev-webhook"]
        assert "X-Smswatch-Polled" not in hook["headers"]
        assert hook["body"] == webhook.encode()
