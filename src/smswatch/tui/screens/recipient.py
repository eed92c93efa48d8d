"""One recipient's timeline: each event in event-time order with its raw JSON, and the error
code explained from the catalogue."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Static

from smswatch.catalogue import explain
from smswatch.datasource import RecipientDetail, SourceUnavailable
from smswatch.domain import FUNNEL, State
from smswatch.hub import Delta
from smswatch.sanitize import safe
from smswatch.store import StoredEvent
from smswatch.timefmt import iso, span
from smswatch.tui.format import mask, pretty_json, state_text, untrusted
from smswatch.tui.screens.base import AppScreen


class RecipientScreen(AppScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("r", "raw", "raw JSON on/off"),
    ]

    def __init__(self, message_id: str, recipient: str) -> None:
        super().__init__()
        self.message_id = message_id
        self.recipient = recipient
        self.detail: RecipientDetail | None = None
        self.show_raw = True
        self._reload: Timer | None = None

    def compose(self) -> ComposeResult:
        header = Static(id="recipient-header")
        yield header
        yield VerticalScroll(id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#timeline").focus()
        self.load()

    @work(exclusive=True, group="recipient")
    async def load(self) -> None:
        try:
            self.detail = await self.sw.source.recipient(self.message_id, self.recipient)
        except SourceUnavailable as exc:
            self.sw.not_connected(exc)
            return
        await self.show()

    def resync(self, _snapshot: object) -> None:
        self.load()

    async def show(self) -> None:
        header = self.query_one("#recipient-header", Static)
        who = safe(self.recipient, 60)
        header.border_title = f"Recipient {mask(who) if self.sw.masked else who}"
        d = self.detail
        timeline = self.query_one("#timeline", VerticalScroll)
        if d is None:
            header.update(Text("this recipient has no events in the database", style="bold"))
            return
        header.update(self.summary(d))
        timeline.border_title = f"Timeline — {len(d.events)} event(s) in event-time order"
        blocks = [
            Static(self.event_block(ev, i, d.events), classes="event")
            for i, ev in enumerate(d.events)
        ]
        async with timeline.batch():
            await timeline.remove_children()
            await timeline.mount_all(blocks)

    def summary(self, d: RecipientDetail) -> Group:
        r, pal = d.recipient, self.sw.palette
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(style="dim", width=12)
        grid.add_column(ratio=1)
        state = state_text(r.state, pal, bold=True)
        if r.conflict:
            state.append(
                "  ⚡ both delivered and failed were reported; the later one by event time wins",
                style=pal.state(State.UNKNOWN),
            )
        grid.add_row("message", Text(f"{safe(r.message_id, 60)}  ({r.provider})"))
        grid.add_row("state", state)
        grid.add_row("carrier", untrusted(r.carrier, 40) if r.carrier else Text("-", style="dim"))
        times = Text()
        start = r.first_at.get(State.QUEUED) or (d.message.queued_at if d.message else None)
        for s in FUNNEL:
            at = r.first_at.get(s)
            if at is None:
                continue
            times.append(f"{s.value} ", style=pal.state(s))
            times.append(iso(at) or "")
            if start is not None and at != start:
                times.append(f" (+{span(at - start)})", style="dim")
            times.append("   ")
        grid.add_row("reached", times)
        parts: list[Table | Text] = [grid]
        info = explain(r.provider, r.error_code, r.retryable)
        if info:
            err = Table.grid(padding=(0, 2), expand=True)
            err.add_column(style="dim", width=12)
            err.add_column(ratio=1)
            head = Text(
                f"{safe(r.error_code, 12)}  {info.title}", style=f"bold {pal.state(State.FAILED)}"
            )
            if info.group:
                head.append(f"  ({info.group})", style="dim")
            err.add_row("error", head)
            if r.error_message:
                err.add_row("gateway said", untrusted(r.error_message, 300))
            err.add_row("meaning", Text(info.meaning))
            err.add_row(
                "retry?",
                Text(f"{info.retry} — {info.action}", style="bold" if info.retry == "no" else ""),
            )
            if info.note:
                err.add_row("note", Text(info.note, style="dim"))
            parts += [Text(""), err]
        return Group(*parts)

    def event_block(self, ev: StoredEvent, index: int, events: list[StoredEvent]) -> Group:
        pal = self.sw.palette
        line = Text()
        line.append(f"{index + 1:>2}. ", style="dim")
        line.append(iso(ev.occurred_at) or "", style="bold")
        if ev.time_estimated:
            line.append(" ~", style="dim")
        line.append("  ")
        line.append(safe(ev.event_type, 40), style=f"bold {pal.state(ev.state)}")
        line.append("  → ")
        line.append(ev.state.value, style=pal.state(ev.state))
        delay = ev.received_at - ev.occurred_at
        line.append(f"   received {iso(ev.received_at)}", style="dim")
        if not ev.time_estimated:
            line.append(f" ({'+' if delay >= 0 else ''}{span(delay)} after)", style="dim")
        if index and ev.received_at < events[index - 1].received_at:
            line.append("  arrived out of order", style=pal.state(State.SENT))
        line.append(f"\n    event_id {safe(ev.event_id, 80)}", style="dim")
        if ev.time_estimated:
            line.append(
                "\n    no event time in the payload: the receive time stands in", style="dim"
            )
        if not self.show_raw:
            return Group(line)
        return Group(line, pretty_json(ev.payload, self.sw.masked))

    def live_update(self, delta: Delta) -> None:
        touched = any(
            t.event.message_id == self.message_id and t.event.recipient == self.recipient
            for t in delta.transitions
        )
        if touched and self._reload is None:
            self._reload = self.set_timer(0.3, self._reload_now)

    def _reload_now(self) -> None:
        self._reload = None
        self.load()

    async def refresh_styles(self) -> None:
        await self.show()

    async def action_raw(self) -> None:
        self.show_raw = not self.show_raw
        await self.show()
