"""The live transitions stream: one line per stored event, newest at the bottom.

Entries are kept as data (bounded), not as rendered text, so masking, filtering and theme
changes re-render instantly. While paused, new entries wait in a bounded buffer and the view
stays still; the counters elsewhere keep counting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from smswatch.core.domain import State
from smswatch.sanitize import safe
from smswatch.store.rows import StoredEvent
from smswatch.store.state import Transition
from smswatch.timefmt import clock, span
from smswatch.tui.format import mask, short_id
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.lines import LineView
from smswatch.tui.widgets.scrolling import one_scrollbar_update, set_virtual_size
from smswatch.words import plural

MAX_ENTRIES = 5000
# Drawn lines kept for reuse. A following log only ever shows the newest screenful, so this only
# bounds memory (a strip is a few hundred bytes to a few KB); clearing costs one full redraw.
DRAWN_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    received_at: int
    provider: str
    message_id: str
    recipient: str | None
    event_type: str
    state: State
    before: State | None
    after: State | None
    carrier: str | None
    error_code: str | None
    since: int | None  # time since the recipient's previous state, by event time
    from_history: bool = False  # loaded from the database at start: before/after unknown

    @classmethod
    def live(cls, t: Transition) -> Entry:
        ev = t.event
        return cls(
            ev.received_at,
            ev.provider,
            ev.message_id or "",
            ev.recipient,
            ev.event_type,
            ev.state,
            t.before,
            t.after,
            ev.carrier,
            ev.error_code,
            t.since,
        )

    @classmethod
    def stored(cls, ev: StoredEvent) -> Entry:
        return cls(
            ev.received_at,
            ev.provider,
            ev.message_id,
            ev.recipient,
            ev.event_type,
            ev.state,
            None,
            ev.state if ev.state != State.UNKNOWN else None,
            ev.carrier,
            ev.error_code,
            None,
            from_history=True,
        )

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def matches(self, needle: str) -> bool:
        """`needle` (lower case) within a field, as the store's filter queries match."""
        fields = (
            self.provider,
            self.message_id,
            self.recipient,
            self.state.value,
            self.error_code,
            self.carrier,
            self.event_type,
        )
        return any(needle in f.lower() for f in fields if f)


