"""`smswatch report`: one campaign (or the whole database) as one file an ops lead can forward.

This module gathers what the report shows; report_html.py and report_md.py write it. The
headline figures are `smswatch stats --json`'s own (`stats.gather` + `stats_record`), not
recomputed here, so the report and stats cannot disagree; the rest comes from the campaign
queries the TUI and `campaign show` use, plus what only a report asks: the whole span of the
campaign, its silences, and the requests rejected while it ran.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smswatch.campaigns.analysis import (
    CampaignView,
    campaign_view,
    database_summary,
    duration,
    scope,
)
from smswatch.core.campaigns import CarrierRow, Selector, Series, Summary
from smswatch.core.domain import State
from smswatch.core.figures import FailureGroup
from smswatch.exports.stats import NoCampaign, gather, stats_record
from smswatch.gateways.catalogue import ErrorInfo, explain
from smswatch.sanitize import safe
from smswatch.store import open_reader
from smswatch.store.api import CampaignReportQueries
from smswatch.store.location import describe
from smswatch.timefmt import from_us
from smswatch.words import plural

SILENCE_US = 60_000_000  # nothing happening for this long while recipients wait is a silence
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
OPEN_STATES = (State.QUEUED, State.PROCESSING, State.SENT)


@dataclass(frozen=True, slots=True)
class Silence:
    """Nothing happened to the campaign from `start` to `end` (event time) while `waiting`
    recipients were not final; `end` None: nothing since, when the report was made."""

    start: int
    end: int | None
    waiting: int

    def length(self, now: int) -> int:
        return (self.end if self.end is not None else now) - self.start


@dataclass(frozen=True, slots=True)
class Anomalies:
    silences: tuple[Silence, ...]  # the longest MAX_SILENCES, in time order
    silence_count: int
    rejections: tuple[tuple[str, int], ...]  # (rejection code, requests), most first
    conflicts: int  # recipients reported both delivered and failed
    stuck: int  # recipients past their state's deadline
    falling: tuple[CarrierRow, ...]  # carriers whose delivery rate fell mid-campaign

    @property
    def rejected(self) -> int:
        return sum(n for _, n in self.rejections)

    @property
    def any(self) -> bool:
        return bool(
            self.silence_count or self.rejections or self.conflicts or self.stuck or self.falling
        )


@dataclass(frozen=True, slots=True)
class Timeline:
    """Over the campaign's whole span, per bucket: recipients sent (by when they were), and
    delivered and failed (where each ended, by when it did)."""

    sent: Series
    delivered: Series
    failed: Series

    @property
    def start(self) -> int:
        return self.sent.start

    @property
    def step(self) -> int:
        return self.sent.step


@dataclass(frozen=True, slots=True)
class Report:
    title: str  # the campaign's name (untrusted: it may come from a sender's metadata)
    campaign: str | None  # as asked for; None: the whole database
    database: str  # for the header: a path, or a URL without its password
    generated_at: int
    figures: dict[str, Any]  # `smswatch stats [--campaign NAME] --json`, exactly
    view: CampaignView
    failures: tuple[tuple[FailureGroup, ErrorInfo | None], ...]  # stats' failures + advice
    timeline: Timeline | None  # None: nothing happened yet
    latency: dict[str, list[int]]  # samples (µs) per leg, as the percentiles are made of
    anomalies: Anomalies
    first_event_at: int | None
    last_event_at: int | None

    @property
    def summary(self) -> Summary:
        return self.view.summary


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


# --- how figures read (both writers: the same number reads the same in both) ------------------


def number(n: int | float) -> str:
    return f"{n:,}"


def percent(rate: float | None) -> str:
    """A rate as stats rounds it (4 decimals), in percent: nothing lost, nothing invented."""
    return "-" if rate is None else f"{rate * 100:.2f}%"


def milliseconds(ms: float | None) -> str:
    """A latency figure (stats' milliseconds) as a person reads it."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:,.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return duration(ms / 1000)


def microseconds(us: int) -> str:
    return milliseconds(us / 1000)


def when(us: int | None) -> str:
    """A moment as a person reads it, to the second (UTC: the report travels)."""
    if us is None:
        return "-"
    return from_us(us).strftime("%Y-%m-%d %H:%M:%S UTC")


def money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".rstrip()


def open_count(figures: dict[str, Any]) -> int:
    """Recipients not final yet (queued, processing or sent): stats' own counts, summed."""
    return sum(int(figures["recipients"][s.value]) for s in OPEN_STATES)


def total_count(figures: dict[str, Any]) -> int:
    return sum(int(n) for n in figures["recipients"].values())


def _minutes(us: int) -> str:
    return f"{us // 60_000_000} min" if us % 60_000_000 == 0 else microseconds(us)


@dataclass(frozen=True, slots=True)
class Attention:
    """One item of "Needs attention", in words both writers use. Untrusted parts (carriers,
    rejection codes) are already escaped by the writer's `escape`."""

    tone: str  # bad | warn | fine
    title: str
    text: str
    details: tuple[str, ...] = ()


def attention(report: Report, escape: Callable[[object, int], str]) -> list[Attention]:
    a = report.anomalies
    now = report.generated_at
    out = []
    if a.silence_count:
        longest = max((s.length(now) for s in a.silences), default=0)
        shown = ""
        if a.silence_count > len(a.silences):
            shown = f" (the {len(a.silences)} longest listed)"
        details = tuple(
            f"{when(s.start)} → {'now' if s.end is None else when(s.end)}: "
            f"{microseconds(s.length(now))}, {plural(s.waiting, 'recipient')} waiting"
            for s in a.silences
        )
        out.append(
            Attention(
                "bad" if any(s.end is None for s in a.silences) else "warn",
                "Silence",
                f"{plural(a.silence_count, 'stretch', 'stretches')} of over "
                f"{_minutes(SILENCE_US)} with no news from the gateway while recipients "
                f"waited; the longest {microseconds(longest)}{shown}.",
                details,
            )
        )
    if a.stuck:
        verb = "has" if a.stuck == 1 else "have"
        out.append(
            Attention(
                "bad",
                "Stuck",
                f"{plural(a.stuck, 'recipient')} {verb} been queued, processing or sent for "
                "longer than its state's deadline.",
            )
        )
    if a.falling:
        names = ", ".join(escape(c.key or "(no carrier)", 40) for c in a.falling)
        out.append(
            Attention(
                "bad",
                "Falling delivery",
                f"the delivery rate fell mid-campaign on {names}: see the carrier table.",
            )
        )
    if a.rejections:
        codes = ", ".join(f"{escape(code, 40)} {number(n)}" for code, n in a.rejections)
        out.append(
            Attention(
                "warn",
                "Rejected webhooks",
                f"{plural(a.rejected, 'request')} refused while the campaign ran ({codes}). "
                "They belong to no message: check the gateway's credentials and the webhook "
                "URL.",
            )
        )
    if a.conflicts:
        out.append(
            Attention(
                "warn",
                "Conflicts",
                f"{plural(a.conflicts, 'recipient was', 'recipients were')} reported both "
                "delivered and failed; the later report is kept.",
            )
        )
    return out or [
        Attention(
            "fine",
            "Nothing unusual",
            "no silences, no stuck recipients, no falling carrier, no rejected webhooks, no "
            "conflicting reports.",
        )
    ]


def pace(report: Report) -> str:
    """Where a campaign in progress stands, in a clause."""
    eta = report.view.eta
    if eta.state == "stalled":
        return "stalled: nothing became final in the last minute"
    if eta.state == "waiting":
        return "waiting for the first results"
    if eta.state == "eta" and eta.seconds is not None:
        left = "under a second" if eta.seconds < 1 else "about " + duration(eta.seconds)
        return f"{left} to go at the last minute's pace"
    return "every recipient final"


def stats_command(report: Report) -> str:
    """The command whose figures the report's are (shell-quoted, made one safe line)."""
    if report.campaign is None:
        return "smswatch stats --json"
    return f"smswatch stats --campaign {shlex.quote(safe(report.campaign, 80))} --json"


def default_out(fmt: str) -> str:
    return "report.md" if fmt == "md" else "report.html"


def render(report: Report, fmt: str) -> str:
    """The report as the text of an HTML page or a Markdown document."""
    if fmt == "md":
        from smswatch.campaigns.report_md import markdown

        return markdown(report)
    from smswatch.campaigns.report_html import page

    return page(report)
