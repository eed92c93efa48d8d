"""Failures & alerts: what needs a human, most urgent first.

- the store cannot commit (webhooks are being answered 503);
- rejected requests by reason (a wrong secret shows here within a tick);
- webhook silence while messages are still in flight;
- recipients stuck in a non-terminal state past their deadline;
- failures grouped by error code, with the catalogue's name and whether a retry makes sense.
Each row opens something: the rejected requests, the stuck recipients, or a filter on the code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from smswatch.catalogue import explain
from smswatch.domain import State
from smswatch.sanitize import safe
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.rowtable import Column, RowTable


@dataclass(frozen=True)
class Alert:
    kind: str  # store | rejected | silence | stuck | failure
    key: str
    severity: str  # error | warning | info
    title: str
    detail: str
    count: int | None = None
    target: Any = None  # what opening the row acts on


ICONS = {"error": "✗", "warning": "⚠", "info": "•"}


def failure_alert(provider: str, code: str | None, count: int, retryable: bool | None) -> Alert:
    info = explain(provider, code, retryable)
    name = info.title if info else "failed without a code"
    title = f"{safe(code, 10) if code else 'no code'}  {name}"
    detail = f"{provider} · retry: {info.retry}" if info else provider
    return Alert("failure", f"failure:{provider}:{code}", "info", title, detail, count, code)


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
