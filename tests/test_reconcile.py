"""Reconciliation against the sandbox gateway over real HTTP: the webhooks the gateways gave up
on (--drop-rate) are found by polling their status APIs, within their rate limits, whatever
429s come; a poll never overrides a pushed final state; the keys leak nowhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from smswatch.core.domain import State
from smswatch.devtools.sandbox import SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign
from smswatch.exports.records import write_jsonl
from smswatch.exports.stats import gather, stats_record
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.reconcile.config import ApiConfig, ApiKey
from smswatch.store import open_reader
from tests.conftest import running
from tests.helpers import run

pytestmark = [pytest.mark.both_stores, pytest.mark.timeout(240)]

LISOLOO_KEY = "sk_test_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
YEBOLINK_KEY = "ybk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def campaign(provider: str, messages: int, recipients: int, seed: int, drop_rate: float) -> Any:
    """A campaign sent fast (40x the gateway's pace), a fifth of it failing, no duplicates."""
    config = SimConfig(
        provider=provider,
        messages=messages,
        recipients=recipients,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.2,
        duplicate_rate=0.0,
    )
    return plan_campaign(config)


def plans(drop_rate: float) -> list[Any]:
    return [campaign("lisoloo", 6, 40, 11, drop_rate), campaign("yebolink", 1, 120, 12, drop_rate)]


def both_keys(url: str) -> ApiConfig:
    """The sandbox's keys for both gateways, at its URL."""
    return ApiConfig(
        lisoloo_key=ApiKey(LISOLOO_KEY, "--lisoloo-app-key"),
        lisoloo_url=url,
        yebolink_key=ApiKey(YEBOLINK_KEY, "--yebolink-api-key"),
        yebolink_url=url,
    )


async def until(check: Any, within: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reconciled in time"
        await asyncio.sleep(0.25)


async def reconciled(make_engine: Any, db: Path | str, limits: SandboxLimits) -> dict[str, Any]:
    planned = plans(0.05)
    truth = [t for p in planned for t in p.truth]
    assert any(t.dropped for t in truth if t.provider == "lisoloo")
    assert any(t.dropped for t in truth if t.provider == "yebolink")
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY), limits=limits)
    for p in planned:
        sandbox.add_plan(p)
    url = await sandbox.start()
    api = both_keys(url)
    engine = make_engine(
        gateway_api=api, reconcile_quiet={"lisoloo": 3, "yebolink": 3}, reconcile_every=0.5
    )
    try:
        async with running(engine):
            for p in planned:
                config = SimConfig(url=engine.listener.base_url, concurrency=16)
                result = await Sender(config).run(p.deliveries)
                assert result.ok or result.dropped  # the dropped ones were never sent
            sent = engine.config.clock()

            async def done() -> bool:
                await asyncio.wrap_future(engine.writer.settle())
                async with await open_reader(db, current=True) as reader:
                    return await check(reader, truth, strict=False)

            await until(done)
            async with await open_reader(db, current=True) as reader:
                await check(reader, truth, strict=True)
            reconciler = engine.reconciler
            assert reconciler is not None
            recovered = sum(1 for t in truth if t.provider == "yebolink" and t.dropped)
            missing = sum(1 for t in truth if t.provider == "lisoloo" and t.dropped)

            async def reported() -> bool:
                # The alert's figures follow at the reconciler's next look at the store.
                s = reconciler.status
                return (s.recovered, s.missing) == (recovered, missing)

            await until(reported, 20)
            status = reconciler.status
            assert status.polls > 0
            # Polls are not webhooks: the silence alarm and the rate still see the webhooks'
            # last arrival, or polling would hide the very outage it was sent for.
            assert engine.hub.last_request_at is not None
            assert engine.hub.last_request_at <= sent
            assert engine.hub.last_event_at <= sent
    finally:
        stats = sandbox.stats()
        await sandbox.stop()
    return {"stats": stats, "status": status, "truth": truth}


async def check(reader: Any, truth: list[Any], strict: bool) -> bool:
    """YeboLink: every dropped final state recovered and marked polled; Lisoloo: every message
    shows the gateway's counts, and its missing count is exactly the dropped finals."""
    for t in truth:
        if t.provider != "yebolink":
            continue
        r = await reader.recipient(t.message_id, t.recipient)
        ok = r is not None and r.state == State(t.state) and r.polled == t.dropped
        if not ok:
            assert not strict, (t, r)
            return False
    dropped = Counter(t.message_id for t in truth if t.provider == "lisoloo" and t.dropped)
    finals = Counter((t.message_id, t.state) for t in truth if t.provider == "lisoloo")
    for mid in {t.message_id for t in truth if t.provider == "lisoloo"}:
        m = await reader.message(mid)
        if m is not None and not dropped[mid] and m.finished:
            # Every final webhook came: nothing to ask the gateway (missing: none).
            ok = m.missing in (None, 0)
        else:
            ok = (
                m is not None
                and m.gateway_delivered == finals[(mid, "delivered")]
                and m.gateway_failed == finals[(mid, "failed")]
                and m.gateway_pending == 0
                and m.missing == dropped[mid]
            )
        if not ok:
            assert not strict, (mid, m, dropped[mid])
            return False
    return True


