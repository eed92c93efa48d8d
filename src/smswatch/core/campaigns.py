"""What the store answers about campaigns: pure data, shared by the CLI, the TUI and the report."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from smswatch.core.domain import FUNNEL, State

BURST = "burst"  # the kind of a campaign no name was given to
BURST_GAP_US = 120_000_000  # a gateway's messages first seen closer than this are one burst


_BURST = re.compile(r"[a-z]+-\d{8}-\d{6}")


def looks_like_burst(name: str) -> bool:
    return _BURST.fullmatch(name) is not None


def burst_name(provider: str, start_us: int) -> str:
    """A burst's name: its gateway and when its first message was first seen (UTC, to the
    second). Shell-friendly, and stable: the first message of a burst never changes."""
    stamp = datetime.fromtimestamp(start_us / 1e6, UTC).strftime("%Y%m%d-%H%M%S")
    return f"{provider}-{stamp}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Which messages make up a campaign: those tagged with `name`, or, for a burst, the
    untagged messages of `provider` first seen between `start` and `end`."""

    name: str
    kind: str = "named"  # named | burst
    provider: str | None = None
    start: int | None = None
    end: int | None = None

    @property
    def is_burst(self) -> bool:
        return self.kind == BURST


@dataclass(frozen=True, slots=True)
class Summary:
    """One campaign, as the campaign list shows it."""

    selector: Selector
    providers: tuple[str, ...]
    source: str  # tag | metadata | run | burst
    messages: int
    recipients: int  # expected: what the gateways announced, or what was seen
    counts: dict[State, int]
    in_flight: int  # messages not finished
    conflicts: int
    cost: dict[str, float]  # spent, per currency ("credits" for YeboLink)
    first_received_at: int | None
    last_received_at: int | None

    @property
    def name(self) -> str:
        return self.selector.name

    @property
    def done(self) -> int:
        """Recipients in a final state, `unconfirmed` included: the gateway will say no more."""
        c = self.counts
        return c[State.DELIVERED] + c[State.FAILED] + c[State.UNCONFIRMED]

    @property
    def progress(self) -> float:
        return self.done / self.recipients if self.recipients else 0.0

    @property
    def delivery_rate(self) -> float | None:
        """Delivered of the recipients with an outcome: an unconfirmed one has none."""
        answered = self.counts[State.DELIVERED] + self.counts[State.FAILED]
        return self.counts[State.DELIVERED] / answered if answered else None

    @property
    def finished(self) -> bool:
        return self.in_flight == 0 and self.messages > 0


@dataclass(slots=True)
class SummaryBuilder:
    """Sums rows of one campaign (one per gateway and currency) into a Summary."""

    selector: Selector
    source: str
    providers: list[str] = field(default_factory=list)
    messages: int = 0
    recipients: int = 0
    counts: dict[State, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL, 0))
    in_flight: int = 0
    conflicts: int = 0
    cost: dict[str, float] = field(default_factory=dict)
    first: int | None = None
    last: int | None = None

    def add(self, provider: str, currency: str | None, row: tuple) -> None:  # type: ignore[type-arg]
        """`row`: messages, recipients, a count per FUNNEL state, in flight, conflicts, cost,
        first, last (the columns of store/queries/campaigns.py's _SUMS)."""
        if provider not in self.providers:
            self.providers.append(provider)
        end = 2 + len(FUNNEL)
        messages, recipients, *counts = row[:end]
        self.messages += int(messages)
        self.recipients += int(recipients or 0)
        for state, n in zip(FUNNEL, counts, strict=True):
            self.counts[state] += int(n or 0)
        in_flight, conflicts, cost, first, last = row[end : end + 5]
        self.in_flight += int(in_flight or 0)
        self.conflicts += int(conflicts or 0)
        if cost is not None:
            key = currency or "?"
            self.cost[key] = self.cost.get(key, 0.0) + float(cost)
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def build(self) -> Summary:
        return Summary(
            self.selector,
            tuple(sorted(self.providers)),
            self.source,
            self.messages,
            self.recipients,
            self.counts,
            self.in_flight,
            self.conflicts,
            # Float sums differ in their last bits with the order of the rows (a store's scan,
            # rows kept in memory); money has no 7th decimal.
            {currency: round(v, 6) for currency, v in self.cost.items()},
            self.first,
            self.last,
        )


@dataclass(frozen=True, slots=True)
class CarrierRow:
    """Delivery by carrier (or by country prefix): all finals, and those in the recent window."""

    key: str | None
    recipients: int
    delivered: int
    failed: int
    recent_delivered: int
    recent_failed: int

    @property
    def rate(self) -> float | None:
        done = self.delivered + self.failed
        return self.delivered / done if done else None

    @property
    def recent_rate(self) -> float | None:
        done = self.recent_delivered + self.recent_failed
        return self.recent_delivered / done if done else None

    @property
    def earlier_rate(self) -> float | None:
        delivered = self.delivered - self.recent_delivered
        done = delivered + self.failed - self.recent_failed
        return delivered / done if done else None

    @property
    def falling(self) -> bool:
        """Its delivery rate fell mid-campaign: at least 20 finals before and in the recent
        window, and the recent rate 15 points or more below the earlier one."""
        recent, earlier = self.recent_rate, self.earlier_rate
        if recent is None or earlier is None:
            return False
        recent_n = self.recent_delivered + self.recent_failed
        earlier_n = self.delivered + self.failed - recent_n
        return recent_n >= 20 and earlier_n >= 20 and recent <= earlier - 0.15


@dataclass(frozen=True, slots=True)
class CostRow:
    provider: str
    currency: str | None
    spent: float
    wasted: float  # the share of each message's cost its failed recipients took
    delivered: int

    @property
    def per_delivered(self) -> float | None:
        return self.spent / self.delivered if self.delivered else None


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per time bucket: bucket i covers [start + i*step, start + (i+1)*step)."""

    start: int
    step: int
    counts: tuple[int, ...]

    def per_second(self, last: int = 1) -> float:
        """The mean rate over the last `last` buckets."""
        tail = self.counts[-last:] if self.counts else ()
        return sum(tail) / (len(tail) * self.step / 1e6) if tail else 0.0
