"""The report as a Markdown summary: the figures, the anomalies and the tables, no charts (a
line of block characters stands in for the delivery chart).

Untrusted text (campaign names, carriers, error codes and messages) goes through `text()`: one
safe line (sanitize.py: no control characters, so no line break can start a heading or end a
table row), HTML's special characters as entities (Markdown passes raw HTML through), and every
character Markdown or its common extensions give a meaning inside a line backslash-escaped.
"""

from __future__ import annotations

import re

from smswatch import __version__
from smswatch.campaigns.analysis import region_of
from smswatch.campaigns.report_model import Report
from smswatch.campaigns.report_words import (
    attention,
    microseconds,
    milliseconds,
    money,
    number,
    open_count,
    pace,
    percent,
    stats_command,
    total_count,
    when,
)
from smswatch.core.campaigns import CarrierRow
from smswatch.core.domain import FUNNEL
from smswatch.sanitize import safe

# Emphasis, code, links and images, tables, strikethrough, math ($), footnotes (^), attribute
# lists ({}), and the escape itself. A value never starts a line, so what only counts there
# (#, +, -, 1.) needs nothing; a bare URL may become a link, but one that shows where it goes.
_SPECIAL = re.compile(r"([\\`*_{}\[\]|~$^])")
BARS = " ▁▂▃▄▅▆▇█"


def text(value: object, limit: int = 120) -> str:
    line = safe(value, limit)
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", line)


def code_span(line: str) -> str:
    """`line` as inline code, exactly: in a code span nothing is markup or HTML, and a fence
    longer than any run of backticks inside cannot be closed by the content."""
    runs = [len(r) for r in re.findall(r"`+", line)]
    fence = "`" * (max(runs, default=0) + 1)
    return f"{fence} {line} {fence}" if runs else f"{fence}{line}{fence}"


