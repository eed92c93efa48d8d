"""The campaigns table: one row per campaign (a YeboLink bulk send of thousands of one-recipient
messages is one row), on the dashboard and on the campaigns screen."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text

from smswatch.core.campaigns import Summary
from smswatch.core.domain import State
from smswatch.timefmt import age
from smswatch.tui.format import counts_bar, untrusted
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.rowtable import Column, RowTable

SOURCE_LABEL = {
    "metadata": "meta",
    "run": "run",
    "tag": "tag",
    "gateway": "gw",
    "burst": "burst",
}


def percent(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


class CampaignsTable(RowTable):
    def __init__(
        self,
        palette: Callable[[], Palette],
        clock: Callable[[], int],
        *,
        id: str | None = None,
    ) -> None:
        self.palette = palette
        self.clock = clock
        super().__init__(
            [
                # Cut in the middle: bursts of one gateway and day differ only at the end.
                Column("campaign", None, 14, cut="middle"),
                Column("by", 5, priority=5),
                Column("gateway", 8, priority=4),
                Column("msgs", 7, align="right", priority=3),
                Column("rcpts", 6, align="right"),
                Column("progress", 14, priority=2),
                Column("done", 6, align="right", priority=1),
                Column("deliv", 6, align="right"),
                Column("failed", 6, align="right"),
                Column(
                    "unconf",
                    6,
                    align="right",
                    priority=1,
                    shown_if=lambda s: s.counts[State.UNCONFIRMED] > 0,
                ),
                Column("rate", 6, align="right", priority=1),
                Column("active", 6, align="right", priority=6),
            ],
            self._cells,
            key=lambda s: s.name,
            empty="no campaigns yet — they appear with the first message",
            volatile=self._active,
            id=id,
        )

    def _active(self, s: Summary) -> str:
        return age(self.clock(), s.last_received_at)

    def _cells(self, s: Summary) -> Sequence[Text]:
        pal = self.palette()
        name = untrusted(s.name, 60, "bold" if not s.finished else "dim")
        failed = s.counts[State.FAILED]
        unconfirmed = s.counts[State.UNCONFIRMED]
        return [
            name,
            Text(SOURCE_LABEL.get(s.source, s.source), style="dim"),
            Text(",".join(s.providers), style="dim"),
            Text(f"{s.messages:,}"),
            Text(f"{s.recipients:,}"),
            counts_bar(s.counts.__getitem__, s.recipients, 14, pal),
            Text("done" if s.finished else f"{s.progress:.0%}"),
            Text(f"{s.counts[State.DELIVERED]:,}", style=pal.state(State.DELIVERED)),
            Text(
                f"{failed:,}" if failed else "·", style=pal.state(State.FAILED) if failed else "dim"
            ),
            Text(
                f"{unconfirmed:,}" if unconfirmed else "·",
                style=pal.state(State.UNCONFIRMED) if unconfirmed else "dim",
            ),
            Text(percent(s.delivery_rate)),
            Text(self._active(s), style="dim"),
        ]
