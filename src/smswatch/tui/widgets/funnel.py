"""The funnel: recipients in each state, with bars, delivery rate and what is still moving."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from smswatch.domain import FUNNEL, State
from smswatch.hub import Counters
from smswatch.tui.themes import Palette


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
        # The height changes only when the conflicts line appears.
        relayout = old is None or bool(old.conflicts) != bool(counters.conflicts)
        self.update(self.table(), layout=relayout)

    def table(self) -> Table | Group:
        pal = self.palette()
        c = self.counters
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=10)
        grid.add_column(justify="right", width=7)
        grid.add_column(ratio=1)
        if c is None:
            return grid
        total = max(sum(c.funnel.values()), 1)
        bar_width = max(self.size.width - 20, 4)
        for state in FUNNEL:
            n = c.funnel[state]
            cells = round(n / total * bar_width)
            bar = Text("█" * cells + "·" * (bar_width - cells), style=pal.state(state))
            grid.add_row(Text(state.value, style=pal.state(state)), Text(f"{n:,}"), bar)
        done = c.funnel[State.DELIVERED] + c.funnel[State.FAILED]
        rate = f"{c.delivery_rate:.1%}" if c.delivery_rate is not None else "-"
        summary = Text()
        summary.append(rate, style=f"bold {pal.state(State.DELIVERED)}")
        summary.append(f" delivered of {done:,} done\n", style="dim")
        summary.append(f"{c.in_flight:,}", style="bold")
        summary.append(f" in flight of {c.messages:,} messages", style="dim")
        if c.conflicts:
            summary.append(f"\n{c.conflicts:,}", style=f"bold {pal.state(State.UNKNOWN)}")
            summary.append(" conflicting", style="dim")
        return Group(grid, summary)

    def on_resize(self) -> None:
        if self.counters is not None:
            self.update(self.table())
