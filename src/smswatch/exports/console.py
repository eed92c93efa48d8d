"""Human-readable `inspect` and `stats` output (Rich tables on stdout).

Every value that came from a webhook is wrapped in `Text(safe(...))`: Rich never parses it as
markup and the terminal never sees its control characters.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from smswatch.core.domain import MessageState, RecipientState, State, shown_states
from smswatch.core.figures import FailureGroup, Latency, Percentiles, Totals
from smswatch.gateways.catalogue import explain
from smswatch.sanitize import safe
from smswatch.timefmt import iso, span
from smswatch.words import plural

STATE_STYLE = {
    State.QUEUED: "cyan",
    State.PROCESSING: "blue",
    State.SENT: "yellow",
    State.DELIVERED: "green",
    State.FAILED: "red",
    State.UNCONFIRMED: "dark_orange",
    State.UNKNOWN: "magenta",
}


UNCUT = 100_000  # "as wide as it needs": no table here comes near it


def console() -> Console:
    """stdout. On a terminal its width (or COLUMNS, which Rich reads); piped into a file or a
    pager, unlimited unless COLUMNS says otherwise: what a script reads is never cut."""
    out = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        out.width = UNCUT
    return out


class Fit:
    """A table that makes room on a narrow screen without cutting a number. Over the width it
    first shortens the headers given in `short`, then leaves out the columns named in `drop`,
    in that order; then the text columns give what they can (they end in …, down to a few
    characters); then columns are left out from the right, and a caption says so. A column in
    `whole` (figures, and names that tell rows apart) keeps the width of its widest value: a
    figure is never shown cut."""

    TEXT_MIN = 12  # a text column is not squeezed below this (or its own width)

    def __init__(
        self,
        table: Table,
        whole: Sequence[str] = (),
        short: Mapping[str, str] | None = None,
        drop: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.whole = set(whole)
        self.short = dict(short or {})
        self.drop = list(drop)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fitted(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.fitted(console, options))

    def fitted(self, console: Console, options: ConsoleOptions) -> Table:
        table = copy.copy(self.table)
        table.columns = [copy.copy(c) for c in self.table.columns]
        names = {id(c): str(c.header) for c in table.columns}
        room = options.max_width
        wide = options.update_width(UNCUT)

        def full(column: Any) -> int:
            cells = [column.header, *column._cells]
            return max(Measurement.get(console, wide, c).maximum for c in cells)

        def least(column: Any) -> int:
            width = full(column)
            return width if names[id(column)] in self.whole else min(width, self.TEXT_MIN)

        def total(width: Callable[[Any], int]) -> int:
            return table._extra_width + sum(
                width(c) + table._get_padding_width(i) for i, c in enumerate(table.columns)
            )

        left_out = []

        def leave_out(column: Any) -> None:
            left_out.append(column)
            table.columns = [c for c in table.columns if c is not column]
            for i, c in enumerate(table.columns):
                c._index = i

        if total(full) <= room:
            return table
        for column in table.columns:
            column.header = self.short.get(names[id(column)], column.header)
        for name in self.drop:
            if total(full) <= room:
                break
            for column in [c for c in table.columns if names[id(c)] == name]:
                leave_out(column)
        while len(table.columns) > 1 and total(least) > room:
            leave_out(table.columns[-1])
        if left_out:
            shown = ", ".join(names[id(c)] for c in left_out)
            table.caption = f"left out to fit: {shown} (a wider terminal, or --json, shows them)"
        # What is still too wide comes out of the text columns, the widest first.
        excess = total(full) - room
        texts = [c for c in table.columns if names[id(c)] not in self.whole]
        widths = {id(c): full(c) for c in texts}
        while excess > 0:
            widest = max(texts, key=lambda c: widths[id(c)], default=None)
            if widest is None or widths[id(widest)] <= least(widest):
                break
            widths[id(widest)] -= 1
            excess -= 1
        for column in texts:
            if widths[id(column)] < full(column):
                column.width = widths[id(column)]
                column.no_wrap, column.overflow = True, "ellipsis"
        for column in table.columns:
            if names[id(column)] in self.whole:
                column.min_width = full(column)
                column.no_wrap = True
        return table


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
    for s in shown_states(msg.count):
        counts.append(f"{s.value} {msg.count(s)}  ", style=STATE_STYLE[s])
    head.add_row("states", counts)
    if msg.conflicts:
        head.add_row(
            "conflicts",
            Text(
                f"{plural(msg.conflicts, 'recipient')} reported both delivered and failed",
                style="magenta",
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
    whole = ("recipient", "state", "error", "sent after", "final after", "events")
    short = {"sent after": "→sent", "final after": "→final"}
    parts: list[Any] = [head, Text(""), Fit(table, whole, short, drop=("carrier",))]
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
    head.add_row("messages", Text(f"{totals.messages:,}   in flight {totals.in_flight:,}"))
    counts = Text()
    for s in shown_states(totals.funnel.__getitem__):
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
    head.add_row("quarantined", Text(f"{plural(quarantined, 'rejected request')} kept"))
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
        whole = ("gateway", "code", "count", "retry?")
        parts += [Text(""), Fit(table, whole, drop=("latest message", "name"))]
    return Group(*parts)
