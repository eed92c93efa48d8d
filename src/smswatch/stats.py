"""`smswatch stats`: the numbers, gathered from the store, and their JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smswatch.catalogue import explain
from smswatch.domain import FUNNEL, State
from smswatch.store import open_reader
from smswatch.store.reader import FailureGroup, Latency, Percentiles, Totals
from smswatch.timefmt import iso


async def gather(db: Path | str) -> tuple[Totals, list[FailureGroup], Latency, int]:
    async with await open_reader(db, current=True) as reader:
        return (
            await reader.totals(),
            await reader.failures(limit=50),
            await reader.latency(),
            await reader.quarantine_count(),
        )


def _percentiles(p: Percentiles) -> dict[str, Any]:
    def ms(us: int | None) -> float | None:
        return None if us is None else round(us / 1000, 1)

    return {"count": p.count, "p50_ms": ms(p.p50), "p95_ms": ms(p.p95)}


def stats_record(
    totals: Totals, failures: list[FailureGroup], latency: Latency, quarantined: int
) -> dict[str, Any]:
    done = totals.funnel[State.DELIVERED] + totals.funnel[State.FAILED]
    return {
        "events": totals.events,
        "events_by_provider": totals.by_provider,
        "messages": totals.messages,
        "in_flight": totals.in_flight,
        "recipients": {s.value: totals.funnel[s] for s in FUNNEL},
        "delivery_rate": round(totals.funnel[State.DELIVERED] / done, 4) if done else None,
        "conflicts": totals.conflicts,
        "latency": {
            "queued_to_sent": _percentiles(latency.queued_to_sent),
            "sent_to_delivered": _percentiles(latency.sent_to_delivered),
        },
        "failures": [
            {
                "provider": f.provider,
                "error_code": f.error_code,
                "name": info.name if info else None,
                "count": f.count,
                "retry": info.retry if info else None,
                "latest_message": f.error_message,
            }
            for f in failures
            for info in [explain(f.provider, f.error_code, f.retryable)]
        ],
        "quarantined": quarantined,
        "first_received_at": iso(totals.first_received_at),
        "last_received_at": iso(totals.last_received_at),
    }
