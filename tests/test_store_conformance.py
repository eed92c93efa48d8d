"""One suite, both store back ends: what the engine and every screen rely on from a store.

Each test runs against a SQLite file and against a PostgreSQL database (a throwaway server the
suite starts itself, tests/pg_server.py), through the seam only: `make_writer` and
`open_reader`. Dedupe, the fold rules, migrations, the quarantine, the size cap and every query
the UI, `inspect`, `export` and `stats` use.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from smswatch.core.domain import UNATTRIBUTED, Event, MessageInfo, State
from smswatch.core.records import Rejection
from smswatch.store import (
    NoDatabase,
    StoreUnavailable,
    Unstorable,
    is_url,
    make_writer,
    open_reader,
)
from smswatch.store.postgres import schema as pg_schema
from smswatch.store.sqlite import schema as sqlite_schema
from smswatch.store.sqlite.reader import Reader


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return tmp_path / "conformance.db"


def event(n: int, state: State = State.SENT, **kw: Any) -> Event:
    values: dict[str, Any] = dict(
        provider="lisoloo",
        event_id=f"e{n}",
        dedupe_key=f"lisoloo|e{n}",
        event_type=f"sms.{state.value}",
        state=state,
        message_id="m",
        recipient="+100",
        occurred_at=1_000_000 * n,
        received_at=1_000_000 * n,
        payload=f'{{"n": {n}}}',
    )
    values.update(kw)
    return Event(**values)


class Store:
    """A writer on `db` and readers opened on demand."""

    def __init__(self, db: str | Path, **options: Any) -> None:
        self.db = db
        self.writer = make_writer(db, **options)
        self.readers: list[Reader] = []

    async def submit(self, *events: Event) -> list[Any]:
        return await self.writer.submit(list(events))

    async def reader(self) -> Reader:
        r = await open_reader(self.db, current=True)
        self.readers.append(r)
        return r


@pytest.fixture
async def store(db: str | Path) -> AsyncIterator[Store]:
    s = Store(db)
    await s.writer.open()
    yield s
    for r in s.readers:
        await r.close()
    await s.writer.close()


# --- dedupe ---------------------------------------------------------------------------------------


async def test_an_event_is_stored_once_and_its_duplicates_name_the_stored_message(store) -> None:
    first = await store.submit(event(1))
    again = await store.submit(event(1, message_id="other"))
    together = await asyncio.gather(*(store.submit(event(2)) for _ in range(20)))
    assert [(o.message_id, o.duplicate) for o in first + again] == [("m", False), ("m", True)]
    assert sum(not o[0].duplicate for o in together) == 1
    r = await store.reader()
    assert [e.event_id async for e in r.iter_events()] == ["e1", "e2"]
    assert (await r.message("m")).events == 2
    assert await r.message("other") is None


async def test_duplicates_within_one_batch_fold_once(store) -> None:
    out = await store.submit(event(1), event(1), event(2, State.DELIVERED))
    assert [o.duplicate for o in out] == [False, True, False]
    rec = await (await store.reader()).recipient("m", "+100")
    assert (rec.state, rec.events) == (State.DELIVERED, 2)


# --- the fold rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
async def test_the_fold_does_not_depend_on_arrival_order(store, order) -> None:
    events = [
        event(1, State.PROCESSING, carrier="Vodacom"),
        event(2, State.SENT),
        event(4, State.FAILED, error_code="1502", error_message="late"),
        event(3, State.DELIVERED, carrier="Orange"),
    ]
    for i in order:
        await store.submit(events[i])
    r = await store.reader()
    rec = await r.recipient("m", "+100")
    # Both outcomes arrived: the later by event time wins, and the conflict is flagged.
    assert (rec.state, rec.state_at, rec.conflict) == (State.FAILED, 4_000_000, True)
    assert (rec.error_code, rec.error_message, rec.carrier) == ("1502", "late", "Orange")
    assert rec.first_at == {
        State.PROCESSING: 1_000_000,
        State.SENT: 2_000_000,
        State.DELIVERED: 3_000_000,
        State.FAILED: 4_000_000,
    }
    msg = await r.message("m")
    assert msg.counts[State.FAILED] == 1 and msg.conflicts == 1 and msg.known_recipients == 1
    assert msg.finished and msg.finished_at is not None


async def test_a_final_state_is_never_replaced_by_a_lower_one(store) -> None:
    await store.submit(event(5, State.DELIVERED))
    await store.submit(event(6, State.SENT), event(7, State.PROCESSING))
    await store.submit(event(8, State.UNKNOWN, event_type="sms.rerouted"))
    r = await store.reader()
    rec = await r.recipient("m", "+100")
    assert (rec.state, rec.state_at, rec.conflict, rec.events) == (
        State.DELIVERED,
        5_000_000,
        False,
        4,
    )
    assert (await r.totals()).funnel[State.DELIVERED] == 1


async def test_unconfirmed_is_counted_apart_and_an_outcome_replaces_it_without_a_conflict(
    store,
) -> None:
    await store.submit(*(event(n, State.SENT, recipient=f"+{n}") for n in (1, 2, 3)))
    await store.submit(
        event(4, State.UNCONFIRMED, recipient="+1"),
        event(5, State.UNCONFIRMED, recipient="+2"),
        event(6, State.DELIVERED, recipient="+3"),
    )
    r = await store.reader()
    msg = await r.message("m")
    assert (msg.counts[State.UNCONFIRMED], msg.counts[State.DELIVERED], msg.counts[State.SENT]) == (
        2,
        1,
        0,
    )
    assert msg.finished  # the gateway will say no more of any of them
    assert (await r.totals()).funnel[State.UNCONFIRMED] == 2
    # The real receipt of +2 comes after all (timed before its `unknown`), and a late
    # `unknown` of +3 after its delivery: neither conflicts, and the outcomes stand.
    await store.submit(
        event(7, State.FAILED, recipient="+2", occurred_at=4_500_000, error_code="1"),
        event(8, State.UNCONFIRMED, recipient="+3"),
    )
    r = await store.reader()
    msg = await r.message("m")
    counts = {s: msg.counts[s] for s in (State.DELIVERED, State.FAILED, State.UNCONFIRMED)}
    assert counts == {State.DELIVERED: 1, State.FAILED: 1, State.UNCONFIRMED: 1}
    assert msg.conflicts == 0 and msg.finished
    two = await r.recipient("m", "+2")
    assert (two.state, two.state_at, two.conflict, two.error_code) == (
        State.FAILED,
        4_500_000,
        False,
        "1",
    )
    assert two.first_at[State.UNCONFIRMED] == 5_000_000
    three = await r.recipient("m", "+3")
    assert (three.state, three.conflict, three.first_at[State.UNCONFIRMED]) == (
        State.DELIVERED,
        False,
        8_000_000,
    )
    totals = await r.totals()
    assert [totals.funnel[s] for s in (State.DELIVERED, State.FAILED, State.UNCONFIRMED)] == [
        1,
        1,
        1,
    ]
    assert totals.conflicts == 0


async def test_message_facts_and_unseen_recipients_count_as_queued(store) -> None:
    info = MessageInfo(total_recipients=5, total_cost=1.25, currency="USD")
    await store.submit(event(1, State.QUEUED, recipient=None, message_info=info))
    await store.submit(event(2, State.SENT, recipient="+1"), event(3, State.SENT, recipient="+2"))
    r = await store.reader()
    msg = await r.message("m")
    assert (msg.total_recipients, msg.total_cost, msg.currency) == (5, 1.25, "USD")
    assert msg.count(State.QUEUED) == 3 and msg.count(State.SENT) == 2
    totals = await r.totals()
    assert totals.funnel[State.QUEUED] == 3 and totals.funnel[State.SENT] == 2
    assert (totals.events, totals.messages, totals.in_flight) == (3, 1, 1)
    assert totals.by_provider == {"lisoloo": 3}
    assert [e.event_id for e in await r.timeline("m", None)] == ["e1"]


async def test_an_event_without_a_message_id_joins_its_recipients_latest_message(store) -> None:
    await store.submit(event(1, message_id="first", recipient="+7"))
    await store.submit(event(2, message_id="second", recipient="+7"))
    out = await store.submit(event(3, State.DELIVERED, message_id=None, recipient="+7"))
    lonely = await store.submit(event(4, message_id=None, recipient=None))
    assert out[0].message_id == "second" and lonely[0].message_id == UNATTRIBUTED
    rec = await (await store.reader()).recipient("second", "+7")
    assert rec.state == State.DELIVERED


async def test_attribution_looks_at_the_same_batch_first_then_the_tables(store) -> None:
    """The whole rule, on both back ends: a recipient's latest message of the gateway; else the
    gateway's latest message still in flight; else `unattributed`. Events earlier in the same
    request count, before what the tables hold."""
    # In the tables: an open message, and a finished one that has +7.
    await store.submit(event(1, message_id="old-open", recipient="+1"))
    await store.submit(event(2, State.DELIVERED, message_id="done", recipient="+7"))
    # One request: a new open message, then events without a message id.
    out = await store.submit(
        event(3, message_id="new-open", recipient="+2"),
        event(4, State.DELIVERED, message_id=None, recipient="+9"),  # unseen: latest open
        event(5, State.DELIVERED, message_id=None, recipient="+7"),  # its latest, though done
        event(6, message_id=None, recipient="+2"),  # seen earlier in this request
        event(7, message_id=None, recipient="+8", provider="yebolink"),  # no open yebolink one
    )
    assert [o.message_id for o in out] == ["new-open", "new-open", "done", "new-open", UNATTRIBUTED]
    r = await store.reader()
    assert (await r.recipient("new-open", "+9")).state == State.DELIVERED
    assert (await r.recipient("done", "+7")).state == State.DELIVERED
    assert (await r.message("new-open")).events == 3
    # Across requests the tables answer: the newest open message of the gateway.
    later = await store.submit(event(8, message_id=None, recipient="+10"))
    assert later[0].message_id == "new-open"


# --- refusals, the quarantine, the size cap ---------------------------------------------------


async def test_a_value_the_store_refuses_fails_only_its_own_request(store) -> None:
    good = [store.submit(event(i, recipient=f"+{i}")) for i in range(5)]
    bad = store.submit(event(99, payload="\ud800"))  # not encodable as UTF-8
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert [type(r) for r in results[:5]] == [list] * 5
    assert isinstance(results[5], Unstorable)
    assert len([e async for e in (await store.reader()).iter_events()]) == 5


async def test_a_nul_character_in_a_field_is_stored_not_refused(store) -> None:
    await store.submit(event(1, State.FAILED, error_message="bad\x00byte"))
    rec = await (await store.reader()).recipient("m", "+100")
    assert rec.error_message in ("bad\x00byte", "bad\u2400byte")  # PostgreSQL text has no NUL


async def test_the_quarantine_is_bounded_and_newest_first(db) -> None:
    s = Store(db, quarantine_keep=10, quarantine_body_max=100)
    await s.writer.open()
    try:
        for i in range(25):
            s.writer.quarantine(
                Rejection(
                    received_at=i, status=400, code="malformed_json", reason="x", body=b"y" * 1000
                )
            )
            await asyncio.sleep(0)
        await s.submit(event(1))
        r = await s.reader()
        kept = await r.quarantine(100)
        assert len(kept) == 10 == await r.quarantine_count()
        assert kept[0].received_at == 24 and all(len(k.body) == 100 for k in kept)
    finally:
        for r in s.readers:
            await r.close()
        await s.writer.close()


async def test_over_the_size_cap_events_are_refused_as_unavailable_and_none_is_lost(db) -> None:
    s = Store(db, max_db_bytes=9 * 1024 * 1024 if is_url(db) else 256 * 1024)
    await s.writer.open()
    acked: list[str] = []
    refused = 0
    try:
        for i in range(2_000):
            try:
                # Random text: PostgreSQL compresses long values, and a repeated one to nothing.
                payload = base64.b64encode(os.urandom(3000)).decode()
                await s.submit(event(i, recipient=f"+{i}", payload=payload))
            except StoreUnavailable:
                refused += 1
                break
            acked.append(f"e{i}")
            if is_url(db) and i % 50 == 0:
                s.writer._size_checked = 0  # look at the size now, not in five seconds
        r = await s.reader()
        stored = [e.event_id async for e in r.iter_events()]
    finally:
        for r in s.readers:
            await r.close()
        await s.writer.close()
    assert refused == 1 and s.writer.failing is not None
    assert stored == acked


async def test_submit_after_close_is_unavailable(db) -> None:
    s = Store(db)
    await s.writer.open()
    await s.writer.close()
    with pytest.raises(StoreUnavailable):
        await s.submit(event(1))


# --- migrations -----------------------------------------------------------------------------------


async def newer_schema(db: str | Path) -> None:
    """Make `db` look written by a newer smswatch."""
    if is_url(db):
        conn = await asyncpg.connect(str(db))
        await conn.execute("INSERT INTO smswatch_schema VALUES ($1)", pg_schema.SCHEMA_VERSION + 1)
        await conn.close()
    else:
        conn = sqlite3.connect(db)
        conn.execute(f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}")
        conn.close()


async def test_reopening_keeps_everything_and_a_newer_schema_is_refused(db) -> None:
    for n in (1, 2):  # the second open finds the schema in place and migrates nothing
        s = Store(db)
        await s.writer.open()
        await s.submit(event(n))
        await s.writer.close()
    async with await open_reader(db) as r:
        assert [e.event_id async for e in r.iter_events()] == ["e1", "e2"]
    await newer_schema(db)
    with pytest.raises(Exception, match="newer"):
        await make_writer(db).open()
    with pytest.raises(NoDatabase, match="newer"):
        await open_reader(db)


async def test_instances_that_start_at_once_migrate_once(db) -> None:
    writers = [make_writer(db) for _ in range(4 if is_url(db) else 1)]
    await asyncio.gather(*(w.open() for w in writers))
    try:
        await asyncio.gather(*(w.submit([event(i)]) for i, w in enumerate(writers)))
    finally:
        await asyncio.gather(*(w.close() for w in writers))
    async with await open_reader(db) as r:
        assert (await r.totals()).events == len(writers)


# --- the queries the screens, inspect, export and stats use -----------------------------------


@pytest.fixture
async def campaign(store) -> Reader:
    """Three messages: one delivered, one with failures, one still in flight."""
    n = itertools.count(1)

    def ev(mid: str, rcp: str, state: State, **kw: Any) -> Event:
        i = next(n)
        return event(i, state, message_id=mid, recipient=rcp, **kw)

    await store.submit(
        ev("msg-ok", "+2431", State.SENT, carrier="Vodacom"),
        ev("msg-ok", "+2431", State.DELIVERED, carrier="Vodacom"),
        ev("msg-ok", "+2432", State.DELIVERED),
    )
    await store.submit(
        ev("msg-bad", "+2433", State.SENT),
        ev("msg-bad", "+2433", State.FAILED, error_code="1502", error_message="Unreachable"),
        ev("msg-bad", "+2434", State.FAILED, error_code="1502", error_message="Still unreachable"),
        ev("msg-bad", "+2435", State.FAILED, error_code="1503", retryable=True),
    )
    await store.submit(
        ev("msg-open", "+2436", State.PROCESSING), ev("msg-open", "+2437", State.SENT)
    )
    return await store.reader()


async def test_message_lookups(campaign: Reader) -> None:
    r = campaign
    assert await r.resolve_message_id("msg-ok") == "msg-ok"
    assert await r.resolve_message_id("msg-o") is None  # two messages start so
    assert await r.resolve_message_id("msg-b") == "msg-bad"
    assert await r.resolve_message_id("nope") is None
    assert [m.message_id for m in await r.recent_messages()] == ["msg-open", "msg-bad", "msg-ok"]
    assert [m.message_id for m in await r.recent_messages(failed_only=True)] == ["msg-bad"]
    assert [m.message_id for m in await r.recent_messages(limit=1)] == ["msg-open"]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("", ["msg-open", "msg-bad", "msg-ok"]),
        ("MSG-B", ["msg-bad"]),  # ids match without case, as SQLite's LIKE does
        ("2437", ["msg-open"]),  # a phone number's part
        ("failed", ["msg-bad"]),  # a state
        ("1503", ["msg-bad"]),  # an error code
        ("Vodacom", ["msg-ok"]),  # a carrier
        ("lisoloo", ["msg-open", "msg-bad", "msg-ok"]),  # a gateway
        ("100%", []),  # LIKE's wildcards are literal
        # One rule for every field: the text anywhere in it, in any case.
        ("sg-o", ["msg-open", "msg-ok"]),  # within a message id
        ("fail", ["msg-bad"]),  # within a state
        ("150", ["msg-bad"]),  # within an error code
        ("vODA", ["msg-ok"]),  # within a carrier
        ("LISO", ["msg-open", "msg-bad", "msg-ok"]),  # within a gateway
        ("msg_ok", []),  # `_` is literal, not any one character
        ("msg%ok", []),
    ],
)
async def test_search_messages(campaign: Reader, query: str, found: list[str]) -> None:
    assert [m.message_id for m in await campaign.search_messages(query)] == found


async def test_recipient_lists_and_filters(campaign: Reader) -> None:
    r = campaign
    assert await r.count_recipients("msg-bad") == 3
    assert [x.recipient for x in await r.recipients("msg-bad")] == ["+2433", "+2434", "+2435"]
    assert [x.recipient for x in await r.recipients("msg-bad", limit=1, offset=1)] == ["+2434"]
    assert [x.recipient for x in await r.recipients("msg-ok", state=State.DELIVERED)] == [
        "+2431",
        "+2432",
    ]
    assert [x.recipient for x in await r.recipients("msg-bad", text="1503")] == ["+2435"]
    assert [x.recipient for x in await r.recipients("msg-ok", text="vodacom")] == ["+2431"]
    assert [x.recipient for x in await r.recipients("msg-ok", text="ODAC")] == ["+2431"]
    assert [x.recipient for x in await r.recipients("msg-bad", text="150")] == [
        "+2433",
        "+2434",
        "+2435",
    ]
    assert [x.recipient for x in await r.recipients("msg-ok", text="DELIV")] == ["+2431", "+2432"]
    assert await r.recipients("msg-ok", text="+243_") == []  # LIKE's wildcards are literal
    assert await r.recipients("msg-ok", text="+243%1") == []
    assert len(await r.recipients("msg-bad", failed_only=True)) == 3
    one = await r.recipient("msg-bad", "+2435")
    assert (one.state, one.error_code, one.retryable) == (State.FAILED, "1503", True)


async def test_timelines_and_event_pages(campaign: Reader) -> None:
    r = campaign
    assert [e.state for e in await r.timeline("msg-ok", "+2431")] == [
        State.SENT,
        State.DELIVERED,
    ]
    assert [e.recipient for e in await r.message_events("msg-bad")] == [
        "+2433",
        "+2433",
        "+2434",
        "+2435",
    ]
    recent = await r.recent_events(limit=3)
    assert [e.event_id for e in recent] == ["e7", "e8", "e9"]
    page = await r.events_after(2, limit=3)
    assert [e.event_id for e in page] == ["e3", "e4", "e5"]
    assert [e.event_id for e in await r.events_after(0, message_id="msg-open")] == ["e8", "e9"]
    assert len([e async for e in r.iter_events(chunk=2)]) == 9
    assert [e.event_id async for e in r.iter_events("msg-ok", chunk=2)] == ["e1", "e2", "e3"]


async def test_totals_failures_stuck_and_latency(campaign: Reader) -> None:
    r = campaign
    totals = await r.totals()
    assert (totals.events, totals.messages, totals.in_flight, totals.conflicts) == (9, 3, 1, 0)
    assert totals.funnel == {
        State.QUEUED: 0,
        State.PROCESSING: 1,
        State.SENT: 1,
        State.DELIVERED: 2,
        State.FAILED: 3,
        State.UNCONFIRMED: 0,
    }
    assert (totals.first_received_at, totals.last_received_at) == (1_000_000, 9_000_000)
    groups = await r.failures()
    assert [(g.error_code, g.count) for g in groups] == [("1502", 2), ("1503", 1)]
    assert groups[0].error_message == "Still unreachable" and groups[1].retryable is True
    assert [g.count for g in await r.failures(message_id="msg-ok")] == []
    deadlines = {State.PROCESSING: 1_000_000, State.SENT: 1_000_000}
    stuck = await r.stuck(deadlines, now=9_500_000)
    assert [x.recipient for x in stuck] == ["+2436"]  # sent at 9 s is not late yet
    assert await r.count_stuck(deadlines, now=20_000_000) == 2
    latency = await r.latency("msg-ok")
    assert latency.sent_to_delivered.count == 1 and latency.sent_to_delivered.p50 == 1_000_000
    assert (await r.latency()).sent_to_delivered.count == 1
