"""sample_data/ replays cleanly and folds to its truth; the edge cases are stored and shown
safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smswatch.core.domain import UNATTRIBUTED, State
from smswatch.devtools.replay import load
from smswatch.devtools.simulate import Sender, SimConfig
from tests.helpers import run

# The recorded traffic folds to the same truth in either store.
pytestmark = pytest.mark.both_stores

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


async def replay(engine, name: str) -> None:
    deliveries = load((SAMPLES / name).read_text(encoding="utf-8").splitlines(), speed=0)
    result = await Sender(SimConfig(url=engine.listener.base_url, rate=10_000, concurrency=16)).run(
        deliveries
    )
    assert (result.rejected, result.dropped, result.acked) == (0, 0, len(deliveries)), (
        result.first_errors
    )


@pytest.mark.parametrize("name", ["lisoloo_campaign", "yebolink_bulk"])
async def test_campaign_samples_fold_to_their_truth(engine, reader, name: str) -> None:
    await replay(engine, f"{name}.jsonl")
    r = await reader()
    truth = [json.loads(x) for x in (SAMPLES / f"{name}.truth.jsonl").read_text().splitlines()]
    assert len(truth) >= 120
    for t in truth:
        rec = await r.recipient(t["message_id"], t["recipient"])
        assert rec is not None, t
        assert (rec.state.value, rec.error_code, rec.carrier) == (
            t["state"],
            t["error_code"],
            t["carrier"],
        )
    raw_lines = (SAMPLES / f"{name}.jsonl").read_text().splitlines()
    unique = {json.dumps(json.loads(x)["payload"], sort_keys=True) for x in raw_lines}
    assert len(unique) < len(raw_lines)  # the sample does carry duplicate retries
    assert len([e async for e in r.iter_events()]) == len(unique)


async def test_edge_cases_are_all_stored(engine, reader) -> None:
    await replay(engine, "edge_cases.jsonl")
    r = await reader()
    events = [e async for e in r.iter_events()]
    assert len(events) == 14
    assert {e.event_type for e in events if e.state == State.UNKNOWN} == {
        "sms.undelivered",
        "message.read",
    }
    [estimated] = [e for e in events if e.time_estimated]
    assert estimated.recipient == "+243810000003"
    assert all(e.message_id != UNATTRIBUTED for e in events)
    rec = await r.recipient("e0e0e0e0e0e0e0e0e0e0e0e0", "+243810000001")
    assert rec.state == State.FAILED
    assert rec.error_code == "1599"
    assert "[bold red]x[/]" in rec.error_message  # stored exactly as received
    long = await r.recipient("e0e0e0e0e0e0e0e0e0e0e0e0", "+243810000004\u202eevil")
    assert long is not None and len(long.carrier) == 512  # normalized columns are bounded


async def test_inspect_shows_hostile_strings_literally_and_inert(engine, db_path) -> None:
    await replay(engine, "edge_cases.jsonl")
    await engine.stop()
    out = run("inspect", "e0e0e0e0", "--db", str(db_path)).stdout
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[bold red]x[/]" in out  # markup shown as text, not interpreted
    assert "␛]0;pwned" in out  # the escape is shown as a visible symbol, inert
    assert "unknown Carrier / SMS processor code" in out
    as_json = json.loads(run("inspect", "e0e0e0e0", "--db", str(db_path), "--json").stdout)
    assert as_json["counts"]["failed"] == 1
    # JSON output keeps the exact strings (escaped by JSON itself).
    carriers = {r["recipient"]: r["carrier"] for r in as_json["recipients"]}
    assert carriers["+243810000001"] == "vodacom_drc"