async def test_dropped_webhooks_are_found_within_the_rate_limits(
    make_engine: Any, db_path: Path | str
) -> None:
    limits = SandboxLimits(lisoloo_per_window=120, yebolink_per_window=60)
    out = await reconciled(make_engine, db_path, limits)
    for gateway, limit in (("lisoloo", 120), ("yebolink", 60)):
        assert 0 < out["stats"][gateway]["max_in_window"] <= limit, out["stats"][gateway]
        assert out["stats"][gateway]["unauthorized"] == 0
    status = out["status"]
    dropped_yebolink = sum(1 for t in out["truth"] if t.provider == "yebolink" and t.dropped)
    assert status.recovered == dropped_yebolink
    assert status.missing == sum(1 for t in out["truth"] if t.provider == "lisoloo" and t.dropped)


async def test_a_burst_of_429s_is_survived(make_engine: Any, db_path: Path | str) -> None:
    limits = SandboxLimits(burst_429=6, burst_after=2, burst_retry_after=1)
    out = await reconciled(make_engine, db_path, limits)
    assert out["stats"]["lisoloo"]["burst"] + out["stats"]["yebolink"]["burst"] >= 6


async def test_the_keys_appear_in_no_log_export_or_feed_frame(
    make_engine: Any, db_path: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    """YeboLink's key is refused (401): its error travels to the status, the feed and the log;
    Lisoloo's is accepted and polls go through. Neither key shows anywhere."""
    caplog.set_level(logging.DEBUG)
    planned = plans(0.05)
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, "ybk_another_key_that_is_the_right_one"))
    for p in planned:
        sandbox.add_plan(p)
    url = await sandbox.start()
    api = both_keys(url)
    engine = make_engine(
        gateway_api=api,
        reconcile_quiet={"lisoloo": 3, "yebolink": 3},
        reconcile_every=0.5,
        feed_port=0,
        feed_token="feed-token-for-the-test",
    )
    frames: list[str] = []
    try:
        async with running(engine):
            assert engine.feed is not None and engine.reconciler is not None
            async with connect(
                engine.feed.url,
                additional_headers={"Authorization": "Bearer feed-token-for-the-test"},
            ) as ws:

                async def read() -> None:
                    async for frame in ws:
                        frames.append(str(frame))

                reading = asyncio.create_task(read())
                for p in planned:
                    await Sender(SimConfig(url=engine.listener.base_url)).run(p.deliveries)
                reconciler = engine.reconciler

                async def seen() -> bool:
                    s = reconciler.status
                    return (
                        bool(s.last_error)
                        and s.missing > 0
                        and any("reconciling" in f and "gateway API" not in f for f in frames)
                    )

                await until(seen)
                mid = next(t.message_id for t in planned[0].truth)
                await ws.send(
                    json.dumps(
                        {
                            "type": "query",
                            "id": 1,
                            "method": "message",
                            "params": {"message_id": mid},
                        }
                    )
                )

                async def answered() -> bool:
                    replies = (json.loads(f) for f in frames)
                    return any(r.get("type") == "reply" and r.get("id") == 1 for r in replies)

                # The message's answer is in the frames checked for the keys below.
                await until(answered, within=30)
                reading.cancel()
            assert "401" in (engine.reconciler.status.last_error or "")
            out = io.StringIO()
            async with await open_reader(db_path, current=True) as reader:
                await write_jsonl(reader.iter_events(), out)
                stats = json.dumps(stats_record(*await gather(db_path)))
    finally:
        await sandbox.stop()
    blob = "\n".join([*frames, caplog.text, out.getvalue(), stats, repr(engine.config)])
    assert "poll.status" in out.getvalue()  # the polls were stored and exported
    for key in (LISOLOO_KEY, YEBOLINK_KEY):
        assert key not in blob
        assert key[-16:] not in blob


