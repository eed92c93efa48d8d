"""`smswatch export` then `smswatch import`: a copy of a database, or a move from SQLite to
PostgreSQL, that shows the same figures as the original.

The original is made as in production: webhooks over real HTTP, some dropped by the gateway and
found again by polling the sandbox's status APIs (polled events, which no listener takes), the
edge cases (unknown event types, conflicts, odd text) posted twice (duplicates), messages
tagged by sender metadata, by the run's --campaign and by `campaign tag`, and send bursts. The
commands run as child processes, as a user runs them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from smswatch.devtools.replay import load
from smswatch.devtools.sandbox import SandboxAPI
from smswatch.devtools.simulate import Sender, SimConfig
from smswatch.exports.records import message_record
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store import open_reader
from tests.conftest import running
from tests.helpers import run
from tests.test_reconcile import (
    LISOLOO_KEY,
    YEBOLINK_KEY,
    both_keys,
    check,
    plans,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

EDGE_CASES = Path(__file__).parent.parent / "sample_data" / "edge_cases.jsonl"


async def send(engine: Engine, deliveries: list[Any]) -> None:
    result = await Sender(SimConfig(url=engine.listener.base_url, concurrency=16)).run(deliveries)
    assert result.ok or result.dropped  # the dropped ones were never sent


async def original(db: Path) -> None:
    """A database with all the kinds of event and campaign the store holds."""
    planned = plans(0.05)
    truth = [t for p in planned for t in p.truth]
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    for p in planned:
        sandbox.add_plan(p)
    url = await sandbox.start()
    config = EngineConfig(
        db_path=db,
        port=0,
        hub_tick=0.05,
        gateway_api=both_keys(url),
        reconcile_quiet={"lisoloo": 3, "yebolink": 3},
        reconcile_every=0.5,
    )
    try:
        async with running(Engine(config)) as engine:
            for p in planned:
                await send(engine, p.deliveries)

            async def reconciled() -> bool:
                await asyncio.wrap_future(engine.writer.settle())
                async with await open_reader(db, current=True) as reader:
                    return await check(reader, truth, strict=False)

            await until(reconciled)
    finally:
        await sandbox.stop()
    # A second run under --campaign: the edge cases, each posted twice, and a conflict (the
    # recipient that failed reported delivered too).
    conflict = {
        "provider": "lisoloo",
        "payload": {
            "event_id": "00000000-0000-4000-8000-0000000000c0",
            "event_type": "sms.delivered",
            "timestamp": "2026-11-18T11:06:41.500Z",
            "message_id": "e0e0e0e0e0e0e0e0e0e0e0e0",
            "data": {"recipient_phone": "+243810000001"},
        },
    }
    with EDGE_CASES.open(encoding="utf-8") as lines:
        edge = load([*lines, json.dumps(conflict)], speed=0)
    async with running(Engine(EngineConfig(db_path=db, port=0, campaign="launch"))) as engine:
        await send(engine, edge)
        await send(engine, edge)


def figures(db: Path | str) -> dict[str, Any]:
    """What a user reads: `stats --json`, `campaign list --json`, `inspect --json` of every
    message (the records `inspect --json` prints, read in this process: one child process per
    message would take minutes)."""
    stats = json.loads(run("stats", "--db", str(db), "--json").stdout)
    campaigns = json.loads(run("campaign", "list", "--db", str(db), "--json").stdout)

    async def messages() -> dict[str, Any]:
        async with await open_reader(db, current=True) as reader:
            out = {}
            for m in await reader.recent_messages(limit=100_000):
                msg = await reader.message(m.message_id)
                recipients = await reader.recipients(m.message_id)
                events = await reader.message_events(m.message_id)
                out[m.message_id] = message_record(msg, recipients, events)
            return out

    return {"stats": stats, "campaigns": campaigns, "messages": asyncio.run(messages())}


def export(db: Path | str, out: Path) -> str:
    run("export", "--db", str(db), "--out", str(out))
    return out.read_text(encoding="utf-8")


def test_export_then_import_gives_the_same_database(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "source.db"
    asyncio.run(original(source))
    tagged = json.loads(run("campaign", "list", "--db", str(source), "--json").stdout)
    burst = next(c for c in tagged if c["kind"] == "burst")
    shown = json.loads(run("campaign", "show", burst["name"], "--db", str(source), "--json").stdout)
    run("campaign", "tag", "by-hand", shown["messages"][0], "--db", str(source))
    before = figures(source)
    exported = export(source, tmp_path / "events.jsonl")

    # The original has what the round trip must keep.
    records = [json.loads(line) for line in exported.splitlines()]
    types = {r["event_type"] for r in records}
    assert {"poll.status", "poll.message"} <= types
    assert any(r["state"] == "unknown" for r in records)
    assert before["stats"]["conflicts"] > 0
    sources = {c["source"] for c in before["campaigns"]}
    assert {"metadata", "run", "tag"} <= sources and any(
        c["kind"] == "burst" for c in before["campaigns"]
    )
    # Polled events in the timelines inspect shows, of recipients and of messages.
    timelines = [
        [e["event_type"] for e in part]
        for m in before["messages"].values()
        for part in (m["message_events"], *(r["events"] for r in m["recipients"]))
    ]
    assert any("poll.message" in t for t in timelines) and any(
        "poll.status" in t for t in timelines
    )

    for target in (tmp_path / "copy.db", pg_url):
        done = run("import", str(tmp_path / "events.jsonl"), "--db", str(target))
        assert f"imported {len(records):,} events" in done.stderr, done.stderr
        assert figures(target) == before, target
        # A copy of the copy is the same file: every field of every event came through.
        assert export(target, tmp_path / "again.jsonl") == exported
        again = run("import", str(tmp_path / "events.jsonl"), "--db", str(target))
        assert "imported 0 events" in again.stderr and "there already" in again.stderr
        assert figures(target) == before


def test_replay_of_an_export_leaves_the_polled_events_out(tmp_path: Path) -> None:
    """Replay posts webhooks; the events smswatch made by polling are not webhooks, so it leaves
    them out and says so, instead of having them refused one by one."""
    lines = [
        json.dumps(line)
        for line in (
            {
                "event_id": "poll:m1:1",
                "provider": "lisoloo",
                "event_type": "poll.status",
                "received_at": "2026-12-07T02:57:30Z",
                "payload": {"message_id": "m1", "status": "delivered"},
            },
            json.loads(EDGE_CASES.read_text(encoding="utf-8").splitlines()[0]),
        )
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with path.open(encoding="utf-8") as f:
        assert len(load(f)) == 1
    done = run(
        "replay", str(path), "--url", "http://127.0.0.1:9", "--max-attempts", "1", "-q", check=False
    )
    assert "1 polled event left out" in done.stderr, done.stderr
    assert "smswatch import" in done.stderr


def test_import_says_which_line_is_not_an_export(tmp_path: Path) -> None:
    bare = EDGE_CASES.read_text(encoding="utf-8").splitlines()[0]  # a replay line, no event
    path = tmp_path / "bare.jsonl"
    path.write_text(bare + "\n", encoding="utf-8")
    done = run("import", str(path), "--db", str(tmp_path / "x.db"), check=False)
    assert done.returncode == 2
    assert "line 1" in done.stderr and "replay" in done.stderr, done.stderr
    assert "before it imported" not in done.stderr  # nothing was
    assert not list(tmp_path.glob("x.db*"))  # and no database made for nothing
