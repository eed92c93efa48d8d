"""Several instances on one PostgreSQL database, over real HTTP.

The fold must stay exactly right when a recipient's events reach different instances at the same
moment, an event retried to two instances must be stored once and answered 200 by both, and
every instance's counters must agree with the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from smswatch.core.domain import Event, RecipientState, State, fold
from smswatch.devtools.simulate import Delivery, Sender, SimConfig, plan_campaign
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store import open_reader
from tests.conftest import Client

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def instances(url: str, n: int) -> AsyncIterator[list[Engine]]:
    engines = [Engine(EngineConfig(db_path=url, port=0, hub_tick=0.05)) for _ in range(n)]
    # Started at once: the migrations must cope with several instances creating the schema.
    await asyncio.gather(*(e.start() for e in engines))
    try:
        yield engines
    finally:
        await asyncio.gather(*(e.stop() for e in engines))


def lisoloo(event_id: str, state: str, at: str, **data: Any) -> str:
    types = {
        "processing": "sms.processing",
        "sent": "sms.sent",
        "delivered": "sms.delivered",
        "failed": "sms.failed",
        "unknown": "sms.rerouted",
    }
    data.setdefault("recipient_phone", "+243990000001")
    if state == "failed":
        data.setdefault("error_code", "1502")
        data.setdefault("error_message", f"failed at {at}")
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": types[state],
            "timestamp": at,
            "message_id": "hammered",
            "data": data,
        }
    )


async def test_one_recipient_hammered_from_three_instances_folds_as_one_writer_would(
    pg_url: str,
) -> None:
    rng = random.Random(11)
    states = ["processing", "sent", "delivered", "failed", "unknown"]
    bodies = []
    for i in range(80):
        state = rng.choice(states)
        at = f"2026-11-30T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
        carrier = rng.choice([None, "Vodacom", "Orange"])
        extra = {"carrier": carrier} if carrier else {}
        bodies.append(lisoloo(f"evt-{i}", state, at, **extra))
    async with instances(pg_url, 3) as engines, aiohttp.ClientSession() as session:
        clients = [Client(session, e.listener.base_url) for e in engines]
        # Every event goes to two or three instances at the same moment, in a shuffled order.
        sends = [
            (client, body) for body in bodies for client in rng.sample(clients, rng.choice([2, 3]))
        ]
        rng.shuffle(sends)
        answers = await asyncio.gather(*(c.lisoloo(b) for c, b in sends))
        assert all(status == 200 for status, _ in answers), answers
        stored = [a for _, a in answers if a["status"] == "stored"]
        assert len(stored) == len(bodies)  # each event stored once, whichever instance won
        await asyncio.sleep(0.3)  # a few ticks: every hub has read what the others committed
        counters = [e.hub.counters() for e in engines]
        # Each instance's own share (its metrics), which add up to the whole.
        assert sum(e.writer.stored for e in engines) == len(bodies)
        assert sum(e.writer.duplicates for e in engines) == len(sends) - len(bodies)

    # What one writer folding the same events, in any order, ends with.
    expected = RecipientState("hammered", "+243990000001", "lisoloo")
    from smswatch.gateways.lisoloo.webhook import Lisoloo

    adapter = Lisoloo()
    events: list[Event] = []
    for body in bodies:
        events += adapter.parse(body.encode(), 0)
    for ev in events:
        fold(expected, ev)

    # And the domain rules applied by hand, with no code of smswatch's: the highest-ranked
    # state seen; of delivered and failed, the later by event time, and a conflict if both.
    seen = [(json.loads(b)["timestamp"], json.loads(b)["event_type"][4:]) for b in bodies]
    terminal = sorted((at, kind) for at, kind in seen if kind in ("delivered", "failed"))
    assert terminal and terminal[-1][0] != terminal[-2][0]  # no tie for the latest, this seed
    by_hand = (State(terminal[-1][1]), len({kind for _, kind in terminal}) == 2)
    assert (expected.state, expected.conflict) == by_hand

    r = await open_reader(pg_url)
    try:
        got = await r.recipient("hammered", "+243990000001")
        assert got is not None
        assert (got.state, got.conflict) == by_hand
        assert (got.state, got.state_at, got.conflict) == (
            expected.state,
            expected.state_at,
            expected.conflict,
        )
        assert (got.first_at, got.carrier, got.error_code, got.error_message) == (
            expected.first_at,
            expected.carrier,
            expected.error_code,
            expected.error_message,
        )
        assert got.events == len(bodies)
        msg = await r.message("hammered")
        assert msg is not None and msg.events == len(bodies)
        assert sum(msg.counts.values()) == msg.known_recipients == 1
        assert msg.conflicts == int(expected.conflict)
        timeline = await r.timeline("hammered", "+243990000001")
        assert sorted(e.event_id for e in timeline) == sorted(f"evt-{i}" for i in range(80))
        totals = await r.totals()
    finally:
        await r.close()
    for c in counters:  # every instance's counters: the same, and the database's
        assert c.events == totals.events == len(bodies)
        assert c.duplicates == len(sends) - len(bodies)
        assert c.funnel == totals.funnel
        assert (c.messages, c.in_flight, c.conflicts) == (
            totals.messages,
            totals.in_flight,
            totals.conflicts,
        )


async def test_a_campaign_spread_over_three_instances_with_retries_ends_in_the_truth(
    pg_url: str,
) -> None:
    plan = plan_campaign(
        SimConfig(
            provider="mixed", messages=12, recipients=30, duplicate_rate=0.0, fail_rate=0.2, seed=5
        )
    )
    rng = random.Random(4)
    async with instances(pg_url, 3) as engines:
        senders = [
            Sender(SimConfig(url=e.listener.base_url, rate=100_000, concurrency=16))
            for e in engines
        ]
        # Each delivery goes to one to three instances (a gateway retrying through a balancer).
        shares: list[list[Delivery]] = [[], [], []]
        for i, d in enumerate(plan.deliveries):
            for k in rng.sample(range(3), rng.randint(1, 3)):
                shares[k].append(Delivery(0.0, i, d.provider, d.body, d.label))
        for share in shares:
            rng.shuffle(share)
        results = await asyncio.gather(*(s.run(sh) for s, sh in zip(senders, shares, strict=True)))
        for res, share in zip(results, shares, strict=True):
            assert (res.acked, res.rejected, res.dropped) == (len(share), 0, 0)
        await asyncio.sleep(0.3)
        counters = [e.hub.counters() for e in engines]
    r = await open_reader(pg_url)
    try:
        for t in plan.truth:
            rec = await r.recipient(t.message_id, t.recipient)
            assert rec is not None
            assert (rec.state.value, rec.error_code, rec.carrier) == (
                t.state,
                t.error_code,
                t.carrier,
            )
        ids = [e.event_id async for e in r.iter_events()]
        assert len(ids) == len(set(ids)) == plan.events
        totals = await r.totals()
    finally:
        await r.close()
    for c in counters:
        assert c.events == plan.events
        assert c.funnel == totals.funnel
        assert c.funnel[State.DELIVERED] + c.funnel[State.FAILED] > 0