async def test_an_id_no_url_can_carry_does_not_stop_the_polling() -> None:
    from smswatch.reconcile.clients import build
    from smswatch.reconcile.reconciler import Reconciler

    api = ApiConfig(
        lisoloo_key=ApiKey(LISOLOO_KEY, "--lisoloo-app-key"), lisoloo_url="http://127.0.0.1:9"
    )
    reconciler = Reconciler(build(api), lambda events: None, lambda: None, lambda: 0)
    result = await reconciler.poll("lisoloo", "..")
    assert result.error and result.final  # answered, not raised; never asked again
    assert LISOLOO_KEY not in result.error
    await reconciler.stop()


async def test_a_sweep_looks_for_messages_first_seen_close_together() -> None:
    """The list's window is the batch's span: messages first seen an hour apart are swept
    apart (one day-wide window would cost more than asking each), the biggest group first."""
    from smswatch.reconcile.clients import build
    from smswatch.reconcile.reconciler import SWEEP_MIN, SWEEP_PAUSE_US, Reconciler

    now = 1_800_000_000_000_000
    api = ApiConfig(yebolink_key=ApiKey(YEBOLINK_KEY), yebolink_url="http://127.0.0.1:9")
    reconciler = Reconciler(build(api), lambda events: None, lambda: None, lambda: now)
    hour, second = 3_600_000_000, 1_000_000
    found = [(f"a{i}", 0, now - 3 * hour + i * second) for i in range(SWEEP_MIN + 5)]
    found += [(f"b{i}", 0, now - hour + i * second) for i in range(SWEEP_MIN + 8)]
    found += [(f"c{i}", 0, now - 10 * hour + i * hour) for i in range(5)]  # far apart
    reconciler.remember_first("yebolink", found)
    waiting = [m for m, _, _ in found]
    assert sorted(reconciler.sweepable("yebolink", waiting)) == sorted(
        f"b{i}" for i in range(SWEEP_MIN + 8)
    )
    assert reconciler.sweepable("yebolink", waiting[: SWEEP_MIN - 1]) == []  # too few to pay
    reconciler._sweeps_paused["yebolink"] = now + SWEEP_PAUSE_US  # after a failed call
    assert reconciler.sweepable("yebolink", waiting) == []
    await reconciler.stop()


def bulk_send(recipients: int, drop_rate: float) -> Any:
    """A YeboLink bulk send: one message id per recipient."""
    return campaign("yebolink", 1, recipients, 13, drop_rate)


@pytest.mark.parametrize("recipients,drop_rate", [(600, 0.05), (2000, 0.008)])
async def test_a_backlog_of_yebolink_messages_is_read_from_its_list(
    make_engine: Any, db_path: Path | str, recipients: int, drop_rate: float
) -> None:
    """Restarted after an outage, smswatch finds a bulk send's lost YeboLink reports waiting all
    at once. Its list, 100 messages a call, finds them in fewer calls than asking about each;
    where the list is long for the few lost (a low drop rate), it asks about each instead,
    after one page."""
    from smswatch.reconcile.reconciler import SWEEP_MIN

    plan = bulk_send(recipients, drop_rate)
    dropped = [t for t in plan.truth if t.dropped]
    assert len(dropped) >= SWEEP_MIN
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    sandbox.add_plan(plan)
    url = await sandbox.start()
    try:
        async with running(make_engine()) as engine:  # no key yet: nothing is polled
            result = await Sender(SimConfig(url=engine.listener.base_url, concurrency=16)).run(
                plan.deliveries
            )
            assert result.ok or result.dropped
        await asyncio.sleep(1.2)  # down for longer than the quiet time: all waiting at the restart
        api = ApiConfig(yebolink_key=ApiKey(YEBOLINK_KEY, "--yebolink-api-key"), yebolink_url=url)
        engine = make_engine(gateway_api=api, reconcile_quiet={"yebolink": 1}, reconcile_every=0.5)
        async with running(engine):

            async def done() -> bool:
                await asyncio.wrap_future(engine.writer.settle())
                async with await open_reader(db_path, current=True) as reader:
                    return await check(reader, plan.truth, strict=False)

            await until(done)
            async with await open_reader(db_path, current=True) as reader:
                await check(reader, plan.truth, strict=True)
            assert engine.reconciler is not None
            status = engine.reconciler.status
    finally:
        stats = sandbox.stats()
        await sandbox.stop()
    assert status.swept >= 1
    calls = stats["yebolink"]["calls"]
    if drop_rate > 0.01:  # every lost report found, in fewer calls than one per message
        assert 0 < calls < len(dropped) / 2, (stats["yebolink"], len(dropped))
    else:  # the list's first page said it was too long: one call more than asking each
        assert calls <= len(dropped) + 1, (stats["yebolink"], len(dropped))


