"""The benchmark tools measure what they say (a small run; the figures come from `make bench`)."""

from __future__ import annotations

import contextlib
import os

from benchmarks import costs, run
from benchmarks.loadgen import percentile

from smswatch.store.sqlite.files import connect_log


def test_costs_measures_both_stages_and_stores_every_event(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(costs.tempfile, "TemporaryDirectory", lambda: _Keep(tmp_path))
    result = costs.measure(200)
    assert result["events"] == 200
    assert result["adapter_us"] > 0
    assert result["store_us"] > 0
    assert 0 < result["checkpoint_us"] < result["store_us"]
    with contextlib.closing(connect_log(tmp_path / "cost.db")) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 200
        assert db.execute("SELECT count(*) FROM recipients").fetchone()[0] == 200
        assert db.execute("SELECT count(*) FROM timeline").fetchone()[0] == 200


def test_cpu_seconds_reads_this_process() -> None:
    me = run.Running("http://127.0.0.1:1/", os.getpid())
    before = me.cpu_seconds()
    start = os.times()
    while (os.times().user + os.times().system) - (start.user + start.system) < 0.1:
        sum(i * i for i in range(10_000))  # burn CPU until the kernel has counted 0.1 s
    used = me.cpu_seconds() - before
    # /proc/PID/stat and times(2) read the same counters, in clock ticks (10 ms).
    assert used >= 0.08, used
    now = os.times()
    assert abs(me.cpu_seconds() - (now.user + now.system)) < 0.05


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.99) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(100)], 0.99) == 99.0


class _Keep:
    """A TemporaryDirectory stand-in that keeps the database for the test to read."""

    def __init__(self, path) -> None:
        self.path = path

    def __enter__(self) -> str:
        return str(self.path)

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_infobip_bench_posts_batches_the_gateway_reads_whole(tmp_path) -> None:
    """Each line of the bench's requests is a post Infobip could make: 100 final reports, each a
    message of its own, every one read (none quarantined), the tenth failed."""
    from smswatch.core.domain import State
    from smswatch.gateways.infobip.webhook import Infobip

    path = tmp_path / "batches.jsonl"
    run.infobip_requests(path, 2)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    batches = [Infobip().parse(line.encode(), 1_800_000_000_000_000) for line in lines]
    assert not any(batch.refused for batch in batches)  # type: ignore[attr-defined]
    events = [ev for batch in batches for ev in batch]
    assert len(events) == 2 * run.INFOBIP_BATCH
    assert len({ev.message_id for ev in events}) == len(events)
    assert [ev.state for ev in events[:10]] == [State.DELIVERED] * 9 + [State.FAILED]
