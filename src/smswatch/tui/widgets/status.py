"""The status bar: where to point each gateway, how it authenticates, the pulse of ingest, and
(with `--forward-to`) how the forwarding to the team's app is doing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from smswatch.core.domain import State
from smswatch.core.forwarding import RECENT_S, TargetStatus
from smswatch.core.live import Counters
from smswatch.core.reconciling import ReconcileStatus
from smswatch.gateways import ADAPTERS
from smswatch.sanitize import safe
from smswatch.source.api import Connection, SourceInfo
from smswatch.timefmt import span
from smswatch.tui.alert_rules import answer_label, answered, failing, shown_target
from smswatch.tui.themes import Palette
from smswatch.words import plural


def gateway_lines(info: SourceInfo, palette: Palette) -> Text:
    """One line per gateway: its webhook URL and how its requests are checked."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if not info.gateways:
        text.append(f"viewer of {info.label}: not connected yet", style="dim")
    for n, gw in enumerate(info.gateways):
        if n:
            text.append("\n")
        # A title longer than the column (Africa's Talking) still gets its space.
        text.append(f"{gw.title:<8} ", style="bold")
        text.append(gw.url, style="underline")
        if gw.verified:
            text.append(f"  ✓ {gw.auth}", style=palette.state(State.DELIVERED))
        elif gw.accepting:
            text.append(f"  · {gw.auth}", style="dim")
        else:
            text.append(f"  ✗ {gw.auth}", style=f"bold {palette.state(State.FAILED)}")
    return text


def gateway_line(info: SourceInfo, palette: Palette) -> Text:
    """The gateways on one line, for a short terminal: the first URL whole, the others by what
    follows the path they share with it, each with its check's mark (the full lines are the
    tooltip, `smswatch gateways` prints them)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if not info.gateways:
        text.append(f"viewer of {info.label}: not connected yet", style="dim")
        return text
    text.append(f"{'Webhooks':<9}", style="bold")
    first = info.gateways[0].url
    base = first[: first.rfind("/") + 1]
    for n, gw in enumerate(info.gateways):
        if n:
            # Two spaces, not " · ": "·" is also the mark of a gateway that is open. No "…/"
            # before the shared path's tail: nine built-in gateways then fit 160 columns. From
            # the fourth on, 80 columns cut the line (CSS: no wrap, an ellipsis): a line more
            # for each gateway would take the panels' rows, and the tooltip has them all.
            text.append("  ")
        shown = gw.url if not n or not gw.url.startswith(base) else gw.url[len(base) :]
        text.append(shown, style="underline")
        if gw.verified:
            text.append(" ✓", style=palette.state(State.DELIVERED))
        elif gw.accepting:
            text.append(" ·", style="dim")
        else:
            text.append(f" ✗ {gw.auth}", style=f"bold {palette.state(State.FAILED)}")
    return text


def link(connection: Connection, palette: Palette) -> Text:
    """A remote viewer's connection, first on the line: it must never look live when it is not."""
    if connection.state == "live":
        return Text("● live  ", style=f"bold {palette.state(State.DELIVERED)}")
    if connection.state == "refused":
        return Text(f"✗ {connection.detail}  ", style=f"bold reverse {palette.state(State.FAILED)}")
    when = f" in {connection.retry_in:g}s" if connection.retry_in else "…"
    text = Text(f"○ {connection.state}{when}", style=f"bold reverse {palette.state(State.SENT)}")
    if connection.detail and connection.state != "connecting":
        text.append(f" ({connection.detail})", style=palette.state(State.SENT))
    text.append("  stale: ", style="dim")
    return text


def pulse(
    c: Counters,
    now: int,
    info: SourceInfo,
    paused: bool,
    masked: bool,
    connection: Connection | None = None,
    palette: Palette | None = None,
    width: int = 0,
    polling: ReconcileStatus | None = None,
) -> Text:
    """The pulse line. Given a `width` it fits: in fewer words if need be, the database named
    by its file alone when its whole path does not fit (cut, it was drawn blank). Given
    `polling` (a short terminal: no line of its own), a word on the status APIs' polling."""
    args = (c, now, info, paused, masked, connection, palette, polling)
    text = _pulse(*args, brief=False, width=width)
    if width and text.cell_len > width:
        text = _pulse(*args, brief=True, width=width)
    return text


