"""The figures the store answers with: totals, failure groups, latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from smswatch.core.domain import State


@dataclass(frozen=True, slots=True)
class Totals:
    events: int
    messages: int
    in_flight: int
    funnel: dict[State, int]
    conflicts: int
    first_received_at: int | None
    last_received_at: int | None
    by_provider: dict[str, int]  # events per gateway


@dataclass(frozen=True, slots=True)
class FailureGroup:
    provider: str
    error_code: str | None
    count: int
    last_at: int | None
    error_message: str | None  # the latest message seen for the code
    retryable: bool | None


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50: int | None
    p95: int | None


@dataclass(frozen=True, slots=True)
class Latency:
    queued_to_sent: Percentiles
    sent_to_delivered: Percentiles
    queued_to_delivered: Percentiles = Percentiles(0, None, None)


def percentiles(values: Sequence[int]) -> Percentiles:
    """Nearest-rank p50 and p95."""
    return ranked(sorted(values))


def ranked(ordered: Sequence[int]) -> Percentiles:
    """Nearest-rank p50 and p95 of values already sorted (a running tally keeps them so)."""
    n = len(ordered)
    if not n:
        return Percentiles(0, None, None)

    def rank(p: float) -> int:
        return ordered[max(math.ceil(p * n) - 1, 0)]

    return Percentiles(n, rank(0.50), rank(0.95))
