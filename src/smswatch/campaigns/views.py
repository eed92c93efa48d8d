"""Campaigns on a terminal (`campaign list`, `campaign show`): Rich renderables in which every
value from a webhook (campaign names come from sender metadata) is drawn as literal text."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from smswatch.campaigns.analysis import CampaignView, region_of
from smswatch.core.campaigns import CarrierRow, Summary
from smswatch.core.domain import shown_states
from smswatch.exports.console import STATE_STYLE, Fit, pct, t
from smswatch.sanitize import safe
from smswatch.timefmt import iso
from smswatch.words import plural


def percent(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def money(amounts: dict[str, float]) -> str:
    return ", ".join(f"{v:,.2f} {c}" for c, v in sorted(amounts.items())) or "-"


# Headers short enough for the figures under them, for a screen too narrow for the long ones.
SHORT = {
    "messages": "msgs",
    "recipients": "rcpts",
    "progress": "done",
    "queued": "q'd",
    "processing": "proc",
    "delivered": "dlvd",
    "failed": "fail",
    "unconfirmed": "unconf",
    "delivery": "rate",
    "last seen": "seen",
}


def campaigns_table(found: list[Summary]) -> Fit:
    table = Table(header_style="bold", title="campaigns", title_justify="left")
    for name in ("campaign", "from", "gateway"):
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for name in ("messages", "recipients", "progress"):
        table.add_column(name, justify="right")
    states = shown_states(lambda st: sum(s.counts[st] for s in found))
    for st in states:
        table.add_column(st.value, justify="right", style=STATE_STYLE[st])
    table.add_column("delivery", justify="right")
    table.add_column("last seen", no_wrap=True, overflow="ellipsis")
    for s in found:
        table.add_row(
            t(s.name, 40),
            Text(s.source),
            Text(", ".join(s.providers)),
            Text(f"{s.messages:,}"),
            Text(f"{s.recipients:,}"),
            Text("done" if s.finished else percent(s.progress)),
            *(Text(f"{s.counts[st]:,}") for st in states),
            Text(percent(s.delivery_rate)),
            Text(iso(s.last_received_at) or "-"),
        )
    if not found:
        table.caption = "no campaigns yet"
    # The name tells bursts of one day apart (lisoloo-20261207-031245): never cut either.
    drop = ("last seen", "from", "gateway", "processing", "queued", "progress")
    figures = ("messages", "recipients", "progress", *(st.value for st in states), "delivery")
    return Fit(table, ("campaign", *figures), SHORT, drop)


def _delivery_table(title: str, label: str, rows: list[CarrierRow], regions: bool) -> Fit:
    table = Table(header_style="bold", title=title, title_justify="left")
    table.add_column(label, no_wrap=True, overflow="ellipsis")
    figures = ("recipients", "delivered", "failed", "rate", "recent", "earlier")
    for name in figures:
        table.add_column(name, no_wrap=True, justify="right")
    for r in rows[:25]:
        key = r.key or "(none)"
        if regions and r.key:
            key = f"{key} {region_of(r.key)}"
        flag = Text(" ▼ falling", style="bold red") if r.falling else Text("")
        table.add_row(
            t(key, 30),
            Text(f"{r.recipients:,}"),
            Text(f"{r.delivered:,}"),
            Text(f"{r.failed:,}"),
            Text(percent(r.rate)),
            Text(percent(r.recent_rate)) + flag,
            Text(percent(r.earlier_rate)),
        )
    return Fit(table, figures, SHORT, drop=("earlier",))


def campaign_panel(view: CampaignView) -> Group:
    s = view.summary
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("campaign", t(s.name, 80))
    head.add_row("grouped by", Text(f"{s.source}   gateways {', '.join(s.providers)}"))
    head.add_row("messages", Text(f"{s.messages:,}   recipients {s.recipients:,}"))
    counts = Text()
    for st in shown_states(s.counts.__getitem__):
        counts.append(f"{st.value} {s.counts[st]:,}  ", style=STATE_STYLE[st])
    head.add_row("states", counts)
    head.add_row("progress", Text(f"{percent(s.progress)}   ETA {view.eta.label()}"))
    head.add_row(
        "now",
        Text(f"{view.sent_per_s:.1f} sent/s   {view.delivered_per_s:.1f} delivered/s"),
    )
    head.add_row("delivery rate", Text(percent(s.delivery_rate)))
    head.add_row("queued→sent", Text(pct(view.latency.queued_to_sent)))
    head.add_row("sent→delivered", Text(pct(view.latency.sent_to_delivered)))
    head.add_row("queued→delivered", Text(pct(view.latency.queued_to_delivered)))
    for c in view.costs:
        per = "-" if c.per_delivered is None else f"{c.per_delivered:,.4f}"
        head.add_row(
            f"cost ({c.provider})",
            Text(
                f"spent {c.spent:,.2f} {safe(c.currency or '', 12)}   wasted on failures "
                f"{c.wasted:,.2f}   per delivered {per}"
            ),
        )
    if s.conflicts:
        head.add_row("conflicts", Text(f"{s.conflicts:,}", style="magenta"))
    if view.stuck:
        stuck = plural(view.stuck, "recipient")
        head.add_row("stuck", Text(f"{stuck} past their deadline", style="red"))
    head.add_row("seen", Text(f"{iso(s.first_received_at)} … {iso(s.last_received_at)}"))
    failures = Table(header_style="bold", title="failures by code", title_justify="left")
    for name in ("gateway", "code", "count", "meaning", "retry?", "advice"):
        failures.add_column(name, overflow="fold")
    for f, info in view.failures:
        failures.add_row(
            Text(f.provider),
            t(f.error_code, 10),
            Text(f"{f.count:,}"),
            t(info.title if info else "-", 40),
            Text(info.retry if info else "-"),
            t(info.action if info else "", 80),
        )
    parts: list[object] = [
        head,
        Text(""),
        _delivery_table("delivery by carrier", "carrier", view.carriers, False),
        Text(""),
        _delivery_table("delivery by country", "prefix", view.countries, True),
    ]
    if view.failures:
        parts += [Text(""), failures]
    return Group(*parts)


def message_list(ids: list[str]) -> Text:
    """The campaign's message ids, one a line (to read, or to pipe into `inspect`)."""
    text = Text(plural(len(ids), "message"), style="bold")
    for mid in ids:
        text.append("\n")
        text.append(safe(mid, 200))
    return text
