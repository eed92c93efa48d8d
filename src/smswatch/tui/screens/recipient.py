"""One recipient's timeline: each event in event-time order with its raw JSON, the error code
explained from the catalogue, and (with `--forward-to`) how each event was forwarded to the
team's app, every attempt with the app's answer; `s` sends the selected event again."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Static

from smswatch.core.domain import FUNNEL, POLLED_PREFIX, State
from smswatch.core.forwarding import Forward, TargetStatus
from smswatch.core.live import Delta
from smswatch.core.records import StoredEvent
from smswatch.gateways.catalogue import explain
from smswatch.sanitize import safe
from smswatch.source.api import Forwards, RecipientDetail, SourceUnavailable
from smswatch.timefmt import span
from smswatch.tui.alert_rules import answer_label, answered, shown_target
from smswatch.tui.format import (
    Flow,
    mask,
    mask_json,
    moments,
    pretty_json,
    state_text,
    untrusted,
)
from smswatch.tui.screens.base import AppScreen
from smswatch.tui.widgets.footer import KeyFooter
from smswatch.tui.widgets.timeline import Timeline
from smswatch.words import plural

ATTEMPTS_SHOWN = 5  # per event and target: the latest ones
# How a forward's state is coloured: as the recipient state it resembles.
FORWARD_STATES = {"delivered": State.DELIVERED, "failed": State.FAILED, "pending": State.SENT}


class RecipientScreen(AppScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("r", "raw", "raw JSON", tooltip="raw JSON on / off"),
        Binding("s", "resend", "re-send", tooltip="forward the selected event to the app again"),
    ]

    def __init__(self, message_id: str, recipient: str) -> None:
        super().__init__()
        self.message_id = message_id
        self.recipient = recipient
        self.detail: RecipientDetail | None = None
        # Each event's forwards, when the engine forwards (None: not asked).
        self.forwards: Forwards | None = None
        self.show_raw = True
        self._reload: Timer | None = None
        self._forwarding_seen: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        header = Static(id="recipient-header")
        yield header
        yield Timeline(id="timeline")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#timeline").focus()
        self.load()

    @work(exclusive=True, group="recipient")
    async def load(self) -> None:
        source = self.sw.source
        try:
            detail = await source.recipient(self.message_id, self.recipient)
            forwards = None
            if detail is not None and self.sw.forwarding:
                forwards = await source.forwards([e.id for e in detail.events])
        except SourceUnavailable as exc:
            self.sw.not_connected(exc)
            return
        self.detail, self.forwards = detail, forwards
        await self.show()

    def resync(self, _snapshot: object) -> None:
        self.load()

    async def show(self) -> None:
        header = self.query_one("#recipient-header", Static)
        who = safe(self.recipient, 60)
        header.border_title = f"Recipient {mask(who) if self.sw.masked else who}"
        d = self.detail
        timeline = self.query_one(Timeline)
        if d is None:
            header.update(Text("this recipient has no events in the database", style="bold"))
            return
        header.update(self.summary(d))
        title = f"Timeline — {plural(len(d.events), 'event')} in event-time order"
        if self.forwards is not None:
            title += ", with their forwards"
        timeline.border_title = title
        await timeline.show([self.event_block(ev, i, d.events) for i, ev in enumerate(d.events)])
        if self.forwards is not None and timeline.selected is None and d.events:
            # An event can be sent again: select one, the first the app failed to take, else
            # the first (the one in view).
            failed = [
                i
                for i, ev in enumerate(d.events)
                if any(f.state == "failed" for f in self.forwards.get(ev.id, ()))
            ]
            timeline.select(failed[0] if failed else 0, scroll=bool(failed))
        self.refresh_bindings()

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
        if r.polled:
            state.append(
                "  (from a poll of the gateway's API: no webhook brought it)",
                style=pal.state(State.PROCESSING),
            )
        grid.add_row("state", state)
        grid.add_row("carrier", untrusted(r.carrier, 40) if r.carrier else Text("-", style="dim"))
        start = r.first_at.get(State.QUEUED) or (d.message.queued_at if d.message else None)
        reached = [(s, r.first_at[s]) for s in FUNNEL if r.first_at.get(s) is not None]
        stages = []
        for (s, at), shown in zip(reached, self.times([at for _, at in reached]), strict=True):
            stage = Text(f"{s.value} ", style=pal.state(s))
            stage.append(shown)
            if start is not None and at != start:
                stage.append(f" (+{span(at - start)})", style="dim")
            stages.append(stage)
        grid.add_row("reached", Flow(stages, gap=3))
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
        occurred, received = self.times([ev.occurred_at, ev.received_at])
        line = Text()
        line.append(f"{index + 1:>2}. ", style="dim")
        line.append(occurred, style="bold")
        if ev.time_estimated:
            line.append(" ~", style="dim")
        line.append("  ")
        if ev.event_type.startswith(POLLED_PREFIX):
            # Not a webhook: smswatch asked the gateway's status API.
            line.append(" POLLED ", style=f"bold reverse {pal.state(State.PROCESSING)}")
            line.append(" ")
        line.append(safe(ev.event_type, 40), style=f"bold {pal.state(ev.state)}")
        line.append("  → ")
        line.append(ev.state.value, style=pal.state(ev.state))
        delay = ev.received_at - ev.occurred_at
        # The receive time on a line of its own: beside the event's it wrapped at 100 columns.
        line.append(f"\n    received {received}", style="dim")
        if not ev.time_estimated:
            line.append(f" ({'+' if delay >= 0 else ''}{span(delay)} after)", style="dim")
        if index and ev.received_at < events[index - 1].received_at:
            line.append("  arrived out of order", style=pal.state(State.SENT))
        line.append(f"\n    event_id {safe(ev.event_id, 80)}", style="dim")
        if ev.time_estimated:
            line.append(
                "\n    no event time in the payload: the receive time stands in", style="dim"
            )
        parts = [line]
        if self.forwards is not None:
            parts += [self.forward_lines(f) for f in self.forwards.get(ev.id, ())]
        if self.show_raw:
            parts.append(pretty_json(ev.payload, self.sw.masked))
        return Group(*parts)

    def forward_lines(self, f: Forward) -> Text:
        """Where the event was forwarded, its state there, and the latest attempts: time, the
        app's status (or no answer), how long it took, and for a failure the start of the
        answer (the app's text: untrusted, made safe)."""
        pal = self.sw.palette
        # One line per attempt, cut at the panel's edge: the app's answer can be long.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("    forward ", style="dim")
        text.append(shown_target(f.target, 60))
        text.append("  ")
        state = FORWARD_STATES.get(f.state)
        text.append(f.state, style=f"bold {pal.state(state)}" if state else "dim")
        if f.state == "not forwarded":
            text.append(" (stored before forwarding to it began, or not its gateway)", "dim")
        elif not f.attempts:
            text.append("  not tried yet", style="dim")
        shown = f.attempts[-ATTEMPTS_SHOWN:]
        if len(f.attempts) > len(shown):
            n = len(f.attempts) - len(shown)
            text.append(f"\n      … {plural(n, 'earlier attempt')}", "dim")
        for a, when in zip(shown, self.times([a.at for a in shown]), strict=True):
            ok = answered(a.status)
            text.append(f"\n      {when}  ", style="dim")
            colour = pal.state(State.DELIVERED if ok else State.FAILED)
            text.append(f"{answer_label(a.status):<9}", style=f"bold {colour}")
            if a.ms is not None:
                text.append(f"  {a.ms:,} ms", style="dim")
            if not ok and a.error:
                said = safe(a.error, 160)
                text.append(f"  {mask_json(said) if self.sw.masked else said}")
        return text

    def times(self, values: list[int]) -> list[str]:
        """Times of this recipient: of day alone when all its events fall on one date."""
        every = [e.occurred_at for e in self.detail.events] if self.detail else []
        every += [e.received_at for e in self.detail.events] if self.detail else []
        shown = moments([*values, *every], self.sw.clock())
        return shown[: len(values)]

    def live_update(self, delta: Delta) -> None:
        touched = any(
            t.event.message_id == self.message_id and t.event.recipient == self.recipient
            for t in delta.transitions
        )
        if (touched or self._forwarding_moved(delta.counters.forwarding)) and self._reload is None:
            self._reload = self.set_timer(0.3, self._reload_now)

    def _forwarding_moved(self, forwarding: tuple[TargetStatus, ...]) -> bool:
        """Whether the forwarding moved in a way this timeline may show: it began to be
        reported, or an attempt was made or a forward given up while one of these events is
        not settled (pending, or failed and maybe queued again)."""
        seen = tuple((t.target, t.last, t.failed) for t in forwarding)
        before, self._forwarding_seen = self._forwarding_seen, seen
        if seen == before or not forwarding or self.detail is None:
            return False
        if self.forwards is None:
            return True
        return any(f.state in ("pending", "failed") for fs in self.forwards.values() for f in fs)

    def _reload_now(self) -> None:
        self._reload = None
        self.load()

    async def refresh_styles(self) -> None:
        await self.show()

    async def action_raw(self) -> None:
        self.show_raw = not self.show_raw
        await self.show()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resend":
            # Absent where it cannot be done: no forwarding, or a read-only viewer.
            return self.sw.can_resend and self.query_one(Timeline).selected is not None
        return True

    @work(exclusive=True, group="resend")
    async def action_resend(self) -> None:
        """Forward the selected event again now, whatever its forwards' state."""
        index = self.query_one(Timeline).selected
        if self.detail is None or index is None or index >= len(self.detail.events):
            return
        ev = self.detail.events[index]
        count = await self.sw.resend([ev.id], failed_only=False)
        if count is None:
            return
        what = f"event {index + 1} ({safe(ev.event_type, 40)})"
        # (The event type came in a webhook: never read as markup.)
        if count:
            self.notify(f"{what}: queued to be sent to the app again", markup=False)
        else:
            self.notify(f"{what}: no forward target takes it", severity="warning", markup=False)
        if self._reload is None:
            self._reload = self.set_timer(0.5, self._reload_now)
