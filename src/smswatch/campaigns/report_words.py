"""How a report's figures read, in the words both writers use (report_html.py, report_md.py):
the same number reads the same in both."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smswatch.campaigns.analysis import duration
from smswatch.campaigns.report_model import OPEN_STATES, SILENCE_US, Report
from smswatch.sanitize import safe
from smswatch.timefmt import from_us
from smswatch.words import plural


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
