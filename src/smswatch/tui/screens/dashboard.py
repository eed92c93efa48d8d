"""The dashboard: status bar, funnel, failures & alerts, in-flight messages, live transitions."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input

from smswatch.core.domain import MessageState, State
from smswatch.core.live import Delta
from smswatch.sanitize import safe
from smswatch.source.api import Connection, Snapshot, SourceUnavailable
from smswatch.timefmt import age
from smswatch.tui.alert_rules import Alert, Standing, alerts, newly_rejected, raises_alert, standing
from smswatch.tui.format import cost, literal, short_id, state_bar
from smswatch.tui.screens.base import AppScreen
from smswatch.tui.widgets.alerts import AlertsPanel
from smswatch.tui.widgets.campaigns import CampaignsTable
from smswatch.tui.widgets.footer import KeyFooter
from smswatch.tui.widgets.funnel import Funnel
from smswatch.tui.widgets.rowtable import Column, RowTable
from smswatch.tui.widgets.status import StatusBar
from smswatch.tui.widgets.transitions import Entry, TransitionLog
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.tui.app import SmsWatchApp

# The live log follows every hub delta (ten a second under load). What summarises (the pulse
# line, funnel, alerts, the counts of the messages the in-flight table already lists) follows
# at most twice a second, as the message screen does: redrawn on every delta it was half of the
# UI thread's drawing at 50 events/s, for changes no one reads at ten a second.
SUMMARY_EVERY_S = 0.5
CAMPAIGNS_EVERY_S = 2.0
# Fewer rows than this: the status bar takes two lines, not four or more, and the in-flight
# table as many rows as the live log.
SHORT_BELOW = 30
# The whole status bar (a line per gateway, the pulse and the polling lines) may take at most
# this share of the rows: past it, the short form, however tall the terminal, so that each new
# gateway does not take its line from the panels. A sixth: five gateways' URLs to paste still
# show whole at 160x45, where a user sets a campaign up.
STATUS_SHARE = 1 / 6

# Whole in the box at 80 columns (cut, it lost "esc clears"); esc is in the footer too.
FILTER_HELP = "any part of id, phone, state, code, carrier, gateway, campaign · esc clear"


def set_titles(widget: Widget, title: str, subtitle: str) -> None:
    """Setting a border title repaints the whole widget in Textual, even to the same text: set
    them only when they change, or every tick redraws every line of the panel."""
    if widget.border_title != title:
        widget.border_title = title
    if widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle


class MessagesTable(RowTable):
    def __init__(self, app: SmsWatchApp, id: str = "messages") -> None:
        self.sw = app
        super().__init__(
            [
                Column("message", None, 10),
                Column("gateway", 8, priority=4),
                Column("rcpts", 6, align="right"),
                Column("progress", 12, priority=2),
                Column("queued", 6, align="right", priority=5),
                Column("proc", 5, align="right", priority=6),
                Column("sent", 5, align="right", priority=3),
                Column("deliv", 6, align="right"),
                Column("failed", 6, align="right"),
                Column(
                    "unconf",
                    6,
                    align="right",
                    priority=1,
                    shown_if=lambda m: m.count(State.UNCONFIRMED) > 0,
                ),
                Column("age", 6, align="right", priority=1),
                Column("cost", 10, align="right", priority=7),
            ],
            self._cells,
            key=lambda m: m.message_id,
            empty="no messages in flight — waiting for webhooks",
            volatile=self._age,
            id=id,
        )

    def _age(self, m: MessageState) -> str:
        return age(self.sw.clock(), m.first_received_at)

    def _cells(self, m: MessageState) -> Sequence[Text]:
        pal = self.sw.palette

        def n(state: State) -> Text:
            value = m.count(state)
            return Text(f"{value:,}" if value else "·", style=pal.state(state) if value else "dim")

        ident = Text(short_id(m.message_id, 40))
        if m.finished:
            ident.stylize("dim")
        return [
            ident,
            Text(m.provider, style="dim"),
            Text(f"{m.expected_recipients:,}"),
            state_bar(m, 12, pal),
            n(State.QUEUED),
            n(State.PROCESSING),
            n(State.SENT),
            n(State.DELIVERED),
            n(State.FAILED),
            n(State.UNCONFIRMED),
            Text(self._age(m), style="dim"),
            Text(cost(m), style="dim"),
        ]


class DashboardScreen(AppScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "filter"),
        Binding("f", "failures", "failures", tooltip="only messages with failures"),
        Binding("space", "pause", "pause"),
        Binding("c", "campaigns", "campaigns"),
        Binding("escape", "clear_filter", "clear filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self.failed_only = False
        self.search_rows: dict[str, MessageState] | None = None
        self._campaigns_empty: str | None = None
        self._debounce: Timer | None = None
        self._failed_seen = -1
        self._codes_seen: set[str] = set()
        # The summary panels follow the deltas at most every SUMMARY_EVERY_S (see live_update).
        self._summary_at = 0.0
        self._summary_timer: Timer | None = None
        self._standing = Standing()  # what the alerts last drawn stood on
        self._campaigns_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        sw = self.sw
        yield StatusBar(sw.source.info, lambda: sw.palette)
        with Horizontal(id="body"):
            with Vertical(id="left"):
                funnel = Funnel(lambda: sw.palette, id="funnel")
                funnel.border_title = "Recipients"
                yield funnel
                alerts = AlertsPanel(lambda: sw.palette, id="alerts")
                alerts.border_title = "Failures & alerts"
                yield alerts
            with Vertical(id="right"):
                campaigns = CampaignsTable(lambda: sw.palette, sw.clock, id="campaigns")
                campaigns.border_title = "Campaigns"
                campaigns.border_subtitle = "c: focus · enter: open"
                yield campaigns
                table = MessagesTable(sw)
                table.border_title = "In flight"
                table.border_subtitle = "enter: open"
                yield table
                log = TransitionLog(lambda: sw.palette, lambda: sw.masked, id="log")
                log.border_title = "Live transitions"
                yield log
        filter_input = Input(placeholder=FILTER_HELP, id="filter")
        filter_input.display = False
        yield filter_input
        yield KeyFooter()

    def on_mount(self) -> None:
        sw = self.sw
        self.query_one(TransitionLog).add(Entry.stored(e) for e in sw.snapshot.events)
        self.refresh_all()
        self.query_one(MessagesTable).focus()
        self.set_interval(1.0, self.tick)
        self.set_interval(2.0, self.refresh_failures)
        self.set_interval(5.0, self.refresh_stuck)
        self.refresh_failures()
        self.refresh_stuck()
        # After the first frame: reading every campaign of a big database would delay it.
        self._campaigns_timer = self.set_timer(0.3, self.refresh_campaigns)

    def on_resize(self) -> None:
        narrow = self.size.width < 110
        height = self.size.height
        whole = len(self.sw.source.info.gateways) + 2
        # A short screen shortens its panels; many gateways only the status bar (one line for
        # all their routes), so the panels keep their rows.
        self.set_class(narrow, "-narrow")
        self.set_class(height < SHORT_BELOW, "-short")
        short = height < SHORT_BELOW or whole > height * STATUS_SHARE
        status = self.query_one(StatusBar)
        status.set_class(narrow, "-narrow")
        if status.short != short:
            status.set_class(short, "-short")
            status.restyle()
        # The pulse line names the database by as much of its path as fits the new width.
        self.call_after_refresh(self.refresh_status)

    # --- live updates ---------------------------------------------------------------------

    def live_update(self, delta: Delta) -> None:
        log = self.query_one(TransitionLog)
        log.add((Entry.live(t) for t in delta.transitions), delta.dropped)
        if delta.dropped:
            # A burst larger than a delta carries: say so rather than look complete.
            log.border_subtitle = (
                f"{plural(log.dropped, 'line')} of bursts not listed — all stored; / finds them"
            )
        if self.search_rows is not None:
            for m in delta.messages:
                if m.message_id in self.search_rows:
                    self.search_rows[m.message_id] = m
        for r in newly_rejected(delta.rejections, self._codes_seen):
            self._codes_seen.add(r.code)
            self.app.notify(
                f"{r.status} {r.code} on {safe(r.path, 40)}: {safe(r.reason, 160)}",
                title="Webhook rejected",
                severity="error",
                timeout=10,
                markup=False,  # the reason quotes the request (its content type, say)
            )
        # The pulse line takes the new counts now and is drawn with the summary panels.
        self.refresh_status(draw=False)
        if raises_alert(delta, self._standing):
            self.refresh_summary()  # an alert (or its end): at once
            return
        if self._unlisted(delta):
            # The log just showed it: the table lists it too (its count follows the summary).
            self.refresh_messages(titles=False)
        wait = self._summary_at + SUMMARY_EVERY_S - time.monotonic()
        if wait <= 0:
            self.refresh_summary()
        elif self._summary_timer is None:
            # For the last changes of a burst. While deltas keep coming (ten a second), the one
            # after the due time comes first and draws in the same frame as the log: a timer
            # due exactly then added a frame of its own, twice a second.
            self._summary_timer = self.set_timer(wait + 0.2, self.refresh_summary)

    def _unlisted(self, delta: Delta) -> bool:
        """Whether the delta brings a message the in-flight table does not list yet."""
        if self.search_rows is not None or self.sw.paused:
            return False
        table = self.query_one(MessagesTable)
        return any(not table.has_key(m.message_id) for m in delta.messages)

    def tick(self) -> None:
        self.refresh_status()
        self.refresh_alerts()
        if not self.sw.paused:
            self.query_one(MessagesTable).refresh()  # ages move on

    def refresh_all(self) -> None:
        self.refresh_status()
        self.refresh_summary()
        # Not a delta's summary: the next delta's is drawn at once, not held back. At start the
        # snapshot's counters can lag the engine's (seen: the right event count with an empty
        # funnel), and the first delta brings the real ones.
        self._summary_at = 0.0

    def refresh_summary(self) -> None:
        """The pulse line, the funnel, the alerts and the in-flight table."""
        if self._summary_timer is not None:
            self._summary_timer.stop()
            self._summary_timer = None
        self._summary_at = time.monotonic()
        self._standing = standing(self.sw.model.counters)
        self.query_one(StatusBar).draw()
        self.query_one(Funnel).show(self.sw.model.counters)
        self.refresh_alerts()
        if not self.sw.paused:
            self.refresh_messages()

    def refresh_status(self, draw: bool = True) -> None:
        sw = self.sw
        self.query_one(StatusBar).show(
            sw.model.counters, sw.clock(), sw.paused, sw.masked, sw.connection, draw
        )

    def refresh_messages(self, titles: bool = True) -> None:
        try:
            table = self.query_one(MessagesTable)
        except NoMatches:
            return  # the app is closing: a search that was answered meanwhile has nowhere to go
        if self.search_rows is not None:
            rows = list(self.search_rows.values())
            title = f"Messages matching {safe(self.query_text, 30)!r}"
            table.set_empty("no message matches — esc clears the filter")
        else:
            rows = self.sw.model.in_flight(self.sw.clock(), self.failed_only)
            title = "In flight" + (" — with failures" if self.failed_only else "")
            table.set_empty(
                "no message with failures in flight"
                if self.failed_only
                else "no messages in flight — waiting for webhooks"
            )
        table.set_rows(rows)
        if not titles:
            return
        # finished_at is kept set exactly while a message is finished (the store resets it), and
        # is a field: the property costs two dict lookups a row, on thousands of rows a tick.
        finished = sum(1 for m in rows if m.finished_at is not None)
        set_titles(table, title, f"{len(rows)} shown, {finished} finished · enter: open")

    def refresh_alerts(self) -> None:
        sw = self.sw
        model, now = sw.model, sw.clock()
        found = alerts(
            model.counters,
            model.rejections_by_code(),
            model.stuck,
            model.failures,
            now=now,
            silence_after=sw.silence_after,
            can_resend=sw.can_resend,
        )
        self.query_one(AlertsPanel).set_rows(found)

    @work(exclusive=True, group="failures")
    async def refresh_failures(self) -> None:
        failed = self.sw.model.counters.funnel[State.FAILED]
        if failed == self._failed_seen or not self.sw.connected:
            return
        with contextlib.suppress(SourceUnavailable, NoMatches):  # NoMatches: the app quit meanwhile
            self.sw.model.failures = await self.sw.source.failures(20)
            self._failed_seen = failed
            self.refresh_alerts()

    @work(exclusive=True, group="stuck")
    async def refresh_stuck(self) -> None:
        if not self.sw.connected:
            return
        with contextlib.suppress(SourceUnavailable, NoMatches):  # NoMatches: the app quit meanwhile
            self.sw.model.stuck = await self.sw.source.stuck(
                self.sw.stuck_deadlines, self.sw.clock()
            )
            self.refresh_alerts()

    @work(exclusive=True, group="campaigns")
    async def refresh_campaigns(self) -> None:
        """The campaigns panel, from the store: every CAMPAIGNS_EVERY_S, or five times as long
        as the query took (a database of a million messages), so it never costs more than a
        fifth of a core; sooner when a new message arrived and the panel may lack its row."""
        started = time.monotonic()
        if self.sw.connected:
            with contextlib.suppress(SourceUnavailable):
                self.sw.model.campaigns = await self.sw.source.campaigns()
                self.show_campaigns()
        cost = time.monotonic() - started
        self._campaigns_timer = self.set_timer(
            max(CAMPAIGNS_EVERY_S, 5 * cost), self.refresh_campaigns
        )

    def show_campaigns(self) -> None:
        """The campaigns panel, with the `/` filter's rule: within the name or a gateway."""
        try:
            table = self.query_one(CampaignsTable)
        except NoMatches:
            return  # the app is closing, as in refresh_messages
        found = self.sw.model.campaigns
        needle = self.query_text.lower()
        shown = [c for c in found if any(needle in f.lower() for f in (c.name, *c.providers))]
        if self._campaigns_empty is None:
            self._campaigns_empty = table.empty  # the table's own, for when no filter is set
        table.set_empty(
            "no campaign matches — esc clears the filter" if needle else self._campaigns_empty
        )
        table.set_rows(shown)
        active = sum(1 for c in shown if not c.finished)
        run = self.sw.source.run_campaign()
        now = f"new messages join {literal(run, 30)} · " if run else ""
        title = f"Campaigns matching {safe(self.query_text, 30)!r}" if needle else "Campaigns"
        set_titles(
            table,
            f"{title} — {active} active of {len(shown)}" if found else title,
            f"{now}c: focus · enter: open",
        )

    def resync(self, snapshot: Snapshot) -> None:
        """Start over from a fresh snapshot (a feed that reconnected or fell behind)."""
        log = self.query_one(TransitionLog)
        log.clear()
        log.add(Entry.stored(e) for e in snapshot.events)
        self._failed_seen = -1
        self.query_one(StatusBar).set_info(self.sw.source.info)
        self.refresh_all()
        self.refresh_failures()
        self.refresh_stuck()
        if self.query_text or self.failed_only:
            self.run_search()

    def connection_changed(self, connection: Connection) -> None:
        self.refresh_status()

    # --- keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # in the footer only while there is a filter to clear
            box = self.query_one("#filter", Input)
            return box.display or bool(self.query_text)
        return True

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value or box.display:
            box.value = ""
            box.display = False
            self.query_one(MessagesTable).focus()
            self.set_query("")
            self.refresh_bindings()

    def action_campaigns(self) -> None:
        self.query_one(CampaignsTable).focus()

    def action_failures(self) -> None:
        self.failed_only = not self.failed_only
        self.run_search()
        self.app.notify("failures only" if self.failed_only else "all messages", timeout=2)

    def action_pause(self) -> None:
        self.sw.paused = not self.sw.paused
        self.query_one(TransitionLog).set_paused(self.sw.paused)
        if not self.sw.paused:
            self.refresh_messages()
        self.refresh_status()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        value = event.value
        self._debounce = self.set_timer(0.15, lambda: self.set_query(value))

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.set_query(event.value)
        box = self.query_one("#filter", Input)
        box.display = bool(event.value)
        self.query_one(MessagesTable).focus()

    def set_query(self, text: str) -> None:
        self.query_text = text.strip()
        self.run_search()

    @work(exclusive=True, group="search")
    async def run_search(self) -> None:
        q = self.query_text
        self.query_one(TransitionLog).set_filter(q, self.failed_only)
        self.show_campaigns()
        if q:
            found = await self.sw.ask(
                self.sw.source.messages(q, failed_only=self.failed_only, limit=500)
            )
            self.search_rows = {m.message_id: m for m in found or []}
        else:
            self.search_rows = None
        self.refresh_messages()

    # --- drilling in ----------------------------------------------------------------------

    @on(RowTable.Selected, "#messages")
    def open_message(self, event: RowTable.Selected) -> None:
        self.sw.open_message(event.row.message_id)

    @on(RowTable.Selected, "#campaigns")
    def open_campaign(self, event: RowTable.Selected) -> None:
        self.sw.open_campaign(event.row.name, event.row)

    @on(TransitionLog.Opened)
    def open_from_log(self, event: TransitionLog.Opened) -> None:
        e = event.entry
        if e.recipient:
            self.sw.open_recipient(e.message_id, e.recipient)
        else:
            self.sw.open_message(e.message_id)

    @on(RowTable.Selected, "#alerts")
    def open_alert(self, event: RowTable.Selected) -> None:
        alert: Alert = event.row
        if alert.kind == "failure" and alert.target:
            box = self.query_one("#filter", Input)
            box.display = True
            box.value = alert.target
            self.set_query(alert.target)
        elif alert.kind in ("rejected", "store"):
            self.sw.open_rejections(alert.target)
        elif alert.kind == "stuck":
            self.sw.open_stuck()
        elif alert.kind == "reconcile" and alert.target:
            self.app.notify(alert.target, title="Webhooks missing", timeout=15, markup=False)
        elif alert.kind == "forward" and alert.target:
            # The row shows as much of the app's answer as fits: all of it (bounded) here.
            self.app.notify(
                alert.target,
                title="Forwarding failing",
                severity="error",
                timeout=15,
                markup=False,
            )
