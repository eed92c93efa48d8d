"""Long reliability runs (`make soak`): rounds of kill -9 under load.

After each restart, every event that got a 2xx before the kill is in the database exactly once,
and when the campaign is over every recipient ends in the simulator's truth.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from smswatch.store import open_reader
from tests.helpers import Server, acked_ids, free_port, start_simulate

pytestmark = pytest.mark.soak


def stored(db: Path) -> collections.Counter[str]:
    conn = sqlite3.connect(db)
    try:
        return collections.Counter(row[0] for row in conn.execute("SELECT event_id FROM events"))
    finally:
        conn.close()


def test_five_rounds_of_kill_9_under_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    db, acked, truth = tmp_path / "soak.db", tmp_path / "acked.jsonl", tmp_path / "truth.jsonl"
    port = free_port()
    server = Server(db, port).start()
    sim = start_simulate(
        "--url",
        server.url,
        "--provider",
        "mixed",
        "--messages",
        "60",
        "--recipients",
        "40",
        "--speed",
        "15",
        "--rate",
        "600",
        "--seed",
        "2026",
        "--duplicate-rate",
        "0.1",
        "--truth",
        str(truth),
        "--acked",
        str(acked),
        "--max-attempts",
        "60",
        "-q",
    )
    rng = random.Random(11)
    try:
        for round_ in range(5):
            time.sleep(rng.uniform(1.0, 2.5))
            assert sim.poll() is None, f"the campaign ended before round {round_ + 1}"
            server.kill9()
            before = acked_ids(acked)
            time.sleep(rng.uniform(0.2, 1.0))  # the gateway keeps retrying a dead port
            server = Server(db, port).start()
            counts = stored(db)
            missing = before - set(counts)
            assert not missing, f"round {round_ + 1}: {len(missing)} acknowledged events lost"
            assert max(counts.values()) == 1
        _, err = sim.communicate(timeout=300)
        assert sim.returncode == 0, err
    finally:
        server.stop()
        if sim.poll() is None:
            sim.kill()
    counts = stored(db)
    assert acked_ids(acked) <= set(counts) and max(counts.values()) == 1
    # The folded state as every tool reads it (the state file plus the log after its checkpoint).
    asyncio.run(matches_truth(db, [json.loads(x) for x in truth.read_text().splitlines()]))


async def matches_truth(db: Path, truth: list[dict[str, str]]) -> None:
    async with await open_reader(db, current=True) as reader:
        for t in truth:
            rec = await reader.recipient(t["message_id"], t["recipient"])
            assert rec is not None and rec.state is not None
            assert (rec.state.value, rec.error_code) == (t["state"], t["error_code"])
