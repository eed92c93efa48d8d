"""A campaign's figures computed from its rows, in one pass: the one place they are computed.

The campaign screen (from rows it keeps in memory, brought up to date a few at a time: see
book.py), `campaign show` and the report (from rows just read) all call `view_of`, so they
cannot disagree. The rows are compact tuples, not domain objects: a campaign can have 100,000
recipients, and the screen keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smswatch.campaigns.model import CarrierRow, CostRow, Selector, Series, Summary, SummaryBuilder
from smswatch.catalogue import explain
from smswatch.domain import FUNNEL, State
from smswatch.store.reader import FailureGroup, Latency, percentiles

# A message row (store/campaign_rows.py MESSAGE_ROW).
(
    M_ID,
    M_PROVIDER,
    M_CURRENCY,
    M_COST,
    M_TOTAL,
    M_KNOWN,
    M_QUEUED,
    M_PROCESSING,
    M_SENT,
    M_DELIVERED,
    M_FAILED,
    M_FINISHED,
    M_CONFLICTS,
    M_FIRST,
    M_LAST,
    M_QUEUED_AT,
) = range(16)
# A recipient row (store/campaign_rows.py RECIPIENT_ROW).
(
    R_MESSAGE,
    R_RECIPIENT,
    R_STATE,
    R_STATE_AT,
    R_CARRIER,
    R_PROVIDER,
    R_CODE,
    R_ERROR,
    R_RETRYABLE,
    R_ERROR_AT,
    R_QUEUED_AT,
    R_SENT_AT,
    R_DELIVERED_AT,
    R_FAILED_AT,
) = range(14)

Row = tuple[Any, ...]

SPARK_BUCKETS = 30
SPARK_STEP = 10_000_000  # µs: the sparklines cover the last 5 minutes, 10 s a bar
RATE_WINDOW = 6  # buckets (60 s) the rates now and the ETA are taken over
MIN_RECENT = 30_000_000  # the recent window of the carrier flags is at least 30 s
FAILURE_GROUPS = 30


def expected(m: Row) -> int:
    total, known = m[M_TOTAL], m[M_KNOWN]
    return known if total is None else max(total, known)


def summary_sums(m: Row) -> tuple[Any, ...]:
    """A message's part of its campaign's Summary, in SummaryBuilder.add's order."""
    exp = expected(m)
    return (
        1,
        exp,
        m[M_QUEUED] + exp - m[M_KNOWN],
        m[M_PROCESSING],
        m[M_SENT],
        m[M_DELIVERED],
        m[M_FAILED],
        0 if m[M_FINISHED] else 1,
        m[M_CONFLICTS],
        m[M_COST],
        m[M_FIRST],
        m[M_LAST],
    )


def summary_of(selector: Selector, source: str, messages: Iterable[Row]) -> Summary:
    b = SummaryBuilder(selector, source)
    for m in messages:
        b.add(m[M_PROVIDER], m[M_CURRENCY], summary_sums(m))
    return b.build()


def _series(times: list[int], start: int) -> Series:
    counts = [0] * SPARK_BUCKETS
    for t in times:
        i = (t - start) // SPARK_STEP
        if 0 <= i < SPARK_BUCKETS:
            counts[i] += 1
    return Series(start, SPARK_STEP, tuple(counts))


