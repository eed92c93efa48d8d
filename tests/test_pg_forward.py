"""Forwarding with several instances on one PostgreSQL database: each event is sent by one
instance at a time, every one reaches the app, and a forwarder killed mid-attempt leaves
nothing stranded."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from smswatch.config import Credentials
from smswatch.devtools.simulate import Delivery, Sender, SimConfig, plan_campaign
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store.postgres.outbox import PgOutbox
from tests.conftest import BASIC, SECRET
from tests.helpers import free_port
from tests.test_forward import App, check_each_request, forward_config, stored_events, wait_until

pytestmark = pytest.mark.timeout(120)


def instance(url: str, app_url: str, **forward: Any) -> Engine:
    return Engine(
        EngineConfig(
            db_path=url,
            port=0,
            hub_tick=0.05,
            credentials=Credentials(BASIC, SECRET),
            forward=forward_config(app_url, **forward),
        )
    )


async def test_two_instances_forward_every_event_one_at_a_time(pg_url: str, tmp_path: Path) -> None:
    app = await App(fail_rate=0.3, hang_rate=0.05, hang_for=1.0).start()
    plan = plan_campaign(
        SimConfig(provider="mixed", messages=6, recipients=15, duplicate_rate=0.1, seed=31)
    )
    sends = [Delivery(0.0, i, d.provider, d.body, d.label) for i, d in enumerate(plan.deliveries)]
    engines = [instance(pg_url, app.url), instance(pg_url, app.url)]
    await asyncio.gather(*(e.start() for e in engines))
    try:
        senders = [
            Sender(
                SimConfig(
                    url=e.listener.base_url,
                    rate=300,
                    concurrency=8,
                    basic_auth=BASIC,
                    yebolink_secret=SECRET,
                )
            )
            for e in engines
        ]
        results = await asyncio.gather(*(s.run(sends[k::2]) for k, s in enumerate(senders)))
        assert all((r.rejected, r.dropped) == (0, 0) for r in results)
        stored = await stored_events(pg_url)  # type: ignore[arg-type]
        await wait_until(lambda: app.delivered() >= set(stored), within=60)
    finally:
        await asyncio.gather(*(e.stop() for e in engines))
        await app.stop()
    outbox = await PgOutbox(pg_url).open()
    try:
        ids = await outbox.log_ids(list(stored))
        attempts = await outbox.attempts([i for found in ids.values() for i in found])
    finally:
        await outbox.close()
    for event_id, event in stored.items():
        check_each_request(event, app.received[event_id])
        [log_id] = ids[event_id]
        tried = sorted(attempts[log_id], key=lambda a: a.at)
        # Every request the app saw is a recorded attempt, and they came one at a time: each
        # began after the one before had ended (answered, or given up on at the timeout).
        assert len(tried) == len(app.received[event_id])
        assert all(
            later.at >= earlier.at + (earlier.ms or 0) * 1000
            for earlier, later in itertools.pairwise(tried)
        )
    assert set(app.received) == set(stored)


async def test_a_forwarder_killed_mid_attempt_leaves_its_claims_to_the_other_instance(
    pg_url: str,
) -> None:
    app = App(hang_rate=1.0, hang_for=30.0)  # every attempt hangs: A dies holding its claims
    await app.start()
    a = instance(pg_url, app.url, timeout=1.0, concurrency=4)
    await a.start()
    b: Engine | None = None
    try:
        for i in range(8):
            status, _ = await post(a, i)
            assert status == 200
        await wait_until(lambda: len(app.received) >= 4, within=10)  # A has claims in flight
        assert a.forwarder is not None and a.forwarder._proc is not None
        os.kill(a.forwarder._proc.pid, signal.SIGKILL)  # mid-attempt, nothing recorded
        await a.stop()
        app.hang_rate = 0.0  # the app is fine again; only B is left to send
        b = instance(pg_url, app.url, timeout=1.0)
        await b.start()
        # A's leases (2 x 1 s + 5 s) run out, then B takes every one of them.
        wanted = {f"pg-fwd-{i}" for i in range(8)}
        await wait_until(
            lambda: (
                {e for e in wanted if any(r.get("status") == 200 for r in app.received[e])}
                == wanted
            ),
            within=40,
        )
    finally:
        if b is not None:
            await b.stop()
        await app.stop()


async def post(engine: Engine, i: int) -> tuple[int, Any]:
    import json

    import aiohttp

    from tests.conftest import Client

    body = json.dumps(
        {
            "event_id": f"pg-fwd-{i}",
            "event_type": "sms.sent",
            "message_id": "pg-forward",
            "data": {"recipient_phone": f"+2438{i:08d}"},
        }
    )
    async with aiohttp.ClientSession() as session:
        return await Client(session, engine.listener.base_url).lisoloo(body, BASIC)


async def test_the_forwarder_rides_out_a_database_outage(pg_url: str, postgres_server) -> None:
    from urllib.parse import urlsplit

    from tests.test_pg_outage import set_reachable

    app = App(port=free_port())  # down at first: the events wait in the outbox
    engine = instance(pg_url, app.url, timeout=0.5)
    await engine.start()
    try:
        for i in range(6):
            assert (await post(engine, i))[0] == 200
        db = urlsplit(pg_url).path.lstrip("/")
        await set_reachable(postgres_server.url("postgres"), db, False)
        # Up again only once the forwarder has felt the outage (it cannot open or use the outbox),
        # however long that takes on a busy machine.
        assert engine.forwarder is not None
        forwarder = engine.forwarder
        await wait_until(
            lambda: any("the outbox: " in line for line in forwarder.stderr), within=30
        )
        await set_reachable(postgres_server.url("postgres"), db, True)
        await app.start()
        wanted = {f"pg-fwd-{i}" for i in range(6)}
        await wait_until(lambda: app.delivered() >= wanted, within=30)
        assert engine.forwarder is not None
        assert engine.forwarder.restarts == 0, "\n".join(engine.forwarder.stderr)
        await wait_until(
            lambda: bool(engine.hub.forwarding) and engine.hub.forwarding[0].delivered == 6,
            within=10,
        )
    finally:
        await engine.stop()
        await app.stop()


async def test_an_instance_that_does_not_forward_shows_and_resends_what_the_others_forward(
    pg_url: str,
) -> None:
    app = await App().start()
    sender = instance(pg_url, app.url, timeout=1.0)
    watcher = Engine(EngineConfig(db_path=pg_url, port=0, hub_tick=0.05, listen=False))
    await sender.start()
    await watcher.start()
    try:
        for i in range(5):
            assert (await post(sender, i))[0] == 200
        wanted = {f"pg-fwd-{i}" for i in range(5)}
        await wait_until(lambda: app.delivered() >= wanted, within=15)

        def shown() -> Any:
            status = watcher.hub.forwarding
            return status[0] if status and status[0].delivered == 5 else None

        await wait_until(lambda: shown() is not None, within=10)
        assert shown().target == app.url  # no password in it: none given
        assert watcher.forwarder is not None and watcher.forwarder._proc is None  # sends nothing
        # A re-send asked for on the watcher is sent by the instance that forwards.
        outbox = await PgOutbox(pg_url).open()
        try:
            [log_id] = (await outbox.log_ids(["pg-fwd-3"]))["pg-fwd-3"]
        finally:
            await outbox.close()
        assert await watcher.forwarder.resend([log_id], failed_only=False) == 1
        await wait_until(lambda: len(app.received["pg-fwd-3"]) == 2, within=10)
    finally:
        await watcher.stop()
        await sender.stop()
        await app.stop()
