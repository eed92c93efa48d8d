"""The report as one self-contained HTML page: inline CSS, the charts as inline SVG, no script,
no font, no request of any kind, so it opens offline wherever it is forwarded.

Every value that came from a webhook or a sender (campaign names, carriers, error codes and
messages) is untrusted: it goes through `text()`, which makes it one safe line (sanitize.py)
and then HTML-escapes it, so nothing in it can become markup. The page's Content-Security-Policy
forbids scripts and every fetch besides, should anything ever slip through.
"""

from __future__ import annotations

import html
import json
from typing import Any

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

# No script, no fetch of any kind: only the page's own inline CSS (and inline SVG) is allowed.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)

CSS = """
:root { --ink: #263238; --muted: #607d8b; --line: #dfe4e8; --ok: #2e7d32; --bad: #c62828;
  --warn: #ef6c00; --card: #f5f7f8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 32px 28px 48px; }
header { border-bottom: 3px solid var(--ink); padding-bottom: 14px; margin-bottom: 22px; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 12px;
  color: var(--muted); margin: 0; }
h1 { font-size: 28px; margin: 4px 0 8px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 30px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); margin: 0; font-size: 13px; }
.meta span + span::before { content: " · "; }
.status { font-size: 15px; margin: 0 0 16px; }
.status b.done { color: var(--ok); }
.status b.running { color: var(--warn); }
.cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; }
@media (max-width: 640px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.card { background: var(--card); border-radius: 8px; padding: 12px 14px;
  border-left: 4px solid var(--muted); }
.card.ok { border-left-color: var(--ok); }
.card.bad { border-left-color: var(--bad); }
.card.warn { border-left-color: var(--warn); }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; }
.card .value { font-size: 24px; font-weight: 650; display: block; margin: 2px 0; }
.card .note { font-size: 12px; color: var(--muted); }
.attention { list-style: none; padding: 0; margin: 0; }
.attention > li { padding: 8px 12px; margin: 6px 0; border-radius: 6px;
  background: #fff4e5; border-left: 4px solid var(--warn); }
.attention > li.bad { background: #fdecea; border-left-color: var(--bad); }
.attention > li.fine { background: #edf7ed; border-left-color: var(--ok); }
.attention ul { margin: 4px 0 0; padding-left: 20px; }
figure.chart { margin: 0; }
figure.chart svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--card); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.k { white-space: nowrap; }
td.t { overflow-wrap: anywhere; }
.flag { color: var(--bad); font-weight: 650; white-space: nowrap; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px;
  border-top: 1px solid var(--line); padding-top: 10px; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  main { padding: 0; max-width: none; }
  section { break-inside: avoid; }
  h2 { break-after: avoid; }
  .card, .attention li, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def text(value: object, limit: int = 120) -> str:
    """Untrusted text, safe in an HTML element or a quoted attribute."""
    return html.escape(safe(value, limit), quote=True)


def figures_json(figures: dict[str, Any]) -> str:
    """The figures as a JSON data block. `<`, `>` and `&` escaped as JSON escapes, so no value
    (an error message is one) can close the block or open a comment: the same JSON to a
    parser, and the browser never runs it (its type is not JavaScript)."""
    data = json.dumps(figures, ensure_ascii=True, sort_keys=True, indent=1)
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _figure(path: str, value: Any, shown: str, cls: str = "value") -> str:
    """A figure as shown, tagged with where it is in stats' JSON and its exact value, so a
    test (or a reader's tool) can check the one against the other."""
    raw = json.dumps(value)
    return (
        f'<span class="{cls}" data-figure="{html.escape(path)}" '
        f'data-raw="{html.escape(raw, quote=True)}">{html.escape(shown)}</span>'
    )


def _card(label: str, value: str, note: str = "", tone: str = "") -> str:
    cls = f"card {tone}".strip()
    return (
        f'<div class="{cls}"><span class="label">{html.escape(label)}</span>{value}'
        f'<span class="note">{note}</span></div>'
    )


def cards(report: Report) -> str:
    f = report.figures
    r = f["recipients"]
    lat = f["latency"]["queued_to_delivered"]
    rate = f["delivery_rate"]
    rate_tone = "" if rate is None else "ok" if rate >= 0.9 else "warn" if rate >= 0.75 else "bad"
    open_now = open_count(f)
    spent: dict[str, float] = {}
    wasted: dict[str, float] = {}
    for c in report.view.costs:
        key = safe(c.currency or "?", 12)
        spent[key] = spent.get(key, 0.0) + c.spent
        wasted[key] = wasted.get(key, 0.0) + c.wasted
    parts = [
        _card(
            "Recipients",
            f'<span class="value">{number(total_count(f))}</span>',
            "announced by the gateways, or seen",
        ),
        _card(
            "Delivery rate",
            _figure("delivery_rate", rate, percent(rate)),
            "of the recipients that are final",
            rate_tone,
        ),
        _card(
            "Delivered",
            _figure("recipients.delivered", r["delivered"], number(r["delivered"])),
            "",
            "ok",
        ),
        _card(
            "Failed",
            _figure("recipients.failed", r["failed"], number(r["failed"])),
            "see the failure codes below",
            "bad" if r["failed"] else "",
        ),
        _card(
            "Not final yet",
            f'<span class="value">{number(open_now)}</span>',
            f"queued {number(r['queued'])} · processing {number(r['processing'])} · "
            f"sent {number(r['sent'])}",
            "warn" if open_now else "ok",
        ),
        _card(
            "Time to delivery",
            _figure(
                "latency.queued_to_delivered.p50_ms", lat["p50_ms"], milliseconds(lat["p50_ms"])
            ),
            "median, queued → delivered; 95% within "
            + _figure(
                "latency.queued_to_delivered.p95_ms",
                lat["p95_ms"],
                milliseconds(lat["p95_ms"]),
                "inline",
            ),
        ),
        _card(
            "Messages",
            _figure("messages", f["messages"], number(f["messages"])),
            _figure("events", f["events"], number(f["events"]), "inline") + " webhook events",
        ),
        _card(
            "Cost",
            f'<span class="value">{text(_amounts(spent) or "-", 60)}</span>',
            f"{text(_amounts(wasted), 60)} of it on failed recipients" if spent else "",
        ),
    ]
    return '<section class="cards" aria-label="headline figures">' + "".join(parts) + "</section>"


def _amounts(by_currency: dict[str, float]) -> str:
    return ", ".join(money(v, c) for c, v in sorted(by_currency.items()))


def status_line(report: Report) -> str:
    s = report.summary
    if s.finished:
        state = '<b class="done">Finished</b>: every message is final.'
    elif s.messages == 0:
        state = "<b>No messages</b> stored yet."
    else:
        state = (
            f'<b class="running">In progress</b>: {percent(round(s.progress, 4))} of recipients '
            f"final; {html.escape(pace(report))}."
        )
    return f'<p class="status">{state}</p>'


def attention_section(report: Report) -> str:
    items = []
    for item in attention(report, text):
        details = "".join(f"<li>{html.escape(d)}</li>" for d in item.details)
        items.append(
            f'<li class="{item.tone}"><b>{html.escape(item.title)}</b>: {item.text}'
            + (f"<ul>{details}</ul>" if details else "")
            + "</li>"
        )
    return (
        '<section id="attention"><h2>Needs attention</h2>'
        f'<ul class="attention">{"".join(items)}</ul></section>'
    )


def _chart(name: str, title: str, svg: str, caption: str) -> str:
    return (
        f'<section id="{name}"><h2>{html.escape(title)}</h2>'
        f'<figure class="chart" data-chart="{name}">{svg}'
        f"<figcaption>{caption}</figcaption></figure></section>"
    )


def _table(head: list[tuple[str, str]], rows: list[list[str]], empty: str) -> str:
    """Columns are (title, kind): "n" a number (right, never wrapped), "k" a keyword such as a
    code (never wrapped), "t" text (wrapped anywhere, as hostile text may have no spaces)."""
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    ths = "".join(f'<th class="{kind}">{h}</th>' for h, kind in head)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{kind}">{c}</td>' for c, (_, kind) in zip(row, head, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>"


def states_table(report: Report) -> str:
    r = report.figures["recipients"]
    total = total_count(report.figures)
    rows = [
        [
            s.value,
            _figure(f"recipients.{s.value}", r[s.value], number(r[s.value]), "inline"),
            percent(round(r[s.value] / total, 4)) if total else "-",
        ]
        for s in FUNNEL
    ]
    return _table([("state", "k"), ("recipients", "n"), ("share", "n")], rows, "")


def latency_table(report: Report) -> str:
    lat = report.figures["latency"]
    rows = []
    for key, label in (
        ("queued_to_sent", "queued → sent"),
        ("sent_to_delivered", "sent → delivered"),
        ("queued_to_delivered", "queued → delivered"),
    ):
        p = lat[key]
        rows.append(
            [
                label,
                number(p["count"]),
                milliseconds(p["p50_ms"]),
                milliseconds(p["p95_ms"]),
            ]
        )
    return _table(
        [("leg", "t"), ("recipients", "n"), ("median", "n"), ("95th percentile", "n")],
        rows,
        "",
    )


def failures_table(report: Report) -> str:
    failed = max(int(report.figures["recipients"]["failed"]), 1)
    rows = []
    for f, info in report.failures:
        rows.append(
            [
                text(f.provider, 20),
                f"<code>{text(f.error_code or '(none)', 20)}</code>",
                number(f.count),
                percent(round(f.count / failed, 4)),
                text(info.title if info else "no code given", 60),
                text(info.retry if info else "-", 10),
                text(info.action if info else "", 400),
                text(f.error_message, 160),
            ]
        )
    return _table(
        [
            ("gateway", "k"),
            ("code", "k"),
            ("recipients", "n"),
            ("of failures", "n"),
            ("meaning", "t"),
            ("retry?", "k"),
            ("what to do", "t"),
            ("latest message from the gateway", "t"),
        ],
        rows,
        "No recipient failed.",
    )


def delivery_table(rows: list[CarrierRow], label: str, regions: bool, limit: int = 30) -> str:
    out = []
    for r in rows[:limit]:
        key = r.key or "(none)"
        if regions and r.key:
            key = f"{key} {region_of(r.key)}".strip()
        flag = ' <span class="flag">▼ falling</span>' if r.falling else ""
        out.append(
            [
                text(key, 40),
                number(r.recipients),
                number(r.delivered),
                number(r.failed),
                percent(_round(r.rate)),
                percent(_round(r.recent_rate)) + flag,
                percent(_round(r.earlier_rate)),
            ]
        )
    note = ""
    if len(rows) > limit:
        note = f'<p class="empty">{len(rows) - limit} more not shown.</p>'
    return (
        _table(
            [
                (label, False),
                ("recipients", "n"),
                ("delivered", "n"),
                ("failed", "n"),
                ("delivery rate", "n"),
                ("recent", "n"),
                ("earlier", "n"),
            ],
            out,
            "No recipients yet.",
        )
        + note
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def cost_table(report: Report) -> str:
    rows = [
        [
            text(c.provider, 20),
            text(c.currency or "?", 12),
            money(c.spent, None),
            money(c.wasted, None),
            "-" if c.per_delivered is None else f"{c.per_delivered:,.4f}",
        ]
        for c in report.view.costs
    ]
    return _table(
        [
            ("gateway", "k"),
            ("currency", "k"),
            ("spent", "n"),
            ("on failed recipients", "n"),
            ("per delivered", "n"),
        ],
        rows,
        "The gateways reported no cost.",
    )


def header(report: Report) -> str:
    s = report.summary
    kind = "SMS delivery report" if report.campaign is None else "SMS campaign report"
    seen = ""
    if report.first_event_at is not None:
        seen = f"<span>{when(report.first_event_at)} → {when(report.last_event_at)}</span>"
    gateways = ", ".join(s.providers) or "-"
    grouped = "" if report.campaign is None else f"<span>grouped by {text(s.source, 20)}</span>"
    return (
        f'<header><p class="kicker">{kind}</p><h1>{text(report.title, 200)}</h1>'
        f'<p class="meta"><span>generated {when(report.generated_at)}</span>'
        f"<span>database {text(report.database, 200)}</span>"
        f"<span>gateways {text(gateways, 60)}</span>{grouped}{seen}</p></header>"
    )


def page(report: Report) -> str:
    """The whole page."""
    from smswatch.campaigns.report_charts import charts

    drawn = charts(report)
    tl = report.timeline
    step = "" if tl is None else f"Each bar is {microseconds(tl.step)} of event time. "
    title = "SMS report: " + safe(report.title, 80)
    body = [
        header(report),
        status_line(report),
        cards(report),
        attention_section(report),
        _chart(
            "delivery",
            "Delivery over time",
            drawn["delivery"],
            f"{step}Green: delivered; red: failed; grey line: sent (handed to the carrier).",
        ),
        _chart(
            "latency",
            "Time to delivery",
            drawn["latency"],
            "How many recipients were delivered after how long, from the gateway queueing the "
            "message and from the carrier taking it. Dashed: median; dotted: 95th percentile.",
        ),
        '<section id="latency-table">' + latency_table(report) + "</section>",
        '<section id="states"><h2>Recipients by state</h2>' + states_table(report) + "</section>",
        '<section id="failures"><h2>Failures by code</h2>' + failures_table(report) + "</section>",
        '<section id="carriers"><h2>Delivery by carrier</h2>'
        + delivery_table(report.view.carriers, "carrier", False)
        + '<p class="empty">Recent: the last third of the campaign\'s finals (at least 30 s); '
        "falling: 15 points or more below the earlier rate.</p></section>",
        '<section id="countries"><h2>Delivery by country</h2>'
        + delivery_table(report.view.countries, "country code", True)
        + "</section>",
        '<section id="cost"><h2>Cost</h2>' + cost_table(report) + "</section>",
        f"<footer>Made by smswatch {html.escape(__version__)}. The figures are those of "
        f"<code>{html.escape(stats_command(report))}</code> on the same data; they are in "
        "this page as JSON (<code>#smswatch-figures</code>).</footer>",
    ]
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="smswatch {html.escape(__version__)}">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{CSS}</style>"
        '<script type="application/json" id="smswatch-figures">'
        f"{figures_json(report.figures)}</script>"
        "</head><body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )
