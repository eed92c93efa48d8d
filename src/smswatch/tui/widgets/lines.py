"""Reusing a Line-API widget's finished screen lines when its content lines come back.

Textual turns each content line a widget draws into a screen line: it pads it, adds the border,
applies the colour filters, and the compositor then cuts the line at the panel's edges and
encodes it for the terminal. It caches the result by *position* only. When the live log moves up
by five lines, every position shows a different line, and every line went through all of that
again, though each had been finished a tick earlier a few rows lower: measured on the dashboard
at 50 events/s, that was most of the UI thread's drawing time.

This cache keys each finished line by the content strip it was made from. The log and the tables
keep their content strips (the same `Strip` object while a row does not change), so a line that
only moved comes back as the same finished strip, and with it the caches Textual keeps on a strip
(its division into chops, its escape codes). Everything else a finished line depends on (styles,
theme, focus, size) is compared too, once per render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from rich.style import Style
from rich.terminal_theme import TerminalTheme
from textual._ansi_theme import DEFAULT_TERMINAL_THEME
from textual._styles_cache import StylesCache
from textual.color import Color
from textual.css.styles import StylesBase
from textual.filter import LineFilter
from textual.geometry import Region, Size, Spacing
from textual.scroll_view import ScrollView
from textual.strip import Strip

from smswatch.tui.widgets.scrolling import scrolled_y

# Finished lines kept: a few screenfuls. When full, the older half goes.
KEPT = 600


class ReusedLines(StylesCache):
    """A widget's `_styles_cache` that reuses finished lines by content strip (textual is pinned
    exactly, so the private hooks cannot move under us)."""

    def __init__(self) -> None:
        super().__init__()
        self._finished: dict[int, tuple[Strip, tuple[Any, ...], Strip]] = {}
        # What a content line's finished form depends on besides the content: set per render.
        self._drawn_with: tuple[Any, ...] | None = None

    def render(
        self,
        styles: StylesBase,
        size: Size,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        filters: Sequence[LineFilter],
        border_title: Any,
        border_subtitle: Any,
        content_size: Size | None = None,
        padding: Spacing | None = None,
        crop: Region | None = None,
        opacity: float = 1.0,
        ansi_theme: TerminalTheme = DEFAULT_TERMINAL_THEME,
        native_ansi: bool = False,
    ) -> list[Strip]:
        # Everything StylesCache.render_line reads for a content line, but the content itself.
        # A border title is drawn on the border rows only, which are never reused: a new title
        # (the table's row count, say) leaves the content lines reusable.
        outlined = any(edge for edge, _colour in styles.outline)
        self._drawn_with = (
            None
            if outlined  # an outline is drawn over the first and last content lines
            else (
                size.width,
                content_size,
                base_background,
                background,
                padding if padding is not None else styles.padding,
                styles.border,
                styles.tint,
                styles.text_opacity,
                styles.hatch if styles.has_rule("hatch") else None,
                opacity,
                id(ansi_theme),
                native_ansi,
            )
        )
        return super().render(
            styles,
            size,
            base_background,
            background,
            render_content_line,
            filters,
            border_title,
            border_subtitle,
            content_size=content_size,
            padding=padding,
            crop=crop,
            opacity=opacity,
            ansi_theme=ansi_theme,
            native_ansi=native_ansi,
        )

    def render_line(
        self,
        styles: StylesBase,
        y: int,
        size: Size,
        content_size: Size,
        padding: Spacing,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        *rest: Any,
    ) -> Strip:
        gutter = styles.gutter
        content_y = y - gutter.top
        drawn_with = self._drawn_with
        if (
            drawn_with is None
            or not 0 <= content_y < content_size.height
            or y >= size.height - gutter.bottom
        ):
            return super().render_line(
                styles,
                y,
                size,
                content_size,
                padding,
                base_background,
                background,
                render_content_line,
                *rest,
            )
        content = render_content_line(content_y)
        kept = self._finished.get(id(content))
        if kept is not None and kept[0] is content and kept[1] == drawn_with:
            return kept[2]
        finished = super().render_line(
            styles,
            y,
            size,
            content_size,
            padding,
            base_background,
            background,
            lambda _y: content,
            *rest,
        )
        if len(self._finished) >= KEPT:
            for key in list(islice(self._finished, KEPT // 2)):
                del self._finished[key]
        self._finished[id(content)] = (content, drawn_with, finished)
        return finished


class LineView(ScrollView):
    """A Line-API widget whose finished lines are reused (above), which looks up its width and
    base style once a frame (`rich_style` walks every ancestor's styles, and the tables asked
    for it on every line), and whose scrollbar redraws only when its thumb moves."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._styles_cache = ReusedLines()
        self._frame: tuple[int, Style] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = (self.scrollable_content_region.width, self.rich_style)
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def frame(self) -> tuple[int, Style]:
        """(content width, base style) for drawing a line now."""
        return self._frame or (self.scrollable_content_region.width, self.rich_style)

    def watch_scroll_y(self, old: float, new: float) -> None:
        scrolled_y(self, old, new)
