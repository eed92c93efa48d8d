"""The funnel: recipients in each state, with bars, delivery rate and what is still moving."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import Static

from smswatch.core.domain import State, shown_states
from smswatch.core.live import Counters
from smswatch.tui.themes import Palette
from smswatch.words import plural


class Funnel(Static):
    DEFAULT_CSS = """
    Funnel { height: auto; }
    """

    def __init__(self, palette: Callable[[], Palette], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.counters: Counters | None = None

    def show(self, counters: Counters) -> None:
        old = self.counters
        shown = (counters.funnel, counters.in_flight, counters.messages, counters.conflicts)
        if old is not None and shown == (old.funnel, old.in_flight, old.messages, old.conflicts):
            return
        self.counters = counters
        # The height changes only when the conflicts line or the unconfirmed row appears.
        relayout = old is None or _lines(old) != _lines(counters)
        self.update(self.table(), layout=relayout)

    def table(self) -> Text:
        """The rows as one Text, laid out as a grid would be (name, count, bar): a Rich Table
        measured and laid out its cells on every tick, the most expensive panel of the
        dashboard to redraw."""
        pal = self.palette()
        c = self.counters
        text = Text(no_wrap=True, end="")
        if c is None:
            return text
        total = max(sum(c.funnel.values()), 1)
        states = shown_states(c.funnel.__getitem__)
        label = max(len(s.value) for s in states)  # "unconfirmed", when shown, is the longest
        bar_width = max(self.size.width - 10 - label, 4)
        for state in states:
            n = c.funnel[state]
            cells = round(n / total * bar_width)
            style = pal.state(state)
            text.append(state.value.ljust(label), style=style)
            text.append(f" {n:>7,} ")
            text.append("█" * cells + "·" * (bar_width - cells) + " ", style=style)
            text.append("\n")
        answered = c.funnel[State.DELIVERED] + c.funnel[State.FAILED]
        rate = f"{c.delivery_rate:.1%}" if c.delivery_rate is not None else "-"
        text.append(rate, style=f"bold {pal.state(State.DELIVERED)}")
        text.append(f" delivered of {answered:,} done\n", style="dim")
        text.append(f"{c.in_flight:,}", style="bold")
        text.append(f" in flight of {plural(c.messages, 'message')}", style="dim")
        if c.conflicts:
            text.append(f"\n{c.conflicts:,}", style=f"bold {pal.state(State.UNKNOWN)}")
            text.append(" conflicting", style="dim")
        return text

    def on_resize(self) -> None:
        if self.counters is not None:
            self.update(self.table())


def _lines(c: Counters) -> tuple[bool, bool]:
    """What decides the funnel's height."""
    return bool(c.conflicts), bool(c.funnel[State.UNCONFIRMED])
