"""The issue's acceptance runs, through the real command line and real processes."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import pytest

from smswatch.devtools.simulate import SimConfig, plan_campaign
from tests.helpers import Server, acked_ids, export_records, free_port, run, start_simulate

pytestmark = pytest.mark.slow


def test_simulated_campaign_matches_truth_and_export_has_each_event_once(tmp_path: Path) -> None:
    db, truth = tmp_path / "c.db", tmp_path / "truth.jsonl"
    server = Server(db, free_port()).start()
    try:
        sim = run(
            "simulate",
            "--url",
            server.url,
            "--messages",
            "100",
            "--recipients",
            "50",
            "--duplicate-rate",
            "0.1",
            "--truth",
            str(truth),
            "--seed",
            "42",
            "--speed",
            "50",
            "--rate",
            "5000",
            "--concurrency",
            "32",
            "-q",
        )
        assert "0 rejected, 0 given up" in sim.stderr
    finally:
        log = server.stop()
    assert "serving webhooks on" in log

    expected = collections.defaultdict(dict)
    for line in truth.read_text().splitlines():
        t = json.loads(line)
        expected[t["message_id"]][t["recipient"]] = t
    assert sum(len(v) for v in expected.values()) == 5000
    mismatches = []
    for message_id, recipients in list(expected.items())[::7]:  # inspect is a process per message
        got = json.loads(run("inspect", message_id, "--db", str(db), "--json").stdout)
        assert got["total_recipients"] == 50
        assert sum(got["counts"].values()) == 50
        by_phone = {r["recipient"]: r for r in got["recipients"]}
        assert set(by_phone) == set(recipients)
        for phone, t in recipients.items():
            g = by_phone[phone]
            if (g["state"], g["error_code"], g["carrier"]) != (
                t["state"],
                t["error_code"],
                t["carrier"],
            ):
                mismatches.append((message_id, phone, t, g))
    assert mismatches == []

    # Every recipient, not just the inspected ones, through stats' totals.
    stats = json.loads(run("stats", "--db", str(db), "--json").stdout)
    states = collections.Counter(t["state"] for rs in expected.values() for t in rs.values())
    assert stats["recipients"]["delivered"] == states["delivered"]
    assert stats["recipients"]["failed"] == states["failed"]
    assert stats["in_flight"] == 0

    records = export_records(db)
    planned = plan_campaign(
        SimConfig(messages=100, recipients=50, duplicate_rate=0.1, seed=42, speed=50)
    )
    assert len(records) == planned.events
    assert len({r["event_id"] for r in records}) == len(records)


def test_kill_9_mid_campaign_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db, acked = tmp_path / "k.db", tmp_path / "acked.jsonl"
    port = free_port()
    server = Server(db, port).start()
    sim = start_simulate(
        "--url",
        server.url,
        "--messages",
        "40",
        "--recipients",
        "50",
        "--speed",
        "20",
        "--rate",
        "1500",
        "--seed",
        "9",
        "--acked",
        str(acked),
        "--max-attempts",
        "30",
        "-q",
    )
    try:
        # Until the campaign is under way: some events acknowledged, the simulator still going.
        deadline = time.monotonic() + 60
        while not acked.exists() or acked.read_text().count("\n") < 20:  # whole lines only
            assert time.monotonic() < deadline, "the campaign had not started"
            time.sleep(0.05)
        assert sim.poll() is None, "the campaign finished before the kill"
        server.kill9()
        acked_before = acked_ids(acked)
        assert acked_before, "the campaign had not started"
        time.sleep(1.0)  # the simulator keeps retrying against a dead port
        server = Server(db, port).start()
        _, err = sim.communicate(timeout=180)
        assert sim.returncode == 0, err
        assert " 0 retried" not in err  # it did hit the dead server and retried
    finally:
        server.stop()
        if sim.poll() is None:
            sim.kill()
    stored = {r["event_id"] for r in export_records(db)}
    acked_all = acked_ids(acked)
    assert acked_before <= stored
    assert acked_all <= stored