def _pulse(
    c: Counters,
    now: int,
    info: SourceInfo,
    paused: bool,
    masked: bool,
    connection: Connection | None,
    palette: Palette | None,
    polling: ReconcileStatus | None,
    *,
    brief: bool,
    width: int,
) -> Text:
    gap = "  " if brief else "   "
    text = Text(no_wrap=True, overflow="ellipsis")
    if connection is not None and palette is not None:
        text.append_text(link(connection, palette))
    text.append(f"{c.events:,}", style="bold")
    text.append(" events  ", style="dim")
    text.append(f"{c.events_per_second:.1f}/s", style="bold")
    text.append("  last " if brief else "  last webhook ", style="dim")
    if c.last_request_at is None:
        text.append("never", style="bold")
    else:
        text.append(f"{span(max(now - c.last_request_at, 0))} ago", style="bold")
    if c.store_error:
        text.append("  STORE FAILING", style="bold reverse")
    if paused:
        text.append("  PAUSED", style="bold reverse")
    if masked:
        text.append("  MASKED", style="bold")
    if info.read_only:
        text.append(f"{gap}viewer of {info.label}", style="dim")
    if polling is not None:
        text.append(f"{gap}{'poll' if brief else 'polling'} ", style="dim")
        text.append_text(polling_brief(polling, now, palette))
    if info.db_path:
        text.append(f"{gap}db ", style="dim")
        room = width - text.cell_len
        name = PurePath(info.db_path).name
        if not width or len(info.db_path) <= room:
            text.append(info.db_path, style="dim")
        elif len(name) <= room or not brief:
            text.append(name, style="dim")
        else:  # cut by hand: Textual drew an ellipsis-cut end of line blank
            text.append(name[: max(room - 1, 1)] + "…", style="dim")
    return text


def polling_brief(status: ReconcileStatus, now: int, palette: Palette | None) -> Text:
    """The polling line in a word or two: its queue, a 429's wait, a failing API."""
    queued = sum(status.queued.get(g, 0) for g in status.gateways if g not in status.standby)
    text = Text(f"{queued:,} queued" if queued else "idle", style="bold" if queued else "dim")
    if status.paused_until is not None and status.paused_until > now:
        text.append(f" · 429 wait {span(status.paused_until - now)}")
    if status.last_error:
        failed = palette.state(State.FAILED) if palette is not None else ""
        text.append(" · failing", style=f"bold {failed}")
    return text


def forwarding_lines(targets: tuple[TargetStatus, ...], now: int, palette: Palette) -> Text:
    """One line per forward target: where, the backlog, deliveries per second over the last
    RECENT_S seconds, forwards given up, and the app's last answer."""
    text = Text(no_wrap=True, overflow="ellipsis")
    bad = f"bold {palette.state(State.FAILED)}"
    for n, t in enumerate(targets):
        if n:
            text.append("\n")
        text.append(f"{'Forward':<9}", style="bold")
        text.append(shown_target(t.target), style="underline")
        text.append("  backlog ", style="dim")
        text.append(f"{t.backlog:,}", style="bold" if t.backlog else "")
        text.append("  ", style="dim")
        text.append(f"{t.delivered_recent / RECENT_S:.1f}/s", style="bold")
        text.append(" delivered", style="dim")
        if t.failed:
            text.append(f"  {t.failed:,} failed", style=bad)
        text.append("  app ", style="dim")
        if t.last is None:
            text.append("not tried yet", style="dim")
        else:
            ok = answered(t.last.status)
            text.append(
                answer_label(t.last.status),
                style=f"bold {palette.state(State.DELIVERED)}" if ok else bad,
            )
            text.append(f" {span(max(now - t.last.at, 0))} ago", style="dim")
        if failing(t) and t.failing_since is not None:
            text.append(
                f"  FAILING for {span(max(now - t.failing_since, 0))}",
                style=f"bold reverse {palette.state(State.FAILED)}",
            )
    return text


