"""Growing a Line-API widget's scrollable area without a relayout of the whole screen, and
without redrawing scrollbars that look the same.

Textual's `virtual_size` is a layout reactive: every change reflows the screen and then
re-renders every widget on it, not only the one that grew. The live log and the in-flight table
grow on nearly every tick, so a monitor showing 20 events/s spent most of a core redrawing
panels that had not changed. A widget's own scrollable height does not move anything else, so
only a change in which scrollbars show needs the layout; otherwise updating the scrollbar is
enough, and the widget repaints the lines whose content changed.

A scrollbar redraws whenever its virtual size or position changes, though its thumb moves only
by eighths of a cell: the log and the table that grow and follow their tail or cursor on every
tick redrew both of the dashboard's scrollbars, twice a tick, to draw the same thumb.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from math import ceil

from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widget import Widget


def set_virtual_size(widget: ScrollView, size: Size) -> None:
    if size == widget.virtual_size:
        return
    bars = (widget.show_vertical_scrollbar, widget.show_horizontal_scrollbar)
    widget.set_reactive(Widget.virtual_size, size)
    if not widget.is_mounted or widget.size.area == 0:
        widget.refresh(layout=True)  # not placed yet: the first layout does the rest
        return
    # `_refresh_scrollbars` and `_scroll_update` are what Textual's own layout calls for a scroll
    # view whose virtual size changed (textual is pinned exactly, so these private hooks cannot
    # move under us): which scrollbars show, the size of their thumbs, the scroll offset clamped.
    widget._refresh_scrollbars()
    if (widget.show_vertical_scrollbar, widget.show_horizontal_scrollbar) != bars:
        widget._scroll_update(size)
        widget.refresh(layout=True)
        return
    # `_scroll_update`, with the scrollbars redrawn only if their thumbs moved.
    with one_scrollbar_update(widget):
        width, height = widget.container_size
        if widget.show_vertical_scrollbar and widget.styles.scrollbar_size_vertical:
            bar = widget.vertical_scrollbar
            bar.set_reactive(ScrollBar.window_virtual_size, size.height)
            bar.set_reactive(ScrollBar.window_size, height - widget.scrollbar_size_horizontal)
        if widget.show_horizontal_scrollbar and widget.styles.scrollbar_size_horizontal:
            bar = widget.horizontal_scrollbar
            bar.set_reactive(ScrollBar.window_virtual_size, size.width)
            bar.set_reactive(ScrollBar.window_size, width - widget.scrollbar_size_vertical)
        widget.scroll_x = widget.validate_scroll_x(widget.scroll_x)
        widget.scroll_y = widget.validate_scroll_y(widget.scroll_y)


def scrolled_y(widget: ScrollView, old: float, new: float, *, repaint: bool = True) -> None:
    """`ScrollView.watch_scroll_y`, with the scrollbar redrawn only if its thumb moved; without
    `repaint`, the caller repaints the lines that changed."""
    with one_scrollbar_update(widget):
        if widget.show_vertical_scrollbar:
            bar = widget.vertical_scrollbar
            bar.set_reactive(ScrollBar.position, bar.validate_position(new))
    if repaint and round(old) != round(new):
        widget.refresh(widget.size.region)


_updating: weakref.WeakSet[Widget] = weakref.WeakSet()


@contextlib.contextmanager
def one_scrollbar_update(widget: ScrollView) -> Iterator[None]:
    """Scrollbar changes made inside (with `set_reactive`, which does not redraw) are drawn once
    at the end, if the thumb moved. A log that grows and then follows its tail moves its thumb
    up and back down within one update: drawn at each step, it redrew for nothing."""
    if widget in _updating:  # nested: the outermost draws
        yield
        return
    before = _thumbs(widget)
    _updating.add(widget)
    try:
        yield
    finally:
        _updating.discard(widget)
        after = _thumbs(widget)
        if after[0] != before[0] and widget.show_vertical_scrollbar:
            widget.vertical_scrollbar.refresh()
        if after[1] != before[1] and widget.show_horizontal_scrollbar:
            widget.horizontal_scrollbar.refresh()


def _thumbs(widget: ScrollView) -> tuple[tuple[int, int, int] | None, ...]:
    return (
        thumb(widget.vertical_scrollbar) if widget.show_vertical_scrollbar else None,
        thumb(widget.horizontal_scrollbar) if widget.show_horizontal_scrollbar else None,
    )


def thumb(bar: ScrollBar) -> tuple[int, int, int]:
    """Where a scrollbar's thumb is drawn, in eighths of a cell, as `ScrollBarRender.render_bar`
    computes it; (length, 0, 0) when it draws none."""
    size = bar.size.height if bar.vertical else bar.size.width
    virtual = ceil(bar.window_virtual_size)
    window = ceil(bar.window_size if bar.window_size < bar.window_virtual_size else 0)
    if not (window and size and virtual and size != virtual):
        return (size, 0, 0)
    eighths = len(ScrollBarRender.VERTICAL_BARS)
    thumb_size = max(1, window / (virtual / size))
    offset = (size - thumb_size) * (bar.position / (virtual - window))
    start = int(offset * eighths)
    return (size, start, start + ceil(thumb_size * eighths))
