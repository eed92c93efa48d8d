"""`smswatch report`: one campaign (or the whole database) as one file an ops lead can forward.

This module gathers what the report shows (a report_model.Report); report_html.py and
report_md.py write it, in report_words.py's words. The headline figures are `smswatch stats
--json`'s own (`stats.gather` + `stats_record`), not recomputed here, so the report and stats
cannot disagree; the rest comes from the campaign queries the TUI and `campaign show` use, plus
what only a report asks: the whole span of the campaign, its silences, and the requests
rejected while it ran.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from smswatch.campaigns.analysis import CampaignView, database_summary, scope
from smswatch.campaigns.report_model import (
    OPEN_STATES,
    SILENCE_US,
    Anomalies,
    Report,
    Silence,
    Timeline,
)
from smswatch.campaigns.tally import campaign_view
from smswatch.core.campaigns import Selector, Summary
from smswatch.core.domain import State
from smswatch.exports.stats import NoCampaign, gather, stats_record
from smswatch.gateways.catalogue import explain
from smswatch.store import open_reader
from smswatch.store.api import CampaignReportQueries
from smswatch.store.location import describe

TIMELINE_BUCKETS = 60  # about this many bars across the delivery chart
MAX_SILENCES = 20  # the longest ones are listed; the count says how many there were
# Bar widths a reader takes in at a glance (µs): the chart's step is the first that gives at
# most TIMELINE_BUCKETS bars. Sub-second ones for simulated campaigns run at high speed.
NICE_STEPS = tuple(
    round(seconds * 1_000_000)
    for seconds in (
        0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
        21600, 43200, 86400,
    )
)  # fmt: skip
# The silence finder looks at activity this finely at most (µs): far below SILENCE_US, and
# coarse enough that a campaign of weeks is a bounded number of rows.
SILENCE_RESOLUTION = 1_000_000
SILENCE_MAX_BUCKETS = 50_000


async def gather_report(
    db: Path | str, campaign: str | None, now: int, deadlines: dict[State, int]
) -> Report:
    """Everything the report shows. Raises stats.NoCampaign for an unknown campaign."""
    totals, failures, latency, quarantined = await gather(db, campaign)
    figures = stats_record(totals, failures, latency, quarantined)
    async with await open_reader(db, current=True) as reader:
        if campaign is None:
            summary = await database_summary(reader)
        else:
            found = await reader.campaign(campaign)
            if found is None:  # gone since stats looked (re-tagged): say so, as stats would
                raise NoCampaign(f"no campaign {campaign!r} (see `smswatch campaign list`)")
            summary = found
        sel = scope(summary)
        view = await campaign_view(reader, summary, now, deadlines)
        first, last = await reader.activity_span(sel)
        timeline = await _timeline(reader, sel, first, last)
        # The conflicts are stats' figure (the same sum): one number, wherever it is shown.
        conflicts = int(figures["conflicts"])
        anomalies = await _anomalies(reader, summary, view, first, last, now, conflicts)
        samples = await reader.latency_samples(campaign=sel)
    return Report(
        title=summary.name if campaign is not None else "All stored messages",
        campaign=campaign,
        database=describe(db),
        generated_at=now,
        figures=figures,
        view=view,
        failures=tuple((f, explain(f.provider, f.error_code, f.retryable)) for f in failures),
        timeline=timeline,
        latency=samples,
        anomalies=anomalies,
        first_event_at=first,
        last_event_at=last,
    )


def timeline_step(span_us: int) -> int:
    """The bar width (µs) for a span: the first nice step that needs at most TIMELINE_BUCKETS
    bars, or whole days beyond those."""
    for step in NICE_STEPS:
        if span_us <= step * TIMELINE_BUCKETS:
            return step
    day = 86_400_000_000
    return -(-span_us // (day * TIMELINE_BUCKETS)) * day


async def _timeline(
    reader: CampaignReportQueries, sel: Selector | None, first: int | None, last: int | None
) -> Timeline | None:
    if first is None or last is None:
        return None
    step = timeline_step(max(last - first, 1))
    start = first - first % step  # bars on round clock times
    buckets = (last - start) // step + 1
    return Timeline(
        sent=await reader.series(sel, "sent_at", start, step, buckets),
        # Where each recipient ended, when it did: the bars add up to the delivered and failed
        # figures, a conflicting recipient (delivered, then failed) counted once.
        delivered=await reader.series(sel, "state_at", start, step, buckets, "delivered"),
        failed=await reader.series(sel, "state_at", start, step, buckets, "failed"),
    )


async def _silences(
    reader: CampaignReportQueries,
    summary: Summary,
    sel: Selector | None,
    first: int | None,
    last: int | None,
    now: int,
) -> tuple[list[Silence], int]:
    if first is None or last is None:
        return [], 0
    # Fine enough to measure a minute's silence to the second, bounded for long campaigns.
    grain = max(SILENCE_RESOLUTION, -(-(last - first + 1) // SILENCE_MAX_BUCKETS))
    active = await reader.activity_buckets(sel, first, grain)
    found: list[Silence] = []
    for before, after in itertools.pairwise(active):
        start, end = first + (before + 1) * grain, first + after * grain
        # Activity resumed, so the campaign was not over; but a gap between two sends of one
        # database is no silence unless someone was still waiting in it.
        if end - start >= SILENCE_US:
            waiting = await reader.open_at(sel, start)
            if waiting:
                found.append(Silence(start, end, waiting))
    if active:
        quiet_since = first + (active[-1] + 1) * grain
        waiting = sum(summary.counts[s] for s in OPEN_STATES)
        if waiting and now - quiet_since >= SILENCE_US:
            found.append(Silence(quiet_since, None, waiting))
    longest = sorted(found, key=lambda s: s.length(now), reverse=True)[:MAX_SILENCES]
    return sorted(longest, key=lambda s: s.start), len(found)


async def _anomalies(
    reader: CampaignReportQueries,
    summary: Summary,
    view: CampaignView,
    first: int | None,
    last: int | None,
    now: int,
    conflicts: int,
) -> Anomalies:
    sel = scope(summary)
    silences, count = await _silences(reader, summary, sel, first, last, now)
    if sel is None:
        window: tuple[int, int] | None = (0, 2**62)  # every kept rejection, as stats counts
    elif summary.first_received_at is None:
        window = None
    else:
        # While the campaign's webhooks arrived, and up to now while it is not finished.
        end = summary.last_received_at or summary.first_received_at
        window = (summary.first_received_at, end if summary.finished else max(end, now))
    rejections = await reader.rejections_between(*window) if window else []
    return Anomalies(
        silences=tuple(silences),
        silence_count=count,
        rejections=tuple(rejections),
        conflicts=conflicts,
        stuck=view.stuck,
        falling=tuple(view.falling),
    )


def default_out(fmt: str) -> str:
    return "report.md" if fmt == "md" else "report.html"


def render(report: Report, fmt: str) -> str:
    """The report as the text of an HTML page or a Markdown document."""
    if fmt == "md":
        from smswatch.campaigns.report_md import markdown

        return markdown(report)
    from smswatch.campaigns.report_html import page

    return page(report)
