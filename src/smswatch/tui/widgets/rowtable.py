"""A virtual table: renders only the rows on screen, so 10,000 rows cost what 40 do.

Textual's DataTable re-renders every visible cell on any change and takes seconds to fill with
thousands of rows; this Line-API widget keeps rows as plain objects and turns only the visible
ones into cells when drawn. It has a sticky header, a cursor that stays on the same row (by key)
across updates, columns that drop out by priority when the widget is narrow, and posts
`RowTable.Selected` on enter or double click.

Each drawn line is kept until its row changes: a live table shifts or updates a few rows per tick,
and without the cache every visible line was rebuilt ten times a second. A line is assumed to
depend only on its row, the width, the styles and the cursor; a table whose cells also depend
on something else (the clock, say) passes `volatile`, which returns that part for a row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip

from smswatch.tui.format import cut_end, cut_middle, cut_words, fit_figure
from smswatch.tui.widgets.lines import LineView
from smswatch.tui.widgets.scrolling import one_scrollbar_update, scrolled_y, set_virtual_size


@dataclass(frozen=True)
class Column:
    """A column. Right-aligned cells are figures: one that does not fit is shortened
    (`fit_figure`: 1,234 → 1234 → 1.2k), never cut. A left-aligned cell is cut with an
    ellipsis, at its end or, with `cut="middle"`, keeping both ends."""

    title: str
    width: int | None = None  # None: share the leftover width
    min_width: int = 6
    align: str = "left"
    priority: int = 0  # higher numbers are dropped first when the table is narrow
    cut: str = "end"
    # Shown only while some row needs it (an "unconfirmed" count most gateways never give).
    shown_if: Callable[[Any], bool] | None = None


class RowTable(LineView, can_focus=True):
    DEFAULT_CSS = """
    RowTable { height: 1fr; overflow-x: hidden; }
    RowTable > .rowtable--header { text-style: bold; color: $text-muted; background: $panel; }
    RowTable > .rowtable--cursor { background: $boost; }
    RowTable:focus > .rowtable--cursor { background: $primary 40%; }
    RowTable > .rowtable--empty { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--empty",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "up", show=False),
        Binding("down,j", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("enter", "select", "open"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class RowMessage(Message):
        def __init__(self, table: RowTable, row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> RowTable:
            return self.table

    # Siblings, not parent and child: Textual hands a message to the handlers of its base classes
    # too, so a cursor move would otherwise open the row as if enter had been pressed.
    class Selected(RowMessage):
        """Enter or double click on a row."""

    class Highlighted(RowMessage):
        """The cursor moved to another row."""

    def __init__(
        self,
        columns: Sequence[Column],
        cells: Callable[[Any], Sequence[Text]],
        key: Callable[[Any], Hashable],
        empty: str = "nothing yet",
        *,
        detail: Callable[[Any], Text] | None = None,
        volatile: Callable[[Any], Hashable] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self.cells = cells
        self.key = key
        self.empty = empty
        # With `detail`, every row takes a second, full-width line under its cells.
        self.detail = detail
        self.lines_per_row = 2 if detail else 1
        self.volatile = volatile
        self.rows: list[Any] = []
        self._keys: set[Hashable] = set()
        # (row key, line of the row) -> (row, what else it was drawn with, the strip)
        self._lines: dict[tuple[Hashable, int], tuple[Any, tuple[Any, ...], Strip]] = {}
        self._header: tuple[tuple[Any, ...], Strip] | None = None
        self._setting_rows = False
        # Columns left out whatever the width, until some row needs them (`Column.shown_if`).
        self._hidden = {i for i, c in enumerate(self.columns) if c.shown_if is not None}

    # --- data ---------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[Any]) -> None:
        """Replace the rows; the cursor stays on the row with the same key if it is still there,
        but a table nobody is in, its cursor on the first row, stays at the top: a live panel
        must show what comes in first (a new error alert), not follow a row down out of view.
        Unchanged rows (the same objects, or equal ones) cost nothing: no redraw."""
        if len(rows) == len(self.rows) and all(
            a is b or a == b for a, b in zip(rows, self.rows, strict=True)
        ):
            return
        current = self.current
        current_key = self.key(current) if current is not None else None
        before = self._on_screen()
        self.rows = list(rows)
        keys = [self.key(row) for row in self.rows]
        self._keys = set(keys)
        self._lines = {k: v for k, v in self._lines.items() if k[0] in self._keys}
        self._show_columns()
        index = self.cursor
        if current_key in self._keys and (self.cursor or self.has_focus):
            index = keys.index(current_key)
        # Scrolled at once, not after the next frame: that frame would show the rows moved and
        # the cursor's row off its place, and the scroll would take another.
        self._setting_rows = True
        try:
            with one_scrollbar_update(self):
                set_virtual_size(self, Size(self.size.width, self._height()))
                self.set_reactive(RowTable.cursor, self._clamp(index))
                self._scroll_cursor_into_view(immediate=True)
        finally:
            self._setting_rows = False
        self._refresh_changed(before)

    def watch_scroll_y(self, old: float, new: float) -> None:
        # While the rows are set, the lines that show something else are repainted after.
        scrolled_y(self, old, new, repaint=not self._setting_rows)

    def _on_screen(self) -> list[tuple[Any, bool, int] | None]:
        """What each line under the header shows now: (its row, under the cursor, which of the
        row's lines), or None. The part matters: scrolled by one line, a row's detail line is
        where its cells were, and the same row there is not the same line."""
        top = int(self.scroll_y)
        rows, per, cursor = self.rows, self.lines_per_row, self.cursor
        shown: list[tuple[Any, bool, int] | None] = []
        for y in range(1, self.size.height):
            index, part = divmod(top + y - 1, per)
            shown.append((rows[index], index == cursor, part) if index < len(rows) else None)
        return shown

    def _refresh_changed(self, before: list[tuple[Any, bool, int] | None]) -> None:
        """Repaint only the lines whose row changed. A live table updates a few rows a tick, and
        a whole repaint sends every line (borders included) through Textual's compositor again:
        measured, that was most of the dashboard's drawing time."""
        after = self._on_screen()
        if len(after) != len(before) or not after:
            self.refresh()
            return
        width = self.size.width
        for y, (old, new) in enumerate(zip(before, after, strict=True), start=1):
            if old is new:
                continue
            if (
                old is None
                or new is None
                or old[1:] != new[1:]
                or not (old[0] is new[0] or old[0] == new[0])
            ):
                self.refresh(Region(0, y, width, 1))

    def has_key(self, key: Hashable) -> bool:
        """Whether a row with this key is listed."""
        return key in self._keys

    def restyle(self) -> None:
        """Colours or masking changed: draw every line afresh."""
        self._lines.clear()
        self._header = None
        self.refresh()

    def set_empty(self, text: str) -> None:
        self.empty = text
        if not self.rows:
            self.refresh()

    @property
    def current(self) -> Any | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    def _height(self) -> int:
        lines = len(self.rows) * self.lines_per_row + 1
        # Scrolled to the end, the top line is a row's first: a blank line or so at the bottom
        # makes the furthest scroll a whole number of rows.
        over = lines - self.size.height
        return lines + (-over % self.lines_per_row if over > 0 else 0)

    def _clamp(self, index: int) -> int:
        return max(0, min(index, len(self.rows) - 1)) if self.rows else 0

    # --- keys and mouse -------------------------------------------------------------------------

    def action_cursor(self, step: int) -> None:
        self.cursor = self._clamp(self.cursor + step)

    def action_page(self, direction: int) -> None:
        page = max((self.size.height - 2) // self.lines_per_row, 1)
        self.cursor = self._clamp(self.cursor + direction * page)

    def action_jump(self, where: int) -> None:
        self.cursor = self._clamp(where if where >= 0 else len(self.rows) - 1)

    def action_select(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.Selected(self, row))

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        if old != new and self.current is not None:
            self.post_message(self.Highlighted(self, self.current))

    def _scroll_cursor_into_view(self, immediate: bool = False) -> None:
        visible = max(self.size.height - 1, 1)
        top = int(self.scroll_y)
        per = self.lines_per_row
        first = self.cursor * per
        last = first + per - 1
        if first < top:
            self.scroll_to(y=first, animate=False, immediate=immediate)
        elif last >= top + visible:
            # To a row's first line, so the top line is never a row's detail without its cells.
            y = min(-(-(last - visible + 1) // per) * per, first)
            self.scroll_to(y=y, animate=False, immediate=immediate)

    async def _on_click(self, event: events.Click) -> None:
        if event.y == 0:
            return
        index = (int(self.scroll_y) + event.y - 1) // self.lines_per_row
        if 0 <= index < len(self.rows):
            self.cursor = index
            if event.chain >= 2:
                self.action_select()

    def _show_columns(self) -> None:
        """Leave out each column with `shown_if` that no row needs (a count that is zero
        everywhere), so it leaves its width to the others."""
        hidden = {
            i
            for i, c in enumerate(self.columns)
            if c.shown_if is not None and not any(map(c.shown_if, self.rows))
        }
        if hidden != self._hidden:
            self._hidden = hidden
            self._lines.clear()  # every line was laid out with the other columns
            self._header = None
            self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        set_virtual_size(self, Size(event.size.width, self._height()))

    # --- drawing --------------------------------------------------------------------------------

    def layout_columns(self, width: int) -> list[tuple[int, int]]:
        """(column index, width) for the columns that fit in `width`, never wider: columns are
        dropped by priority (the highest number first; among equals, from the right), down to
        the first, which is narrowed if it alone is too wide. A line wider than the table
        would be cut at its edge, and a figure cut there reads as another (141 as 14)."""
        columns = self.columns
        shown = [i for i in range(len(columns)) if i not in self._hidden]

        def needed(idx: list[int]) -> int:
            return sum(columns[i].width or columns[i].min_width for i in idx) + len(idx) - 1

        while len(shown) > 1 and needed(shown) > width:
            shown.remove(max(shown[1:], key=lambda i: (columns[i].priority, i)))
        fixed = sum(columns[i].width or 0 for i in shown) + len(shown) - 1
        flexible = [i for i in shown if columns[i].width is None]
        spare = max(width - fixed, 0)
        widths = {}
        for n, i in enumerate(flexible):
            share = spare // len(flexible) + (1 if n < spare % len(flexible) else 0)
            widths[i] = max(share, columns[i].min_width)
        layout = [(i, columns[i].width or widths[i]) for i in shown]
        if len(layout) == 1:
            layout = [(layout[0][0], min(layout[0][1], max(width, 0)))]
        return layout

    def _fit(self, cell: Text, width: int, column: Column) -> Text:
        if cell.cell_len <= width:
            return cell
        if column.align == "right":
            short = Text(fit_figure(cell.plain, width), style=cell.style)
            if cell.spans:  # a figure has one style: keep it
                short.stylize(cell.spans[0].style)
            return short
        if column.cut == "middle":
            return cut_middle(cell, width)
        return cut_end(cell, width)

    def _line(self, cells: Sequence[Text], layout: list[tuple[int, int]], style: Style) -> Text:
        line = Text(no_wrap=True, end="")
        for n, (i, width) in enumerate(layout):
            if n:
                line.append(" ")
            cell = cells[i].copy() if i < len(cells) else Text()
            cell.no_wrap = True
            cell = self._fit(cell, width, self.columns[i])
            pad = width - cell.cell_len
            if self.columns[i].align == "right":
                line.append(" " * pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(" " * pad)
        # Under the cells' own styles: Text.render ignores a Text's base style if it has no spans.
        line.stylize_before(style)
        return line

    def render_line(self, y: int) -> Strip:
        width, base = self.frame()
        if y == 0:
            style = base + self.get_component_rich_style("rowtable--header")
            if self._header is not None and self._header[0] == (width, style):
                return self._header[1]
            titles = [Text(c.title) for c in self.columns]
            strip = self._strip(self._line(titles, self.layout_columns(width), style))
            self._header = ((width, style), strip)
            return strip
        line = int(self.scroll_y) + y - 1
        index, part = divmod(line, self.lines_per_row)
        if index >= len(self.rows):
            if line == 0 and not self.rows:
                text = Text(f" {self.empty}")
                text.stylize_before(base + self.get_component_rich_style("rowtable--empty"))
                return self._strip(text)
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("rowtable--cursor")
        drawn_with = (width, style, self.volatile(row) if self.volatile else None)
        key = (self.key(row), part)
        kept = self._lines.get(key)
        if kept is not None and (kept[0] is row or kept[0] == row) and kept[1] == drawn_with:
            return kept[2]
        strip = self._strip(self._row_line(row, part, width, style))
        self._lines[key] = (row, drawn_with, strip)
        return strip

    def _row_line(self, row: Any, part: int, width: int, style: Style) -> Text:
        if part == 0:
            return self._line(self.cells(row), self.layout_columns(width), style)
        assert self.detail is not None
        text = Text("  ", no_wrap=True, end="")
        text.append_text(cut_words(self.detail(row), max(width - 2, 1)))
        text.append(" " * max(width - text.cell_len, 0))
        text.stylize_before(style)
        return text

    def _strip(self, text: Text) -> Strip:
        width, base = self.frame()
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(0, width, base)
