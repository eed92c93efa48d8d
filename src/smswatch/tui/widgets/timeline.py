"""A recipient's timeline: one block per event, scrolled as one column.

When an action can act on one event (re-sending it to the team's app), one block is selected:
up/down move the selection (and scroll it into view), a click selects a block. Otherwise up/down
scroll, as in any scrolling panel, and nothing is highlighted.
"""

from __future__ import annotations

from rich.console import RenderableType
from textual import events
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static


class Timeline(VerticalScroll):
    DEFAULT_CSS = """
    Timeline > .event.-selected { background: $boost; }
    Timeline:focus > .event.-selected { background: $primary 25%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.selected: int | None = None  # None: nothing selectable

    @property
    def blocks(self) -> list[Widget]:
        return list(self.query_children(".event"))

    async def show(self, blocks: list[RenderableType]) -> None:
        """Show these blocks. As many as before (a reload after a forward attempt): each is
        updated where it is, so the reader keeps their place; else they are built afresh."""
        shown = self.blocks
        if shown and len(shown) == len(blocks):
            for widget, block in zip(shown, blocks, strict=True):
                widget.update(block)  # type: ignore[attr-defined]
        else:
            async with self.batch():
                await self.remove_children()
                await self.mount_all([Static(block, classes="event") for block in blocks])
        self.select(self.selected, scroll=False)

    def select(self, index: int | None, scroll: bool = True) -> None:
        """Select a block (kept within the blocks there are), or none with None."""
        shown = self.blocks
        self.selected = None if index is None or not shown else max(0, min(index, len(shown) - 1))
        for n, widget in enumerate(shown):
            widget.set_class(n == self.selected, "-selected")
        if scroll and self.selected is not None:
            # Blocks just mounted have no place yet: scroll once they are laid out.
            self.call_after_refresh(self._scroll_to_selected)

    def _scroll_to_selected(self) -> None:
        shown = self.blocks
        if self.selected is not None and self.selected < len(shown):
            self.scroll_to_widget(shown[self.selected], animate=False)

    def action_scroll_up(self) -> None:
        if self.selected is None:
            super().action_scroll_up()
        else:
            self.select(self.selected - 1)

    def action_scroll_down(self) -> None:
        if self.selected is None:
            super().action_scroll_down()
        else:
            self.select(self.selected + 1)

    def on_click(self, event: events.Click) -> None:
        if self.selected is None:
            return
        shown = self.blocks
        node = event.widget
        while node is not None and node is not self:
            if node in shown:
                self.select(shown.index(node))  # type: ignore[arg-type]
                return
            node = node.parent  # type: ignore[assignment]