class TransitionLog(LineView, can_focus=True):
    DEFAULT_CSS = """
    TransitionLog { height: 1fr; overflow-x: hidden; }
    TransitionLog > .log--dim { color: $text-muted; }
    TransitionLog > .log--paused { background: $warning 25%; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"log--dim", "log--paused"}

    class Opened(Message):
        """A line was clicked: open its message."""

        def __init__(self, entry: Entry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(
        self, palette: Callable[[], Palette], masked: Callable[[], bool], *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.masked = masked
        self.entries: deque[Entry] = deque(maxlen=MAX_ENTRIES)
        self.shown: deque[Entry] = deque(maxlen=MAX_ENTRIES)
        self.waiting: deque[Entry] = deque(maxlen=MAX_ENTRIES)
        self.waiting_total = 0
        self.dropped = 0  # burst lines the hub did not forward (the dashboard says how many)
        self.paused = False
        self.needle = ""
        self.failures_only = False
        # Follow new lines until the reader scrolls up; scrolling back to the bottom resumes.
        self.tail = True
        self._autoscrolling = False
        # id(entry) -> (entry, what it was drawn with, strip): a scrolling log moves every line
        # on every tick, but each entry looks the same wherever it is.
        self._drawn: dict[int, tuple[Entry, tuple[object, ...], Strip]] = {}
        self._styles: dict[tuple[Style, Style | str], Style] = {}  # (base, part's) -> combined

    # --- data -------------------------------------------------------------------------------

    def _wanted(self, e: Entry) -> bool:
        if self.failures_only and e.state != State.FAILED:
            return False
        return not self.needle or e.matches(self.needle)

    def add(self, entries: Iterable[Entry], dropped: int = 0) -> None:
        self.dropped += dropped
        if self.paused:
            for e in entries:
                self.waiting.append(e)
                self.waiting_total += 1
            self.refresh()
            return
        added = False
        for e in entries:
            self.entries.append(e)
            if self._wanted(e):
                self.shown.append(e)
                added = True
        if added:
            with one_scrollbar_update(self):
                self._resize()
                self._follow()
            self.refresh(self.size.region)  # the content only: the border did not change

    def _follow(self) -> None:
        if self.tail:
            self._autoscrolling = True
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            self._autoscrolling = False

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if not self._autoscrolling:
            self.tail = new >= self.max_scroll_y - 0.5

    def clear(self) -> None:
        self.entries.clear()
        self.shown.clear()
        self.waiting.clear()
        self.waiting_total = 0
        self._resize()
        self.refresh()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused and self.waiting:
            waiting, self.waiting = list(self.waiting), deque(maxlen=MAX_ENTRIES)
            self.waiting_total = 0
            self.add(waiting)
        self.waiting_total = 0 if not paused else self.waiting_total
        self.refresh()

    def set_filter(self, needle: str, failures_only: bool) -> None:
        self.needle = needle.strip().lower()
        self.failures_only = failures_only
        self.shown = deque((e for e in self.entries if self._wanted(e)), maxlen=MAX_ENTRIES)
        self._resize()
        self.tail = True
        self._follow()
        self.refresh()

    def _resize(self) -> None:
        set_virtual_size(self, Size(self.size.width, len(self.shown) + (1 if self.paused else 0)))

    def on_resize(self, event: events.Resize) -> None:
        self._resize()
        self._follow()

    async def _on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < len(self.shown):
            self.post_message(self.Opened(self.shown[index]))

    # --- drawing ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width, base = self.frame()
        if self.paused and y == self.size.height - 1:
            note = (
                f" ⏸ paused: {plural(self.waiting_total, 'new event')} waiting — space to resume "
            )
            text = Text(note)
            text.stylize_before(base + self.get_component_rich_style("log--paused"))
        else:
            index = int(self.scroll_y) + y
            if index >= len(self.shown):
                if index == 0 and not self.shown:
                    hint = (
                        "waiting for webhooks…"
                        if not self.needle and not self.failures_only
                        else "no matching events"
                    )
                    text = Text(f" {hint}")
                    text.stylize_before(base + self.get_component_rich_style("log--dim"))
                else:
                    return Strip.blank(width, base)
            else:
                return self._entry_strip(self.shown[index], width, base)
        return Strip(text.render(self.app.console), text.cell_len).crop_extend(0, width, base)

    def _entry_strip(self, entry: Entry, width: int, base: Style) -> Strip:
        drawn_with = (width, base, self.masked())
        kept = self._drawn.get(id(entry))
        if kept is not None and kept[0] is entry and kept[1] == drawn_with:
            return kept[2]
        if len(self._drawn) > DRAWN_KEPT:
            self._drawn.clear()
        strip = self._entry_segments(entry, width, base)
        self._drawn[id(entry)] = (entry, drawn_with, strip)
        return strip

    def restyle(self) -> None:
        """Colours or masking changed: draw every line afresh."""
        self._drawn.clear()
        self._styles.clear()
        self.refresh()

    def _entry_text(self, e: Entry, width: int) -> Text:
        """The line of an entry as Text (what `_entry_segments` draws)."""
        t = Text(no_wrap=True, end="")
        for part, style in self._entry_parts(e, width):
            t.append(part, style=style)
        return t

    def _entry_segments(self, e: Entry, width: int, base: Style) -> Strip:
        """The line of an entry, drawn straight into segments: what `Text.render` makes of
        `_entry_text` under `base`, the same segment for segment, at a quarter of its cost (a
        new line is drawn for every event, fifty a second on a busy monitor)."""
        styles = self._styles
        get_style = self.app.console.get_style
        segments: list[Segment] = []
        cells = 0
        plain = ""  # unstyled parts run together, as in Text.render
        for part, style in self._entry_parts(e, width):
            part = strip_control_codes(part)
            cells += cell_len(part)
            if not style:
                plain += part
                continue
            if plain:
                segments.append(Segment(plain, base))
                plain = ""
            key = (base, style)
            combined = styles.get(key)
            if combined is None:
                combined = styles[key] = base + (
                    style if isinstance(style, Style) else get_style(style)
                )
            segments.append(Segment(part, combined))
        if plain:
            segments.append(Segment(plain, base))
        return Strip(segments, cells).crop_extend(0, width, base)

    def _entry_parts(self, e: Entry, width: int) -> list[tuple[str, Style | str]]:
        """time, [message], recipient, what changed, error, time since the previous state,
        [carrier, gateway]: the parts in brackets only when there is room, and the most
        important first so a narrow panel cuts only the least important."""
        pal = self.palette()
        dim = self.get_component_rich_style("log--dim")
        wide = width >= 90
        t: list[tuple[str, Style | str]] = [(clock(e.received_at), dim), (" ", "")]
        if wide:
            t.append((f" {short_id(e.message_id, 14):<14} ", dim))
        who = safe(e.recipient, 22) if e.recipient else "(message)"
        if e.recipient and self.masked():
            who = mask(who)
        t.append((f"{who:<{15 if wide else 13}} ", "dim" if e.recipient is None else ""))
        if e.state == State.UNKNOWN:
            t.append((f"? {safe(e.event_type, 24)}", pal.state(State.UNKNOWN)))
        elif e.from_history or e.recipient is None:
            t.append(("→ ", dim))
            t.append((e.state.value, pal.state(e.state)))
        elif e.changed:
            if e.before is not None:
                t.append((e.before.value, pal.state(e.before)))
                t.append((" → ", dim))
            else:
                t.append(("→ ", dim))
            t.append((e.after.value if e.after else "?", f"bold {pal.state(e.after)}"))
        else:
            # A late or repeated state: stored and shown, but the recipient did not move.
            stays = e.after.value if e.after else "?"
            t.append((f"{e.state.value} (late, stays {stays})", dim))
        more: list[tuple[str, Style | str]] = []
        if e.error_code:
            more.append((f"  {safe(e.error_code, 8)}", pal.state(State.FAILED)))
        if e.since is not None and e.changed:
            more.append((f"  +{span(e.since)}", dim))
        if not wide:
            more.append((f"  {short_id(e.message_id, 12)}", dim))
        if e.carrier:
            more.append((f"  {safe(e.carrier, 20)}", dim))
        more.append((f"  {e.provider}", dim))
        # Each whole or not at all: cut at the panel's edge, "1503  65a…" read "1503  6".
        used = sum(cell_len(part) for part, _ in t)
        for part, style in more:
            used += cell_len(part)
            if used > width:
                break
            t.append((part, style))
        return t
