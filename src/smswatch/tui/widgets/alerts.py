"""Failures & alerts: the panel that draws the alert rules' answer (smswatch.tui.alert_rules),
most urgent first. Each row opens something: the rejected requests, the stuck recipients, a
filter on the code, or the app's whole answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text

from smswatch.core.domain import State
from smswatch.tui.alert_rules import Alert
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.rowtable import Column, RowTable

ICONS = {"error": "✗", "warning": "⚠", "info": "•"}


class AlertsPanel(RowTable):
    def __init__(self, palette: Callable[[], Palette], *, id: str | None = None) -> None:
        self.palette = palette
        super().__init__(
            [Column("alert", None, 12), Column("count", 7, align="right")],
            self._cells,
            key=lambda a: a.key,
            empty="all clear",
            detail=lambda a: Text(a.detail, style="dim"),
            id=id,
        )

    def _cells(self, a: Alert) -> Sequence[Text]:
        pal = self.palette()
        colour = {
            "error": f"bold {pal.state(State.FAILED)}",
            "warning": pal.state(State.SENT),
            "info": "",
        }[a.severity]
        text = Text(f"{ICONS[a.severity]} ", style=colour)
        text.append(a.title, style=colour)
        count = Text(f"{a.count:,}" if a.count is not None else "")
        return [text, count]