async def test_the_reconcile_command_stores_and_lists_what_the_webhooks_never_brought(
    make_engine: Any, db_path: Path | str, store_kind: str
) -> None:
    """`smswatch reconcile --json` on a database no smswatch runs on: Lisoloo's missing counts
    exactly, YeboLink's lost final states filled in (read from its list), within the limits."""
    planned = [plans(0.05)[0], bulk_send(600, 0.05)]
    truth = [t for p in planned for t in p.truth]
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    for p in planned:
        sandbox.add_plan(p)
    url = sandbox.start_background()  # on a thread: the command runs as a child process
    keys = ["--lisoloo-app-key", LISOLOO_KEY, "--lisoloo-api-url", url]
    keys += ["--yebolink-api-key", YEBOLINK_KEY, "--yebolink-api-url", url]
    command = ["reconcile", "--db", str(db_path), *keys, "--json"]
    try:
        async with running(make_engine()) as engine:
            for p in planned:
                result = await Sender(SimConfig(url=engine.listener.base_url, concurrency=16)).run(
                    p.deliveries
                )
                assert result.ok or result.dropped
            # While smswatch writes a SQLite file, the answers are shown, not stored.
            await asyncio.to_thread(engine.writer.settle().result)
            shown = await asyncio.to_thread(run, *command)
        calls = sandbox.stats()["yebolink"]["calls"]
        done = await asyncio.to_thread(run, *command)
    finally:
        stats = sandbox.stats()
        sandbox.stop_background()
    # On SQLite the second run stores what the first could only show; on PostgreSQL the first
    # stored it, and the second finds nothing left to ask about.
    checked = (shown, done) if store_kind == "sqlite" else (shown,)
    if store_kind != "sqlite":
        assert json.loads(done.stdout) == []
    for out in checked:
        assert LISOLOO_KEY not in out.stdout + out.stderr
        assert YEBOLINK_KEY not in out.stdout + out.stderr
        rows = {r["message_id"]: r for r in json.loads(out.stdout)}
        lost = Counter(t.message_id for t in truth if t.dropped)
        for mid in {t.message_id for t in truth if t.provider == "lisoloo"}:
            if lost[mid]:
                assert rows[mid]["missing"] == lost[mid], rows[mid]
                assert rows[mid]["gateway"]["pending"] == 0
        yebolink_lost = [t for t in truth if t.provider == "yebolink" and t.dropped]
        recovered = sum(rows[t.message_id]["recovered_by_polling"] for t in yebolink_lost)
        assert recovered == len(yebolink_lost)
        assert not any(r["error"] for r in rows.values())
    stored_first = any(r["stored"] for r in json.loads(shown.stdout))
    assert stored_first == (store_kind == "postgresql")  # PostgreSQL takes several writers
    assert calls < len(yebolink_lost) / 2, stats["yebolink"]
    assert stats["lisoloo"]["max_in_window"] <= 120
    async with await open_reader(db_path, current=True) as reader:
        await check(reader, truth, strict=True)

    # Polls that fail must not read as "nothing missing": the exit status says so.
    broken = ["--lisoloo-app-key", LISOLOO_KEY, "--lisoloo-api-url", "http://127.0.0.1:9"]
    lisoloo = next(t.message_id for t in truth if t.provider == "lisoloo")
    failed = await asyncio.to_thread(
        run, "reconcile", "--db", str(db_path), *broken, "--message", lisoloo, "--json", check=False
    )
    assert failed.returncode == 1, failed.stderr
    assert all(r["error"] for r in json.loads(failed.stdout))