def reconcile_line(status: ReconcileStatus, now: int, palette: Palette) -> Text:
    """The gateways' status APIs being polled (reconcile/): each keyed gateway's queue, the
    calls made, a 429's wait, the last error, and the gateways that have no status API."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{'Polling':<9}", style="bold")
    for n, gateway in enumerate(status.gateways):
        text.append("  ·  " if n else "", style="dim")
        adapter = ADAPTERS.get(gateway)
        text.append(adapter.title if adapter else gateway, style="bold")
        if gateway in status.standby:
            text.append(" another instance polls", style="dim")
        else:
            queued = status.queued.get(gateway, 0)
            text.append(f" {queued:,} queued" if queued else " idle", style="" if queued else "dim")
    text.append(f"   {plural(status.polls, 'call')}", style="dim")
    if status.swept:
        text.append(f" ({plural(status.swept, 'list read')})", style="dim")
    if status.paused_until is not None and status.paused_until > now:
        text.append(
            f"  429: waiting {span(status.paused_until - now)}", style=palette.state(State.SENT)
        )
    if status.last_error:
        text.append("  last error: ", style="dim")
        text.append(safe(status.last_error, 80), style=palette.state(State.FAILED))
    # Last: the line's news (calls, a 429, an error) comes first when the width runs out.
    for gateway in status.unpolled:
        adapter = ADAPTERS.get(gateway)
        text.append("   ")
        text.append(adapter.title if adapter else gateway, style="bold")
        text.append(" no status API: not polled", style="dim")
    return text


class Pulse(Widget):
    """The pulse line. Its text follows every delta; when it is drawn is the dashboard's choice:
    on a busy monitor it changes ten times a second (the event count, the last webhook's age),
    and drawing it in the same frames as the live log made each of those frames recompose the
    whole screen (Textual renders the box around all the regions that changed)."""

    DEFAULT_CSS = """
    Pulse { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()
        self._stale = False

    @property
    def content(self) -> Text:
        """The text it shows, or will at its next draw."""
        return self._text

    def render(self) -> Text:
        return self._text

    def show(self, text: Text, draw: bool) -> None:
        if text != self._text:
            self._text = text
            self._stale = True
        if draw:
            self.draw()

    def draw(self) -> None:
        if self._stale:
            self._stale = False
            self.refresh()


class StatusBar(Vertical):
    DEFAULT_CSS = """
    StatusBar { height: auto; background: $panel; padding: 0 1; }
    StatusBar #gateways { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    StatusBar #pulse-row { height: 1; }
    StatusBar #pulse { width: 1fr; }
    StatusBar #forwarding { height: auto; }
    StatusBar #reconciling { height: 1; }
    StatusBar Sparkline { width: 32; margin-left: 1; }
    StatusBar.-narrow Sparkline { width: 12; }
    """

    def __init__(self, info: SourceInfo, palette: Callable[[], Palette]) -> None:
        super().__init__()
        self.info = info
        self.palette = palette
        self._last_rate: tuple[int, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(gateway_lines(self.info, self.palette()), id="gateways")
        with Horizontal(id="pulse-row"):
            yield Pulse(id="pulse")
            yield Sparkline([], id="rate")
        forwarding = Pulse(id="forwarding")  # shown once the engine reports forward targets
        forwarding.display = False
        yield forwarding
        reconciling = Pulse(id="reconciling")  # shown when a gateway's status API has a key
        reconciling.display = False
        yield reconciling

    def draw(self) -> None:
        for line in self.query(Pulse):
            line.draw()

    @property
    def short(self) -> bool:
        """A short terminal: the gateways on one line, the polling within the pulse line."""
        return self.has_class("-short")

    def restyle(self) -> None:
        gateways = self.query_one("#gateways", Static)
        whole = gateway_lines(self.info, self.palette())
        gateways.update(gateway_line(self.info, self.palette()) if self.short else whole)
        gateways.tooltip = whole if self.short else None

    def set_info(self, info: SourceInfo) -> None:
        """The server told us who it is (a viewer learns its gateways on connect)."""
        self.info = info
        self.restyle()

    def show(
        self,
        c: Counters,
        now: int,
        paused: bool,
        masked: bool,
        connection: Connection | None,
        draw: bool = True,
    ) -> None:
        """Without `draw`, the pulse line takes the new text and is drawn by `draw()` later."""
        short = self.short
        width = self.query_one("#pulse", Pulse).size.width
        polling = c.reconciling if short else None
        text = pulse(c, now, self.info, paused, masked, connection, self.palette(), width, polling)
        self.query_one("#pulse", Pulse).show(text, draw)
        forwarding = self.query_one("#forwarding", Pulse)
        if c.forwarding:
            forwarding.show(forwarding_lines(c.forwarding, now, self.palette()), draw)
        if forwarding.display != bool(c.forwarding):
            forwarding.display = bool(c.forwarding)
        reconciling = self.query_one("#reconciling", Pulse)
        if c.reconciling is not None and not short:
            reconciling.show(reconcile_line(c.reconciling, now, self.palette()), draw)
        if reconciling.display != (c.reconciling is not None and not short):
            reconciling.display = c.reconciling is not None and not short
        # The current second's bar grows on every tick; the sparkline follows it once a second,
        # when a second is complete (it is one of ~60 bars, and each redraw costs a frame).
        if c.rate[:-1] != self._last_rate[:-1] or not self._last_rate:
            self._last_rate = c.rate
            self.query_one("#rate", Sparkline).data = list(c.rate)
