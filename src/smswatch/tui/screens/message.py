"""One message: totals, cost, latency percentiles, and every recipient with its own filter."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Input, Static

from smswatch.core.domain import MessageState, RecipientState, State, shown_states
from smswatch.core.figures import Percentiles
from smswatch.core.live import Delta
from smswatch.gateways.catalogue import explain
from smswatch.sanitize import safe
from smswatch.source.api import MessageDetail, SourceUnavailable
from smswatch.timefmt import span
from smswatch.tui.format import (
    Flow,
    cost,
    labelled,
    literal,
    moments,
    recipient_text,
    state_bar,
    state_text,
    untrusted,
)
from smswatch.tui.screens.base import AppScreen
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.footer import KeyFooter
from smswatch.tui.widgets.rowtable import Column, RowTable
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.tui.app import SmsWatchApp


def percentiles_text(p: Percentiles) -> Text:
    if not p.count:
        return Text("-", style="dim")
    text = Text()
    text.append("p50 ", style="dim")
    text.append(span(p.p50), style="bold")
    text.append("  p95 ", style="dim")
    text.append(span(p.p95), style="bold")
    text.append(f"  (n={p.count:,})", style="dim")
    return text


def gateway_counts(m: MessageState, pal: Palette, at: str) -> list[Text]:
    """The gateway's counts (its status API, last poll, at `at`) beside the webhooks', and
    the gap: the parts of one line."""
    gateway = Text("gateway: ", style="dim")
    gateway.append(f"{m.gateway_delivered or 0:,} delivered, {m.gateway_failed or 0:,} failed")
    if m.gateway_pending:
        gateway.append(f", {m.gateway_pending:,} pending")
    gateway.append(";", style="dim")
    ours = Text("webhooks: ", style="dim")
    ours.append(f"{m.counts[State.DELIVERED]:,} delivered, {m.counts[State.FAILED]:,} failed")
    missing = m.missing or 0
    if missing:
        gap = Text(
            f"→ {plural(missing, 'delivery report')} missing",
            style=f"bold {pal.state(State.FAILED)}",
        )
    else:
        gap = Text("→ none missing", style=pal.state(State.DELIVERED))
    return [gateway, ours, gap, Text(f"(as of {at})", style="dim")]


LABEL = 13  # the header's label columns: "queued → sent"


class RecipientsTable(RowTable):
    def __init__(self, app: SmsWatchApp) -> None:
        self.sw = app
        self.queued_at: int | None = None
        super().__init__(
            [
                Column("recipient", 18, 12),
                Column("state", 18),
                Column("carrier", 14, priority=3),
                Column("error", 7, priority=2),
                Column("meaning", None, 10, priority=4),
                Column("sent after", 10, align="right", priority=5),
                Column("final after", 11, align="right", priority=1),
                Column("events", 6, align="right", priority=6),
            ],
            self._cells,
            key=lambda r: r.recipient,
            empty="no recipients yet",
            id="recipients",
        )

    def _cells(self, r: RecipientState) -> Sequence[Text]:
        pal = self.sw.palette
        to_sent, to_final = r.since_queued(self.queued_at)
        state = state_text(r.state, pal)
        if r.conflict:
            state.append(" ⚡conflict", style=pal.state(State.UNKNOWN))
        if r.polled:
            state.append(" ⟲polled", style=pal.state(State.PROCESSING))
        info = explain(r.provider, r.error_code, r.retryable)
        meaning = (
            Text(safe(info.title, 40) + f" · retry {info.retry}", style="dim") if info else Text("")
        )
        return [
            recipient_text(r.recipient, self.sw.masked),
            state,
            untrusted(r.carrier, 20, "dim"),
            untrusted(r.error_code, 8, pal.state(State.FAILED)),
            meaning,
            Text(span(to_sent), style="dim"),
            Text(span(to_final)),
            Text(str(r.events), style="dim"),
        ]


class MessageScreen(AppScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back"),
        Binding("slash", "filter", "filter"),
        Binding("f", "failures", "failures", tooltip="only failed or conflicting recipients"),
        Binding("p", "poll", "poll", tooltip="ask the gateway's status API now"),
    ]

    def __init__(self, message_id: str) -> None:
        super().__init__()
        self.message_id = message_id
        self.detail: MessageDetail | None = None
        self.query_text = ""
        self.failed_only = False
        self._reload: Timer | None = None
        self.shown_at: float | None = None  # perf_counter of the first frame with the data

    def compose(self) -> ComposeResult:
        header = Static(id="message-header")
        header.border_title = f"Message {literal(self.message_id, 60)}"
        yield header
        table = RecipientsTable(self.sw)
        table.border_title = "Recipients"
        yield table
        box = Input(
            placeholder="filter recipients: phone, state, error code, carrier — esc clears",
            id="recipient-filter",
        )
        box.display = False
        yield box
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(RecipientsTable).focus()
        if self.message_id:
            self.load()

    def show_message(self, message_id: str, detail: MessageDetail | None) -> None:
        """Point this (already built) screen at another message, with its data already loaded:
        building a screen costs more than loading a thousand recipients, so the app keeps one
        and reuses it."""
        self.message_id = message_id
        self.detail = detail
        self.query_text = ""
        self.failed_only = False
        self.shown_at = None
        self.query_one(
            "#message-header", Static
        ).border_title = f"Message {literal(message_id, 60)}"
        box = self.query_one("#recipient-filter", Input)
        box.value = ""
        box.display = False
        table = self.query_one(RecipientsTable)
        table.set_rows([])
        table.cursor = 0
        table.focus()
        if detail is None:
            self.missing()
        else:
            self.show()

    @work(exclusive=True, group="message")
    async def load(self) -> None:
        try:
            detail = await self.sw.source.message(
                self.message_id, self.query_text, self.failed_only
            )
        except SourceUnavailable as exc:
            self.sw.not_connected(exc)
            return
        if detail is None:
            self.missing()
            return
        self.detail = detail
        self.show()

    def missing(self) -> None:
        self.query_one("#message-header", Static).update(
            Text(f"no message {safe(self.message_id, 60)} in the database", style="bold")
        )

    def show(self) -> None:
        d = self.detail
        if d is None:
            return
        self.query_one("#message-header", Static).update(self.header(d))
        table = self.query_one(RecipientsTable)
        table.queued_at = d.message.queued_at
        table.set_rows(d.recipients)
        shown = f"{len(d.recipients):,}"
        if d.shown_of > len(d.recipients):
            more = "+" if self.query_text or self.failed_only else ""
            shown += f" of {d.shown_of:,}{more} (filter to narrow)"
        what = []
        if self.query_text:
            what.append(f"matching {safe(self.query_text, 30)!r}")
        if self.failed_only:
            what.append("failed or conflicting")
        table.border_title = " ".join(["Recipients", *what])
        table.border_subtitle = f"{shown} · enter: timeline"
        table.set_empty("no recipient matches" if what else "no recipient has reported yet")
        if self.shown_at is None:
            self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        self.shown_at = time.perf_counter()

    def header(self, d: MessageDetail) -> Group:
        """Pairs of facts side by side where they fit; the states, the metadata and the
        reconciliation on lines of their own, flowed so no count is parted from its name."""
        m, pal = d.message, self.sw.palette
        inner = max(self.size.width - 4, 40)  # the panel's border and padding
        value = (inner - 2 * LABEL - 3 * 2) // 2  # one of the two value columns
        wide = value >= 36
        gateway = Text(m.provider)
        if m.channel:
            gateway.append(f" · {safe(m.channel, 12)}", style="dim")
        status = (
            Text("finished", style=pal.state(State.DELIVERED))
            if m.finished
            else Text("in flight", style="bold")
        )
        states = [
            Text(f"{s.value} {m.count(s):,}", style=pal.state(s)) for s in shown_states(m.count)
        ]
        if m.conflicts:
            states.append(Text(f"⚡ {plural(m.conflicts, 'conflict')}", pal.state(State.UNKNOWN)))
        now = self.sw.clock()
        first, last = moments([m.first_received_at, m.last_received_at], now, seconds=True)
        (polled,) = moments([m.gateway_at], now)
        seen = Text(f"{first} … {last}", style="dim")
        q_sent = ("queued → sent", percentiles_text(d.latency.queued_to_sent))
        s_deliv = ("sent → deliv.", percentiles_text(d.latency.sent_to_delivered))
        pairs = [
            ("gateway", gateway, "recipients", Text(f"{m.expected_recipients:,}")),
            ("status", status, "cost", Text(cost(m))),
            ("progress", state_bar(m, min(30, value - 2), pal), "events", Text(f"{m.events:,}")),
        ]
        lines: list[tuple[str, Text]] = []
        if wide:
            pairs += [(*q_sent, *s_deliv), ("received", seen, "", Text(""))]
        else:
            lines += [q_sent, s_deliv, ("received", seen)]
        lines.append(("states", Flow(states)))
        if m.metadata:
            lines.append(("metadata", untrusted(m.metadata, 200)))
        if m.gateway_at is not None:
            lines.append(("reconciled", Flow(gateway_counts(m, pal, polled))))
        return labelled(pairs, lines, LABEL)

    def on_resize(self) -> None:
        self.show()  # the header's layout follows the width

    def live_update(self, delta: Delta) -> None:
        if any(m.message_id == self.message_id for m in delta.messages) and self._reload is None:
            # At most two reloads a second, however busy the message is.
            self._reload = self.set_timer(0.5, self._reload_now)

    def _reload_now(self) -> None:
        self._reload = None
        self.load()

    def refresh_styles(self) -> None:
        self.show()

    def resync(self, _snapshot: object) -> None:
        if self.message_id:
            self.load()

    # --- keys -----------------------------------------------------------------------------

    def action_back(self) -> None:
        box = self.query_one("#recipient-filter", Input)
        if box.display or self.query_text:
            box.value = ""
            box.display = False
            self.query_text = ""
            self.query_one(RecipientsTable).focus()
            self.load()
        else:
            self.app.pop_screen()

    def action_filter(self) -> None:
        box = self.query_one("#recipient-filter", Input)
        box.display = True
        box.focus()

    def action_failures(self) -> None:
        self.failed_only = not self.failed_only
        self.load()

    @work(exclusive=True, group="poll")
    async def action_poll(self) -> None:
        """Ask the gateway's status API about this message now, and store the answer."""
        if not self.message_id:
            return
        try:
            result = await self.sw.source.poll_now(self.message_id)
        except SourceUnavailable as exc:
            self.app.notify(str(exc), title="Not polled", severity="warning", markup=False)
            return
        if result.error:
            self.app.notify(result.error, title="Poll failed", severity="error", markup=False)
        elif not result.found:
            self.app.notify("the gateway does not know this message", title="Polled")
        else:
            what = "a new answer, stored" if result.stored else "nothing new"
            self.app.notify(f"{result.provider}: {what}", title="Polled", timeout=4)
        self.load()

    @on(Input.Changed, "#recipient-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.load()

    @on(Input.Submitted, "#recipient-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#recipient-filter", Input).display = bool(event.value)
        self.query_one(RecipientsTable).focus()

    @on(RowTable.Selected, "#recipients")
    def open_recipient(self, event: RowTable.Selected) -> None:
        self.sw.open_recipient(self.message_id, event.row.recipient)
