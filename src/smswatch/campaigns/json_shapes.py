"""The JSON shapes of `campaign list|show --json` (docs/json.md) and of the report's data."""

from __future__ import annotations

from typing import Any

from smswatch.campaigns.analysis import CampaignView, region_of
from smswatch.core.campaigns import CarrierRow, Summary
from smswatch.core.domain import FUNNEL
from smswatch.exports.stats import percentiles_record
from smswatch.timefmt import iso


def summary_record(s: Summary) -> dict[str, Any]:
    """`campaign list --json`: one object per campaign."""
    return {
        "name": s.name,
        "kind": s.selector.kind,
        "source": s.source,
        "providers": list(s.providers),
        "messages": s.messages,
        "recipients": s.recipients,
        "counts": {st.value: s.counts[st] for st in FUNNEL},
        "in_flight": s.in_flight,
        "finished": s.finished,
        "progress": round(s.progress, 4),
        "delivery_rate": None if s.delivery_rate is None else round(s.delivery_rate, 4),
        "conflicts": s.conflicts,
        "cost": {currency: round(v, 4) for currency, v in sorted(s.cost.items())},
        "first_received_at": iso(s.first_received_at),
        "last_received_at": iso(s.last_received_at),
    }


def _rate(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def delivery_record(row: CarrierRow, label: str) -> dict[str, Any]:
    return {
        label: row.key,
        "recipients": row.recipients,
        "delivered": row.delivered,
        "failed": row.failed,
        "delivery_rate": _rate(row.rate),
        "recent_rate": _rate(row.recent_rate),
        "earlier_rate": _rate(row.earlier_rate),
        "falling": row.falling,
    }


def view_record(view: CampaignView, message_ids: list[str]) -> dict[str, Any]:
    """`campaign show --json`: the list's object, "messages" as the ids, and the analysis.
    The list's keys keep their meaning (docs/json.md: "the same object, plus"): the cost per
    currency stays "cost", its breakdown per gateway is "costs"."""
    record = summary_record(view.summary)
    record["message_count"] = record["messages"]
    record["messages"] = message_ids
    record.update(
        {
            "sent_per_s": round(view.sent_per_s, 3),
            "delivered_per_s": round(view.delivered_per_s, 3),
            "eta": {"state": view.eta.state, "seconds": view.eta.seconds},
            "latency": {
                "queued_to_sent": percentiles_record(view.latency.queued_to_sent),
                "sent_to_delivered": percentiles_record(view.latency.sent_to_delivered),
                "queued_to_delivered": percentiles_record(view.latency.queued_to_delivered),
            },
            "costs": [
                {
                    "provider": c.provider,
                    "currency": c.currency,
                    "spent": round(c.spent, 4),
                    "wasted_on_failures": round(c.wasted, 4),
                    "per_delivered": None if c.per_delivered is None else round(c.per_delivered, 4),
                }
                for c in view.costs
            ],
            "carriers": [delivery_record(c, "carrier") for c in view.carriers],
            "countries": [
                {**delivery_record(c, "prefix"), "region": region_of(c.key or "")}
                for c in view.countries
            ],
            "failures": [
                {
                    "provider": f.provider,
                    "error_code": f.error_code,
                    "name": info.name if info else None,
                    "count": f.count,
                    "retry": info.retry if info else None,
                    "action": info.action if info else None,
                    "latest_message": f.error_message,
                }
                for f, info in view.failures
            ],
            "stuck": view.stuck,
        }
    )
    return record
