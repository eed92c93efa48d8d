"""Growing a Line-API widget's scrollable area without a relayout of the whole screen.

Textual's `virtual_size` is a layout reactive: every change reflows the screen and then
re-renders every widget on it, not only the one that grew. The live log and the in-flight table
grow on nearly every tick, so a monitor showing 20 events/s spent most of a core redrawing
panels that had not changed. A widget's own scrollable height does not move anything else, so
only a change in which scrollbars show needs the layout; otherwise updating the scrollbar is
enough, and the widget repaints the lines whose content changed.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.widget import Widget


def set_virtual_size(widget: ScrollView, size: Size) -> None:
    if size == widget.virtual_size:
        return
    bars = (widget.show_vertical_scrollbar, widget.show_horizontal_scrollbar)
    widget.set_reactive(Widget.virtual_size, size)
    if not widget.is_mounted or widget.size.area == 0:
        widget.refresh(layout=True)  # not placed yet: the first layout does the rest
        return
    # `_scroll_update` is what Textual's own layout calls for a scroll view whose virtual size
    # changed (textual is pinned exactly, so this private hook cannot move under us): it
    # decides which scrollbars show, sizes their thumbs and clamps the scroll offset.
    widget._scroll_update(size)
    if (widget.show_vertical_scrollbar, widget.show_horizontal_scrollbar) != bars:
        widget.refresh(layout=True)
    # Otherwise nothing on screen moved but the scrollbar, which `_scroll_update` repainted: the
    # caller repaints the lines whose content changed (all of them would cost a full redraw).