def _table(head: list[tuple[str, bool]], rows: list[list[str]]) -> list[str]:
    out = [
        "| " + " | ".join(h for h, _ in head) + " |",
        "|" + "|".join("---:" if n else "---" for _, n in head) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def sparkline(counts: tuple[int, ...]) -> str:
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join(BARS[0 if not n else max(1, round(n / top * 8))] for n in counts)


def _delivery(rows: list[CarrierRow], label: str, regions: bool, limit: int = 30) -> list[str]:
    if not rows:
        return ["No recipients yet."]
    body = []
    for r in rows[:limit]:
        key = r.key or "(none)"
        if regions and r.key:
            key = f"{key} {region_of(r.key)}".strip()
        body.append(
            [
                text(key, 40),
                number(r.recipients),
                number(r.delivered),
                number(r.failed),
                percent(_round(r.rate)),
                percent(_round(r.recent_rate)) + (" **▼ falling**" if r.falling else ""),
                percent(_round(r.earlier_rate)),
            ]
        )
    out = _table(
        [
            (label, False),
            ("recipients", True),
            ("delivered", True),
            ("failed", True),
            ("delivery rate", True),
            ("recent", True),
            ("earlier", True),
        ],
        body,
    )
    if len(rows) > limit:
        out += ["", f"{len(rows) - limit} more not shown."]
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def attention_list(report: Report) -> list[str]:
    out = []
    for item in attention(report, text):
        out.append(f"- **{item.title}**: {item.text}")
        out += [f"  - {d}" for d in item.details]
    return out


def markdown(report: Report) -> str:
    f = report.figures
    r = f["recipients"]
    s = report.summary
    q2d = f["latency"]["queued_to_delivered"]
    kind = "SMS delivery report" if report.campaign is None else "SMS campaign report"
    lines = [
        f"# {kind}: {text(report.title, 200)}",
        "",
        f"Generated {when(report.generated_at)} from {text(report.database, 200)} · gateways "
        f"{text(', '.join(s.providers) or '-', 60)}"
        + ("" if report.campaign is None else f" · grouped by {text(s.source, 20)}"),
    ]
    if report.first_event_at is not None:
        lines.append(f"Events from {when(report.first_event_at)} to {when(report.last_event_at)}.")
    if s.finished:
        lines += ["", "**Finished**: every message is final."]
    elif s.messages:
        lines += [
            "",
            f"**In progress**: {percent(round(s.progress, 4))} of recipients final; "
            f"{pace(report)}.",
        ]
    spent = ", ".join(money(c.spent, text(c.currency, 12)) for c in report.view.costs) or "-"
    lines += [
        "",
        "## Headline",
        "",
        *_table(
            [("figure", False), ("value", True)],
            [
                ["Recipients", number(total_count(f))],
                ["Delivered", number(r["delivered"])],
                ["Failed", number(r["failed"])],
                ["Not final yet", number(open_count(f))],
                ["Delivery rate", percent(f["delivery_rate"])],
                ["Time to delivery, median", milliseconds(q2d["p50_ms"])],
                ["Time to delivery, 95th percentile", milliseconds(q2d["p95_ms"])],
                ["Messages", number(f["messages"])],
                ["Webhook events", number(f["events"])],
                ["Cost", spent],
            ],
        ),
        "",
        "## Needs attention",
        "",
        *attention_list(report),
        "",
        "## Delivery over time",
        "",
    ]
    tl = report.timeline
    if tl is None:
        lines.append("Nothing has happened yet.")
    else:
        lines += [
            f"Delivered per {microseconds(tl.step)} from {when(tl.start)}:",
            "",
            f"`{sparkline(tl.delivered.counts)}`",
            "",
            f"Failed per {microseconds(tl.step)}:",
            "",
            f"`{sparkline(tl.failed.counts)}`",
        ]
    lines += ["", "## Time to delivery", ""]
    lines += _table(
        [("leg", False), ("recipients", True), ("median", True), ("95th percentile", True)],
        [
            [
                label,
                number(f["latency"][key]["count"]),
                milliseconds(f["latency"][key]["p50_ms"]),
                milliseconds(f["latency"][key]["p95_ms"]),
            ]
            for key, label in (
                ("queued_to_sent", "queued → sent"),
                ("sent_to_delivered", "sent → delivered"),
                ("queued_to_delivered", "queued → delivered"),
            )
        ],
    )
    total = total_count(f)
    lines += ["", "## Recipients by state", ""]
    lines += _table(
        [("state", False), ("recipients", True), ("share", True)],
        [
            [
                st.value,
                number(r[st.value]),
                percent(round(r[st.value] / total, 4)) if total else "-",
            ]
            for st in FUNNEL
        ],
    )
    lines += ["", "## Failures by code", ""]
    if report.failures:
        failed = max(int(r["failed"]), 1)
        lines += _table(
            [
                ("gateway", False),
                ("code", False),
                ("recipients", True),
                ("of failures", True),
                ("meaning", False),
                ("retry?", False),
                ("what to do", False),
                ("latest message from the gateway", False),
            ],
            [
                [
                    text(g.provider, 20),
                    text(g.error_code or "(none)", 20),
                    number(g.count),
                    percent(round(g.count / failed, 4)),
                    text(info.title if info else "no code given", 60),
                    text(info.retry if info else "-", 10),
                    text(info.action if info else "", 400),
                    text(g.error_message, 160),
                ]
                for g, info in report.failures
            ],
        )
    else:
        lines.append("No recipient failed.")
    lines += ["", "## Delivery by carrier", ""]
    lines += _delivery(report.view.carriers, "carrier", False)
    lines += ["", "## Delivery by country", ""]
    lines += _delivery(report.view.countries, "country code", True)
    lines += ["", "## Cost", ""]
    if report.view.costs:
        lines += _table(
            [
                ("gateway", False),
                ("currency", False),
                ("spent", True),
                ("on failed recipients", True),
                ("per delivered", True),
            ],
            [
                [
                    text(c.provider, 20),
                    text(c.currency or "?", 12),
                    money(c.spent, None),
                    money(c.wasted, None),
                    "-" if c.per_delivered is None else f"{c.per_delivered:,.4f}",
                ]
                for c in report.view.costs
            ],
        )
    else:
        lines.append("The gateways reported no cost.")
    lines += [
        "",
        "---",
        "",
        f"Made by smswatch {__version__}; the figures are those of "
        f"{code_span(stats_command(report))} on the same data.",
        "",
    ]
    return "\n".join(lines)
