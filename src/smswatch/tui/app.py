"""The live monitor: a Textual app over a `DataSource`.

The app never touches SQL or the engine: it reads through the data source, and live changes
arrive as hub deltas on this loop, at most ~10 a second however fast webhooks come in.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.message import Message

from smswatch import config as settings_mod
from smswatch.core.campaigns import Summary
from smswatch.sanitize import safe
from smswatch.source.api import Connection, DataSource, Snapshot, SourceUnavailable, Update
from smswatch.timefmt import now_us
from smswatch.tui.commands import SmsWatchCommands
from smswatch.tui.model import LiveModel
from smswatch.tui.screens.base import LiveView, Restyles
from smswatch.tui.screens.campaign import CampaignNameScreen, CampaignScreen
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.help import HelpScreen
from smswatch.tui.screens.lists import RejectionsScreen, StuckScreen
from smswatch.tui.screens.message import MessageScreen
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.terminal import TerminalWatchDriver
from smswatch.tui.themes import DEFAULT, Palette, load_themes, remember, remembered
from smswatch.words import plural

DEFAULT_SILENCE_S = 60
T = TypeVar("T")


class UpdateArrived(Message):
    """An update from the data source (a delta, a fresh snapshot, a connection change), handed
    into Textual's message queue so it is handled in the app's context."""

    def __init__(self, update: Update) -> None:
        super().__init__()
        self.update = update


class SmsWatchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "smswatch"
    COMMANDS: ClassVar = {SmsWatchCommands}  # the app's own commands only
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("m", "mask", "mask"),
        Binding("t", "next_theme", "theme"),
    ]

    def __init__(
        self,
        source: DataSource,
        *,
        theme: str | None = None,
        settings: dict[str, Any] | None = None,
        clock: Callable[[], int] = now_us,
        remember_theme: bool = True,
        drawn: Callable[[list[str], float], None] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        # Benchmarks: called with the event ids of each delta and the wall time of the first
        # frame drawn after it (event-to-screen latency).
        self.drawn = drawn
        self.clock = clock
        self.masked = False
        self.paused = False
        self.remember_theme = remember_theme
        settings = settings or {}
        self.stuck_deadlines = settings_mod.stuck_deadlines(settings)
        self.silence_after = int(
            float(settings.get("silence_after", DEFAULT_SILENCE_S)) * 1_000_000
        )
        self.loaded_themes, self.theme_problems = load_themes()
        self.notices: list[str] = []  # told once the screen is up (e.g. the demo's port moved)
        for loaded in self.loaded_themes.values():
            self.register_theme(loaded.theme)
        wanted = theme or remembered() or DEFAULT
        if wanted not in self.available_themes:
            self.theme_problems.append(f"no theme named {wanted!r}; using {DEFAULT}")
            wanted = DEFAULT
        self.theme = wanted
        self.snapshot: Snapshot
        self.model: LiveModel
        self._unsubscribe: Callable[[], None] | None = None
        self.painted_at: float | None = None
        self._message_screen: MessageScreen | None = None
        self._campaign_screen: CampaignScreen | None = None
        self.connection: Connection | None = None  # None: a local engine, always live
        self._started = time.perf_counter()
        # Set by the driver when the terminal went away (hang-up, SIGTERM, dead tty): the
        # caller then shuts down without writing to it.
        self.gone_reason: str | None = None

    def get_driver_class(self) -> type[Driver]:
        chosen = super().get_driver_class()
        if TerminalWatchDriver is not None and chosen is TerminalWatchDriver.__base__:
            return TerminalWatchDriver
        return chosen

    # --- life cycle -----------------------------------------------------------------------

    async def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        # Subscribe first: deltas wait in the message queue until the snapshot is in the model,
        # and the model drops what the snapshot already had.
        self._unsubscribe = self.source.subscribe(lambda u: self.post_message(UpdateArrived(u)))
        self.snapshot = await self.source.open()
        self.model = LiveModel.from_snapshot(self.snapshot)
        # Build the message screen once, before anything is drawn: composing and styling a
        # screen costs more than loading a 1,000-recipient message, so every open reuses it.
        self._message_screen = MessageScreen("")
        self.install_screen(self._message_screen, "message")
        await self.push_screen(self._message_screen)
        await self.pop_screen()
        self._campaign_screen = CampaignScreen("")
        self.install_screen(self._campaign_screen, "campaign")
        await self.push_screen(self._campaign_screen)
        await self.pop_screen()
        await self.push_screen(DashboardScreen())
        self.call_after_refresh(self._painted)
        for problem in [*self.theme_problems, *self.notices]:
            self.notify(problem, severity="warning", timeout=8, markup=False)

    def _painted(self) -> None:
        self.painted_at = time.perf_counter()
        # Everything built so far (widgets, styles, catalogue) lives as long as the app: take it
        # out of the collector's reach, or every full collection walks it again. Measured: the
        # worst of 12 message opens went from 211 ms to 90 ms (benchmarks/RESULTS.md).
        gc.freeze()

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.source.close()

    def on_update_arrived(self, message: UpdateArrived) -> None:
        update = message.update
        if isinstance(update, Connection):
            self._connection_changed(update)
            return
        if isinstance(update, Snapshot):
            # A (re)connected feed: start over from the server's picture.
            self.snapshot = update
            self.model = LiveModel.from_snapshot(update)
            self._each_view(lambda view: view.resync(update))
            return
        delta = self.model.apply(update)
        if self.drawn is not None and delta.transitions:
            ids = [t.event.event_id for t in delta.transitions]
            drawn = self.drawn
            self.call_after_refresh(lambda: drawn(ids, time.time()))
        self._each_view(lambda view: view.live_update(delta))

    def _each_view(self, tell: Callable[[LiveView], None]) -> None:
        """Hand an update to every mounted screen that follows the data source."""
        for screen in self.screen_stack:
            if isinstance(screen, LiveView) and screen.is_mounted:
                # NoMatches: the screen is being torn down (quitting): nothing left to update.
                with contextlib.suppress(NoMatches):
                    tell(screen)

    def _connection_changed(self, connection: Connection) -> None:
        before = self.connection
        self.connection = connection
        if before is not None and before.state != connection.state:
            if connection.state == "live":
                self.notify(connection.detail, title="Connected", timeout=4)
            elif connection.state == "refused":
                self.notify(connection.detail, title="Refused", severity="error", timeout=30)
            elif before.state == "live":
                self.notify(
                    connection.detail, title="Connection lost", severity="warning", timeout=6
                )
        self._each_view(lambda view: view.connection_changed(connection))

    @property
    def connected(self) -> bool:
        return self.connection is None or self.connection.live

    async def ask(self, query: Awaitable[T]) -> T | None:
        """Run a data-source query; if the source is not connected, say so instead of failing."""
        try:
            return await query
        except SourceUnavailable as exc:
            self.not_connected(exc)
            return None

    def not_connected(self, exc: SourceUnavailable) -> None:
        self.notify(str(exc), title="Not connected", severity="warning", timeout=4)

    # --- forwarding (--forward-to) ------------------------------------------------------------

    @property
    def forwarding(self) -> bool:
        """Whether the engine forwards to an app (it reports its targets in the counters)."""
        return bool(self.model.counters.forwarding)

    @property
    def can_resend(self) -> bool:
        """Re-sending changes the outbox: offered only where the engine runs, never to a
        read-only viewer."""
        return self.forwarding and not self.source.info.read_only

    async def resend(self, events: list[int] | None, *, failed_only: bool) -> int | None:
        """Queue forwards again; None (and a toast saying why) if it could not be done."""
        try:
            return await self.source.resend(events, failed_only=failed_only)
        except SourceUnavailable as exc:
            self.notify(str(exc), title="Not re-sent", severity="warning", timeout=6, markup=False)
        except Exception as exc:  # the outbox busy or failing: say so, keep the monitor up
            why = f"{type(exc).__name__}: {exc}"
            self.notify(why, title="Not re-sent", severity="error", markup=False)
        return None

    @work(exclusive=True, group="resend")
    async def action_resend_failed(self) -> None:
        count = await self.resend(None, failed_only=True)
        if count is None:
            return
        if count:
            queued = plural(count, "failed forward")
            self.notify(f"{queued} queued to be sent again now", timeout=6)
        else:
            self.notify("no failed forwards to re-send", timeout=4)

    # --- themes -----------------------------------------------------------------------------

    @property
    def palette(self) -> Palette:
        loaded = self.loaded_themes.get(self.theme)
        if loaded is not None:
            return loaded.palette
        # A Textual theme picked from the palette: borrow our states' colours for its mode.
        fallback = self.loaded_themes.get(DEFAULT if self.current_theme.dark else "light")
        if fallback is not None:
            return Palette(fallback.palette.states, self.current_theme.dark)
        return next(iter(self.loaded_themes.values())).palette

    def theme_names(self) -> list[str]:
        builtin = [n for n in ("dark", "light", "high-contrast") if n in self.loaded_themes]
        return builtin + sorted(n for n in self.loaded_themes if n not in builtin)

    def use_theme(self, name: str) -> None:
        self.theme = name

    def pick_theme(self) -> None:
        """The palette's theme list: smswatch's themes (the ones `t` cycles through), not every
        theme Textual registers."""
        self.search_commands(
            [(name, partial(self.use_theme, name)) for name in self.theme_names()],
            placeholder="Theme…",
        )

    def action_next_theme(self) -> None:
        names = self.theme_names()
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def _theme_changed(self, _theme: object) -> None:
        if self.remember_theme:
            remember(self.theme)
        self.redraw()

    def redraw(self) -> None:
        """Redraw everything that renders its own colours or text (Line-API widgets, Rich
        tables): after a theme change, or masking."""
        for screen in self.screen_stack:
            for widget in screen.query("RowTable, TransitionLog"):
                widget.restyle()  # type: ignore[attr-defined]
            if isinstance(screen, Restyles):
                self.call_later(screen.refresh_styles)
            if isinstance(screen, DashboardScreen):
                screen.query_one("StatusBar").restyle()  # type: ignore[attr-defined]
                screen.refresh_all()

    # --- actions ----------------------------------------------------------------------------

    def action_mask(self) -> None:
        self.masked = not self.masked
        self.notify("phone numbers masked" if self.masked else "phone numbers shown", timeout=2)
        self.redraw()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_failures(self) -> None:
        self._dashboard().action_failures()

    def action_pause(self) -> None:
        self._dashboard().action_pause()

    @work(exclusive=True, group="export")
    async def action_export(self) -> None:
        path = Path.cwd() / f"smswatch-export-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        self.notify(f"exporting to {path} …", timeout=3)
        try:
            count = await self.source.export(path)
        except (OSError, SourceUnavailable) as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"exported {plural(count, 'event')} to {path}", timeout=8)

    def _dashboard(self) -> DashboardScreen:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        raise RuntimeError("no dashboard")

    # --- navigation -------------------------------------------------------------------------

    @work(exclusive=True, group="open-message")
    async def open_message(self, message_id: str) -> None:
        """Fetch the message first, then switch screens: run together, the query and the screen
        switch fight over the GIL and both take longer."""
        screen = self._message_screen
        if screen is None or screen in self.screen_stack:
            self.push_screen(MessageScreen(message_id))
            return
        try:
            detail = await self.source.message(message_id)
        except SourceUnavailable as exc:
            self.not_connected(exc)
            return
        screen.show_message(message_id, detail)
        self.push_screen(screen)

    @work(exclusive=True, group="open-campaign")
    async def open_campaign(self, name: str, summary: Summary | None = None) -> None:
        """Read the campaign first, then switch to the (already built) campaign screen."""
        screen = self._campaign_screen
        if screen is None or screen in self.screen_stack:
            self.push_screen(CampaignScreen(name, summary))
            return
        try:
            view = await self.source.campaign(name, self.stuck_deadlines, self.clock())
            messages = await self.source.campaign_messages(name) if view is not None else []
        except SourceUnavailable as exc:
            self.not_connected(exc)
            return
        screen.show_campaign(name, view, messages)
        self.push_screen(screen)

    def open_campaigns(self) -> None:
        dashboard = self._dashboard()
        if self.screen is not dashboard:
            self.pop_screen()
        dashboard.action_campaigns()

    @work(exclusive=True, group="campaign-run")
    async def start_campaign(self, name: str | None) -> None:
        """Start (or end, with None) the campaign every new message joins."""
        try:
            await self.source.start_campaign(name)
        except SourceUnavailable as exc:
            self.notify(str(exc), title="Campaign", severity="warning", timeout=6, markup=False)
            return
        if name:
            shown = safe(name, 40)
            self.notify(
                f"new messages now join campaign {shown}", title="Campaign started", markup=False
            )
        else:
            self.notify("new messages join no campaign (bursts group them)", title="Campaign ended")
        with contextlib.suppress(RuntimeError, NoMatches):
            self._dashboard().refresh_campaigns()

    def ask_campaign_name(self) -> None:
        def started(name: str | None) -> None:
            if name:
                self.start_campaign(name)

        self.push_screen(CampaignNameScreen(), started)

    @work(exclusive=True, group="suppression")
    async def export_suppression(self, campaign: str | None = None) -> None:
        """The do-not-send list (permanent failures) as CSV in the current directory."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path.cwd() / f"smswatch-suppression-{stamp}.csv"
        try:
            count = await self.source.export_suppression(path, campaign)
        except (OSError, SourceUnavailable, LookupError) as exc:
            self.notify(f"suppression list not written: {exc}", severity="error", markup=False)
            return
        what = f" of {safe(campaign, 40)}" if campaign else ""
        self.notify(
            f"{plural(count, 'number')} never to text again{what} written to {path}",
            title="Suppression list",
            timeout=10,
            markup=False,
        )

    def open_recipient(self, message_id: str, recipient: str) -> None:
        self.push_screen(RecipientScreen(message_id, recipient))

    def open_rejections(self, code: str | None = None) -> None:
        self.push_screen(RejectionsScreen(code))

    def open_stuck(self) -> None:
        self.push_screen(StuckScreen())
