"""`smswatch stats`: the numbers, gathered from the store, and their JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smswatch.core.domain import FUNNEL, State
from smswatch.core.figures import FailureGroup, Latency, Percentiles, Totals
from smswatch.gateways.catalogue import explain
from smswatch.store import open_reader
from smswatch.timefmt import iso


class NoCampaign(Exception):
    pass


async def gather(
    db: Path | str, campaign: str | None = None
) -> tuple[Totals, list[FailureGroup], Latency, int]:
    """The whole store's figures, or one campaign's (the quarantine is not per campaign: a
    rejected request belongs to no message)."""
    async with await open_reader(db, current=True) as reader:
        sel = None
        if campaign is not None:
            found = await reader.campaign(campaign)
            if found is None:
                raise NoCampaign(f"no campaign {campaign!r} (see `smswatch campaign list`)")
            sel = found.selector
        return (
            await reader.totals(campaign=sel),
            await reader.failures(limit=50, campaign=sel),
            await reader.latency(campaign=sel),
            await reader.quarantine_count(),
        )


def percentiles_record(p: Percentiles) -> dict[str, Any]:
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
            "queued_to_sent": percentiles_record(latency.queued_to_sent),
            "sent_to_delivered": percentiles_record(latency.sent_to_delivered),
            "queued_to_delivered": percentiles_record(latency.queued_to_delivered),
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
