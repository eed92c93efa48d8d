"""Human-readable `inspect` and `stats` output (Rich tables on stdout).

Every value that came from a webhook is wrapped in `Text(safe(...))`: Rich never parses it as
markup and the terminal never sees its control characters.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from smswatch.catalogue import explain
from smswatch.domain import FUNNEL, MessageState, RecipientState, State
from smswatch.sanitize import safe
from smswatch.store.reader import FailureGroup, Latency, Percentiles, Totals
from smswatch.timefmt import iso, span

STATE_STYLE = {
    State.QUEUED: "cyan",
    State.PROCESSING: "blue",
    State.SENT: "yellow",
    State.DELIVERED: "green",
    State.FAILED: "red",
    State.UNKNOWN: "magenta",
}


def console() -> Console:
    out = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = 160  # piped into a file or a pager: do not cut columns to 80
    return out


def t(value: Any, limit: int = 60, style: str = "") -> Text:
    return Text(safe(value, limit), style=style)


def state_text(state: State | None) -> Text:
    s = state or State.UNKNOWN
    return Text(s.value, style=STATE_STYLE[s])


def pct(p: Percentiles) -> str:
    if not p.count:
        return "-"
    return f"p50 {span(p.p50)}  p95 {span(p.p95)}  (n={p.count})"


def message_view(msg: MessageState, recipients: list[RecipientState], latency: Latency) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("message", t(msg.message_id, 80))
    head.add_row("gateway", Text(f"{msg.provider}  channel {safe(msg.channel) or '-'}"))
    cost = "-" if msg.total_cost is None else f"{msg.total_cost:g} {safe(msg.currency, 12)}"
    head.add_row("recipients", Text(f"{msg.expected_recipients}   cost {cost}"))
    counts = Text()
    for s in FUNNEL:
        counts.append(f"{s.value} {msg.count(s)}  ", style=STATE_STYLE[s])
    head.add_row("states", counts)
    if msg.conflicts:
        head.add_row(
            "conflicts",
            Text(
                f"{msg.conflicts} recipient(s) reported both delivered and failed", style="magenta"
            ),
        )
    if msg.metadata:
        head.add_row("metadata", t(msg.metadata, 120))
    head.add_row("queued→sent", Text(pct(latency.queued_to_sent)))
    head.add_row("sent→delivered", Text(pct(latency.sent_to_delivered)))
    head.add_row("seen", Text(f"{iso(msg.first_received_at)} … {iso(msg.last_received_at)}"))

    table = Table(expand=False, header_style="bold", title="recipients", title_justify="left")
    for name in ("recipient", "state", "carrier", "error", "sent after", "final after", "events"):
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    failures = Table(expand=False, header_style="bold", title="failures", title_justify="left")
    for name in ("recipient", "code", "meaning", "retry?", "gateway's message"):
        failures.add_column(name, overflow="fold")
    for r in recipients:
        to_sent, to_final = r.since_queued(msg.queued_at)
        state = state_text(r.state)
        if r.conflict:
            state.append(" !conflict", style="magenta")
        table.add_row(
            t(r.recipient, 24),
            state,
            t(r.carrier, 20),
            t(r.error_code, 8),
            Text(span(to_sent)),
            Text(span(to_final)),
            Text(str(r.events)),
        )
        info = explain(r.provider, r.error_code, r.retryable)
        if info:
            failures.add_row(
                t(r.recipient, 24),
                t(r.error_code, 8),
                t(info.title, 40),
                Text(info.retry),
                t(r.error_message, 160),
            )
    parts: list[Any] = [head, Text(""), table]
    if failures.row_count:
        parts += [Text(""), failures]
    return Group(*parts)


def stats_view(
    totals: Totals, failures: list[FailureGroup], latency: Latency, quarantined: int
) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    gateways = ", ".join(f"{p} {n}" for p, n in sorted(totals.by_provider.items())) or "-"
    head.add_row("events", Text(f"{totals.events}   ({gateways})"))
    head.add_row("messages", Text(f"{totals.messages}   in flight {totals.in_flight}"))
    counts = Text()
    for s in FUNNEL:
        counts.append(f"{s.value} {totals.funnel[s]}  ", style=STATE_STYLE[s])
    head.add_row("recipients", counts)
    done = totals.funnel[State.DELIVERED] + totals.funnel[State.FAILED]
    rate = f"{totals.funnel[State.DELIVERED] / done:.1%}" if done else "-"
    head.add_row("delivery rate", Text(rate))
    if totals.conflicts:
        head.add_row("conflicts", Text(str(totals.conflicts), style="magenta"))
    head.add_row("queued→sent", Text(pct(latency.queued_to_sent)))
    head.add_row("sent→delivered", Text(pct(latency.sent_to_delivered)))
    head.add_row(
        "received",
        Text(f"{iso(totals.first_received_at) or '-'} … {iso(totals.last_received_at) or '-'}"),
    )
    head.add_row("quarantined", Text(f"{quarantined} rejected request(s) kept"))
    parts: list[Any] = [head]
    if failures:
        table = Table(header_style="bold", title="failures by error code", title_justify="left")
        for name in ("gateway", "code", "name", "count", "retry?", "latest message"):
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        for f in failures:
            info = explain(f.provider, f.error_code, f.retryable)
            table.add_row(
                Text(f.provider),
                t(f.error_code or "-", 10),
                t(info.title if info else "-", 30),
                Text(str(f.count)),
                Text(info.retry if info else "-"),
                t(f.error_message, 40),
            )
        parts += [Text(""), table]
    return Group(*parts)
