"""Everything the campaign view and the report show about one campaign, from the store.

The queries are the store's (store/queries/ and the reader); this module turns their rows
into figures: rates now, an ETA, delivery per carrier and per country, cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from smswatch.core.campaigns import CarrierRow, CostRow, Selector, Series, Summary
from smswatch.core.domain import FUNNEL
from smswatch.core.figures import FailureGroup, Latency
from smswatch.gateways.catalogue import ErrorInfo

if TYPE_CHECKING:
    from smswatch.store.api import CampaignReportQueries

EVERYTHING = "all"  # the kind of the selector that stands for every stored message


@dataclass(frozen=True, slots=True)
class Eta:
    state: str  # done | eta | stalled | waiting
    seconds: float | None = None

    def label(self) -> str:
        if self.state == "done":
            return "done"
        if self.state == "stalled":
            return "stalled (nothing final in the last minute)"
        if self.state == "waiting":
            return "waiting for the first results"
        assert self.seconds is not None
        return "about " + duration(self.seconds)


def duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def estimate(summary: Summary, finals_per_s: float) -> Eta:
    """Time until every recipient is final, at the rate they became final over the last
    minute: it converges as the campaign goes on."""
    remaining = summary.recipients - summary.done
    if remaining <= 0 and summary.messages:
        return Eta("done", 0.0)
    if summary.done == 0:
        return Eta("waiting")
    if finals_per_s <= 0:
        return Eta("stalled")
    return Eta("eta", remaining / finals_per_s)


@cache
def country_of(prefix: str | None) -> str:
    """The calling code ('+27') a number's first characters start with, or 'other'.

    Several gateways (Infobip, Plivo, Sinch) write international numbers without the '+'
    ('27821234567'), and some dial out with '00': both are read as international. A number
    that starts with a single 0 is national, and its country cannot be told from it."""
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE as codes

    if not prefix:
        return "other"
    if prefix.startswith("+"):
        digits = prefix[1:]
    elif prefix.startswith("00"):
        digits = prefix[2:]
    elif prefix[0] in "123456789":
        digits = prefix
    else:
        return "other"
    for n in (1, 2, 3):
        if len(digits) >= n and digits[:n].isdigit() and int(digits[:n]) in codes:
            return "+" + digits[:n]
    return "other"


@cache
def region_of(code: str) -> str:
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE as codes

    if not code.startswith("+"):
        return ""
    regions = [r for r in codes.get(int(code[1:]), ()) if r != "001"]
    return (
        regions[0]
        if len(regions) == 1
        else "/".join(regions[:2]) + ("…" if len(regions) > 2 else "")
    )


def by_country(rows: list[CarrierRow]) -> list[CarrierRow]:
    merged: dict[str, list[int]] = {}
    for row in rows:
        acc = merged.setdefault(country_of(row.key), [0, 0, 0, 0, 0])
        for i, v in enumerate(
            (row.recipients, row.delivered, row.failed, row.recent_delivered, row.recent_failed)
        ):
            acc[i] += v
    return by_size([CarrierRow(k, *v) for k, v in merged.items()])


@dataclass(frozen=True, slots=True)
class CampaignView:
    summary: Summary
    now: int
    sent: Series
    delivered: Series
    failed: Series
    sent_per_s: float
    delivered_per_s: float
    eta: Eta
    latency: Latency
    costs: list[CostRow]
    carriers: list[CarrierRow]
    countries: list[CarrierRow]
    failures: list[tuple[FailureGroup, ErrorInfo | None]]
    stuck: int
    recent_since: int | None  # where the carriers' recent window starts (event time)

    @property
    def falling(self) -> list[CarrierRow]:
        return [c for c in self.carriers if c.falling]


def scope(summary: Summary) -> Selector | None:
    """What the store's queries take for a summary: its selector, or None (every message) for
    the whole database's, which no campaign condition must narrow."""
    return None if summary.selector.kind == EVERYTHING else summary.selector


async def database_summary(
    reader: CampaignReportQueries, name: str = "all stored messages"
) -> Summary:
    """The whole database as one campaign (the report without a campaign name), from the same
    totals `smswatch stats` shows: counts per state from the recipients, and the recipients
    announced but not seen yet counted as queued, as a campaign's are."""
    totals = await reader.totals()
    cost: dict[str, float] = {}
    for row in await reader.costs(None):
        key = row.currency or "?"
        cost[key] = cost.get(key, 0.0) + row.spent
    counts = {state: totals.funnel[state] for state in FUNNEL}
    return Summary(
        selector=Selector(name, EVERYTHING),
        providers=tuple(sorted(totals.by_provider)),
        source=EVERYTHING,
        messages=totals.messages,
        recipients=sum(counts.values()),
        counts=counts,
        in_flight=totals.in_flight,
        conflicts=totals.conflicts,
        cost=cost,
        first_received_at=totals.first_received_at,
        last_received_at=totals.last_received_at,
    )


def by_size(rows: list[CarrierRow]) -> list[CarrierRow]:
    """Largest first; ties by name, so every reader lists them alike."""
    return sorted(rows, key=lambda r: (-r.recipients, r.key or ""))
