"""The key bar at the bottom of every screen, fitted to the terminal's width.

Textual's footer lays its keys out in a row and cuts whatever does not fit, so on a narrow
terminal the last keys (`? help` among them) vanished, or one was cut mid-word (`t th▏`). This
one tightens the spacing first, then leaves out whole keys, least needed first, and always keeps
`? help`, which lists every key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ALWAYS = "help"
# Left out first, in this order: the palette and these app keys are in `?` help too.
FIRST_TO_GO = ("command_palette", "next_theme", "mask")
# Left out last (after the screen's own keys, rightmost first).
LAST_TO_GO = ("quit", "back", "app.pop_screen", "select")


@dataclass(frozen=True)
class Key:
    key: str  # as shown: "?", "esc", "⏎"
    description: str
    action: str
    palette: bool = False  # the command palette's key, docked at the right

    def width(self, compact: bool) -> int:
        """Cells taken, as Textual's footer styles lay it out."""
        text = cell_len(self.key) + (cell_len(self.description) + 1 if self.description else 0)
        if self.palette:  # always drawn compact: a border on its left, a cell on its right
            return text + 2
        return text + (1 if compact else 3)


def _rank(key: Key, index: int) -> tuple[int, int]:
    """Sort key for leaving keys out: lowest first."""
    action = key.action.removeprefix("app.") if key.action != "app.pop_screen" else key.action
    if action in FIRST_TO_GO:
        return (0, FIRST_TO_GO.index(action))
    if action in LAST_TO_GO:
        return (2, -LAST_TO_GO.index(action))
    return (1, -index)


def fit(keys: Sequence[Key], width: int) -> tuple[list[Key], bool]:
    """The keys shown in `width` cells, in their order, and whether spacing is compact."""
    for compact in (False, True):
        if sum(k.width(compact) for k in keys) <= width:
            return list(keys), compact
    shown = list(keys)
    order = sorted(range(len(keys)), key=lambda i: _rank(keys[i], i))
    for i in order:
        if sum(k.width(True) for k in shown) <= width:
            break
        if _action(keys[i]) != ALWAYS:
            shown.remove(keys[i])
    return shown, True


def _action(key: Key) -> str:
    return key.action.removeprefix("app.")


class KeyFooter(Footer):
    """A `Footer` that shows the keys that fit, `? help` always among them."""

    def __init__(self) -> None:
        super().__init__()
        self._fitted_for: int | None = None

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey)]
        found = [_key(w) for w in keys]
        width = self.size.width or self.app.size.width
        self._fitted_for = width
        shown, compact = fit(found, width)
        if compact != self.compact:
            self.set_reactive(Footer.compact, compact)
            self.set_class(compact, "-compact")
        kept = {id(k) for k in shown}
        for widget, key in zip(keys, found, strict=True):
            if id(key) in kept:
                if not key.palette:  # Textual draws that one compact whatever the footer
                    widget.compact = compact
                yield widget
        yield from _others(widgets)

    def on_resize(self) -> None:
        if self._fitted_for is not None and self._fitted_for != self.size.width:
            self._fitted_for = self.size.width
            self.call_later(self.recompose)


def _key(widget: FooterKey) -> Key:
    return Key(
        widget.key_display,
        widget.description,
        widget.action,
        palette=widget.has_class("-command-palette"),
    )


def _others(widgets: Iterable[Widget]) -> Iterable[Widget]:
    """Anything but single keys (binding groups): none of our bindings use them."""
    return (w for w in widgets if not isinstance(w, FooterKey))