def view_of(
    summary: Summary,
    messages: Mapping[str, Row],
    recipients: Iterable[Row],
    now: int,
    deadlines: Mapping[State, int],
) -> Any:
    """The CampaignView (campaigns/analysis.py) of a campaign's message and recipient rows."""
    from smswatch.campaigns.analysis import CampaignView, by_country, by_size, estimate

    start = now - SPARK_STEP * SPARK_BUCKETS
    sent_times: list[int] = []
    delivered_times: list[int] = []
    failed_times: list[int] = []
    to_sent: list[int] = []
    to_delivered: list[int] = []
    end_to_end: list[int] = []
    finals: list[tuple[int, Any, Any, bool]] = []  # (state_at, carrier, prefix, delivered)
    carriers: dict[Any, list[int]] = {}
    prefixes: dict[Any, list[int]] = {}
    failures: dict[tuple[str, Any], list[Any]] = {}
    stuck = 0
    limits = {s.value: now - d for s, d in deadlines.items()}
    for r in recipients:
        state = r[R_STATE]
        carrier, prefix = r[R_CARRIER], (r[R_RECIPIENT] or "")[:5]
        (carriers.get(carrier) or carriers.setdefault(carrier, [0, 0, 0, 0, 0]))[0] += 1
        (prefixes.get(prefix) or prefixes.setdefault(prefix, [0, 0, 0, 0, 0]))[0] += 1
        sent, delivered, failed = r[R_SENT_AT], r[R_DELIVERED_AT], r[R_FAILED_AT]
        if sent is not None and sent >= start:
            sent_times.append(sent)
        if delivered is not None and delivered >= start:
            delivered_times.append(delivered)
        if failed is not None and failed >= start:
            failed_times.append(failed)
        queued = r[R_QUEUED_AT]
        if queued is None:
            m = messages.get(r[R_MESSAGE])
            queued = m[M_QUEUED_AT] if m is not None else None
        if queued is not None and sent is not None and sent >= queued:
            to_sent.append(sent - queued)
        if sent is not None and delivered is not None and delivered >= sent:
            to_delivered.append(delivered - sent)
        if queued is not None and delivered is not None and delivered >= queued:
            end_to_end.append(delivered - queued)
        if state == "delivered" or state == "failed":
            finals.append((r[R_STATE_AT], carrier, prefix, state == "delivered"))
            if state == "failed":
                key = (r[R_PROVIDER], r[R_CODE])
                group = failures.get(key)
                if group is None:
                    failures[key] = [1, r[R_ERROR_AT], r[R_ERROR], r[R_RETRYABLE]]
                else:
                    group[0] += 1
                    at = r[R_ERROR_AT]
                    if at is not None and (group[1] is None or at >= group[1]):
                        group[1], group[2] = at, r[R_ERROR]
                    if r[R_RETRYABLE] is not None:
                        group[3] = max(group[3] or 0, r[R_RETRYABLE])
        elif state in limits and r[R_STATE_AT] is not None and r[R_STATE_AT] < limits[state]:
            stuck += 1
    timed = [f[0] for f in finals if f[0] is not None]
    recent_since = None
    if timed:
        first, last = min(timed), max(timed)
        recent_since = last - max((last - first) // 3, MIN_RECENT)
    since = recent_since if recent_since is not None else now
    for at, carrier, prefix, ok in finals:
        recent = at is not None and at >= since
        for table, key in ((carriers, carrier), (prefixes, prefix)):
            acc = table[key]
            acc[1 if ok else 2] += 1
            if recent:
                acc[3 if ok else 4] += 1
    sent_s = _series(sent_times, start)
    delivered_s = _series(delivered_times, start)
    failed_s = _series(failed_times, start)
    finals_per_s = delivered_s.per_second(RATE_WINDOW) + failed_s.per_second(RATE_WINDOW)
    groups = [
        FailureGroup(p, code, n, at, msg, None if retry is None else bool(retry))
        for (p, code), (n, at, msg, retry) in failures.items()
    ]
    groups.sort(key=lambda g: (-g.count, g.provider, g.error_code or ""))
    return CampaignView(
        summary=summary,
        now=now,
        sent=sent_s,
        delivered=delivered_s,
        failed=failed_s,
        sent_per_s=sent_s.per_second(RATE_WINDOW),
        delivered_per_s=delivered_s.per_second(RATE_WINDOW),
        eta=estimate(summary, finals_per_s),
        latency=Latency(percentiles(to_sent), percentiles(to_delivered), percentiles(end_to_end)),
        costs=costs_of(messages.values()),
        carriers=by_size([CarrierRow(k, *v) for k, v in carriers.items()]),
        countries=by_country([CarrierRow(k, *v) for k, v in prefixes.items()]),
        failures=[
            (g, explain(g.provider, g.error_code, g.retryable)) for g in groups[:FAILURE_GROUPS]
        ],
        stuck=stuck,
        recent_since=recent_since,
    )


def costs_of(messages: Iterable[Row]) -> list[CostRow]:
    acc: dict[tuple[str, Any], list[float]] = {}
    for m in messages:
        cost = m[M_COST]
        if cost is None:
            continue
        exp = expected(m)
        row = acc.setdefault((m[M_PROVIDER], m[M_CURRENCY]), [0.0, 0.0, 0])
        row[0] += cost
        row[1] += cost * m[M_FAILED] / exp if exp > 0 else 0.0
        row[2] += m[M_DELIVERED]
    # Rounded: sums of floats differ in the last bits with the order they are added in, which
    # differs between a store's scan and rows kept in memory; money has no 7th decimal.
    return [
        CostRow(p, c, round(spent, 6), round(wasted, 6), int(delivered))
        for (p, c), (spent, wasted, delivered) in sorted(
            acc.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        )
    ]


__all__ = ["FUNNEL", "Row", "costs_of", "summary_of", "view_of"]
