"""Lists behind the alerts: rejected requests (with their bodies) and stuck recipients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Static

from smswatch.core.domain import RecipientState, State
from smswatch.core.records import Rejection
from smswatch.sanitize import safe
from smswatch.timefmt import clock, iso, span
from smswatch.tui.format import pretty_json, recipient_text, short_id, state_text, untrusted
from smswatch.tui.screens.base import AppScreen
from smswatch.tui.widgets.footer import KeyFooter
from smswatch.tui.widgets.rowtable import Column, RowTable


def body_preview(body: bytes | None, masked: bool) -> Text:
    if body is None:
        return Text("(no body was read)", style="dim")
    if not body:
        return Text("(empty body)", style="dim")
    try:
        return pretty_json(body.decode("utf-8"), masked, 8000)
    except UnicodeDecodeError:
        text = pretty_json(body.decode("utf-8", errors="replace"), masked, 8000)
        text.append("\n(not valid UTF-8: undecodable bytes shown as �)", style="dim")
        return text


class RejectionsScreen(AppScreen):
    """Every rejected request kept in the quarantine, newest first, with the body."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, code: str | None = None) -> None:
        super().__init__()
        self.code = code

    def compose(self) -> ComposeResult:
        table = RowTable(
            [
                Column("time", 8),
                Column("status", 6),
                Column("reason", 18),
                Column("from", 15, priority=2),
                Column("path", 20, priority=1),
                Column("detail", None, 10),
            ],
            self._cells,
            key=lambda r: (r.received_at, r.code, r.remote),
            empty="no rejected requests",
            id="rejections",
        )
        table.border_title = "Rejected requests" + (f" — {self.code}" if self.code else "")
        yield table
        body = Static(id="rejection-body")
        body.border_title = "Request"
        yield VerticalScroll(body, id="rejection-detail")
        yield KeyFooter()

    def _cells(self, r: Rejection) -> Sequence[Text]:
        return [
            Text(clock(r.received_at), style="dim"),
            Text(str(r.status), style=f"bold {self.sw.palette.state(State.FAILED)}"),
            Text(r.code),
            untrusted(r.remote, 40, "dim"),
            untrusted(r.path, 40, "dim"),
            untrusted(r.reason, 200),
        ]

    def on_mount(self) -> None:
        self.query_one(RowTable).focus()
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        stored = await self.sw.ask(self.sw.source.rejections(200)) or []
        live = list(reversed(self.sw.model.rejections))
        seen, rows = set(), []
        for r in [*live, *stored]:  # the live ones may not have reached the database yet
            key = (r.received_at, r.code, r.remote)
            if key in seen or (self.code and r.code != self.code):
                continue
            seen.add(key)
            rows.append(r)
        rows.sort(key=lambda r: r.received_at, reverse=True)
        try:
            table = self.query_one(RowTable)
        except NoMatches:
            return  # closed before the answer came (escape at once): nowhere to show it
        table.set_rows(rows)
        table.border_subtitle = f"{len(rows)} kept (the quarantine is bounded)"
        if rows:
            self.show(rows[0])

    @on(RowTable.Highlighted)
    @on(RowTable.Selected)
    def highlighted(self, event: RowTable.RowMessage) -> None:
        self.show(event.row)

    def show(self, r: Rejection) -> None:
        head = Text()
        head.append(f"{r.status} {r.code}", style=f"bold {self.sw.palette.state(State.FAILED)}")
        head.append(f"   {iso(r.received_at)}", style="dim")
        head.append(f"\n{safe(r.reason, 400)}\n", style="bold")
        facts = [
            ("from", r.remote),
            ("request", f"{r.method or '?'} {r.path or '?'}"),
            ("gateway", r.provider or "not determined"),
            ("content type", r.content_type or "none"),
            ("body size", f"{r.body_size:,} bytes" if r.body_size is not None else "unknown"),
        ]
        for name, value in facts:
            head.append(f"{name:>13}  ", style="dim")
            head.append(safe(value, 120) + "\n")
        body = body_preview(r.body, self.sw.masked)
        self.query_one("#rejection-body", Static).update(Group(head, body))


class StuckScreen(AppScreen):
    """Recipients still queued, processing or sent past their state's deadline, oldest first."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "back")]

    def compose(self) -> ComposeResult:
        table = RowTable(
            [
                Column("message", 14),
                Column("recipient", 18),
                Column("state", 11),
                Column("for", 8, align="right"),
                Column("carrier", None, 8, priority=1),
            ],
            self._cells,
            key=lambda r: r.key,
            empty="no stuck recipients",
            volatile=self._for,
            id="stuck",
        )
        deadlines = ", ".join(f"{s.value} {span(d)}" for s, d in self.sw.stuck_deadlines.items())
        table.border_title = f"Stuck recipients (deadlines: {deadlines})"
        yield table
        yield KeyFooter()

    def _for(self, r: RecipientState) -> str:
        return span(self.sw.clock() - r.state_at) if r.state_at else "-"

    def _cells(self, r: RecipientState) -> Sequence[Text]:
        return [
            Text(short_id(r.message_id, 14), style="dim"),
            recipient_text(r.recipient, self.sw.masked),
            state_text(r.state, self.sw.palette),
            Text(self._for(r)),
            untrusted(r.carrier, 30, "dim"),
        ]

    def on_mount(self) -> None:
        self.query_one(RowTable).focus()
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        stuck = await self.sw.ask(
            self.sw.source.stuck(self.sw.stuck_deadlines, self.sw.clock(), limit=500)
        )
        if stuck is None:
            return
        try:
            table = self.query_one(RowTable)
        except NoMatches:
            return  # closed before the answer came (escape at once): nowhere to show it
        table.set_rows(stuck.oldest)
        table.border_subtitle = (
            f"{stuck.count:,} stuck, oldest {len(stuck.oldest)} shown · enter: timeline"
        )

    @on(RowTable.Selected)
    def open(self, event: RowTable.Selected) -> None:
        self.sw.open_recipient(event.row.message_id, event.row.recipient)