async def test_instances_sharing_a_database_poll_one_at_a_time_per_key(pg_url: str) -> None:
    """Instances on one PostgreSQL database poll each key's gateway one at a time (its limit
    is the key's): one polls Lisoloo, the other stands by for it while still showing the
    missing counts; YeboLink is polled by the only instance with its key; when the one
    polling Lisoloo stops, the other takes over."""
    from smswatch.live.engine import Engine, EngineConfig

    first = plans(0.05)
    later = campaign("lisoloo", 3, 40, 21, 0.1)
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    for p in [*first, later]:
        sandbox.add_plan(p)
    url = await sandbox.start()
    both = both_keys(url)
    config = EngineConfig(
        db_path=pg_url,
        port=0,
        hub_tick=0.05,
        gateway_api=ApiConfig(lisoloo_key=both.lisoloo_key, lisoloo_url=url),
        reconcile_quiet={"lisoloo": 3, "yebolink": 3},
        reconcile_every=0.5,
    )
    a = Engine(config)  # Lisoloo's key only
    b = Engine(replace(config, gateway_api=both))
    running_ = []

    async def send(plan: Any, engine: Any) -> None:
        config = SimConfig(url=engine.listener.base_url, concurrency=16)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok or result.dropped

    async def reconciled(truth: list[Any]) -> None:
        async def done() -> bool:
            async with await open_reader(pg_url) as reader:
                return await check(reader, truth, strict=False)

        await until(done)

    try:
        await a.start()
        running_.append(a)
        assert a.reconciler is not None

        async def a_leads() -> bool:
            return a.reconciler.leading["lisoloo"]  # type: ignore[union-attr]

        await until(a_leads, 10)
        await b.start()
        running_.append(b)
        assert b.reconciler is not None

        async def b_looked() -> bool:
            return b.reconciler.status.standby == ("lisoloo",)  # type: ignore[union-attr]

        await until(b_looked, 10)
        assert b.reconciler.leading == {"lisoloo": False, "yebolink": True}
        for i, plan in enumerate(first):  # the webhooks reach both instances
            await send(plan, (a, b)[i % 2])
        truth = [t for p in first for t in p.truth]
        await reconciled(truth)
        missing = sum(1 for t in truth if t.provider == "lisoloo" and t.dropped)

        async def both_show_it() -> bool:
            return all(e.reconciler.status.missing == missing for e in (a, b))  # type: ignore[union-attr]

        await until(both_show_it, 20)
        stats = sandbox.stats()
        for gateway, limit in (("lisoloo", 120), ("yebolink", 60)):
            assert 0 < stats[gateway]["max_in_window"] <= limit
        assert stats["lisoloo"]["calls"] == a.reconciler.status.polls  # only A asked Lisoloo

        await a.stop()
        running_.remove(a)

        async def taken_over() -> bool:
            return b.reconciler.leading["lisoloo"]  # type: ignore[union-attr]

        await until(taken_over, 20)
        assert b.reconciler.status.standby == ()
        before = sandbox.stats()["lisoloo"]["calls"]
        await send(later, b)
        await reconciled(later.truth)
        assert sandbox.stats()["lisoloo"]["calls"] > before
    finally:
        await asyncio.gather(*(e.stop() for e in running_))
        await sandbox.stop()


@pytest.mark.sqlite_only  # the "shown, not stored" case is SQLite's (one writer)
async def test_the_reconcile_table_says_what_it_did_in_words_that_agree(
    make_engine: Any, db_path: Path | str
) -> None:
    """Without --json: each figure in its own column (the gateway's, smswatch's, the missing
    webhooks), final states "found by polling" while another smswatch holds the database and
    "filled in by polling" once stored, counts in the singular when they are one, and the
    progress on stderr one line at a time when stderr is not a terminal."""
    planned = [plans(0.05)[0], bulk_send(40, 0.1)]
    truth = [t for p in planned for t in p.truth]
    lost = [t for t in truth if t.provider == "yebolink" and t.dropped]
    assert lost
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    for p in planned:
        sandbox.add_plan(p)
    url = sandbox.start_background()
    keys = ["--lisoloo-app-key", LISOLOO_KEY, "--lisoloo-api-url", url]
    keys += ["--yebolink-api-key", YEBOLINK_KEY, "--yebolink-api-url", url]
    one = lost[0].message_id
    piped = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # uncut: every column
    try:
        async with running(make_engine()) as engine:
            for p in planned:
                config = SimConfig(url=engine.listener.base_url, concurrency=16)
                result = await Sender(config).run(p.deliveries)
                assert result.ok or result.dropped
            await asyncio.to_thread(engine.writer.settle().result)
            shown = await asyncio.to_thread(
                run, "reconcile", "--db", str(db_path), *keys, "--message", one, env=piped
            )
        stored = await asyncio.to_thread(run, "reconcile", "--db", str(db_path), *keys, env=piped)
    finally:
        sandbox.stop_background()
    assert f"{one}: 1 final state found by polling" in shown.stdout, shown.stdout
    assert "Not stored: another smswatch is writing this database" in shown.stdout
    assert "1 message polled: 1 delivery report was never brought by a webhook" in shown.stdout
    assert "(s)" not in shown.stdout + stored.stdout
    assert "filled in by polling" in stored.stdout and "Not stored" not in stored.stdout
    headers = " ".join(stored.stdout.splitlines()[1:4])
    for word in ("gateway", "smswatch", "webhooks", "missing", "delivered", "pending"):
        assert word in headers, stored.stdout
    # Progress: whole lines on a pipe, never carriage returns running together.
    progress = [line for line in stored.stderr.splitlines() if line]
    assert progress and "\r" not in stored.stderr, stored.stderr
    assert all(line.startswith(("polling ", "reading ")) for line in progress), stored.stderr
