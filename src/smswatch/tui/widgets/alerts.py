"""Failures & alerts: what needs a human, most urgent first.

- the store cannot commit (webhooks are being answered 503);
- rejected requests by reason (a wrong secret shows here within a tick);
- webhook silence while messages are still in flight;
- recipients stuck in a non-terminal state past their deadline;
- the team's app failing to take forwards (`--forward-to`), with its answer, and forwards
  given up on;
- failures grouped by error code, with the catalogue's name and whether a retry makes sense.
Each row opens something: the rejected requests, the stuck recipients, a filter on the code, or
the app's whole answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from smswatch.core.domain import State
from smswatch.gateways.catalogue import explain
from smswatch.reconcile.status import ReconcileStatus
from smswatch.sanitize import safe
from smswatch.store.outbox import TargetStatus
from smswatch.timefmt import span
from smswatch.tui.format import answer_label, failing, shown_target
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.rowtable import Column, RowTable
from smswatch.words import plural


@dataclass(frozen=True)
class Alert:
    kind: str  # store | rejected | silence | stuck | forward | forward-failed | failure | reconcile
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


def forward_alerts(targets: Sequence[TargetStatus], now: int, resend: bool) -> list[Alert]:
    """An error while a target's app fails (until a forward is delivered again), with the
    status and the start of its answer (untrusted: made safe here); else a warning for the
    forwards given up on, if any. The count is the events waiting for the app, or given up."""
    alerts = []
    for t in targets:
        where = shown_target(t.target, 60)
        if failing(t) and t.last is not None and t.failing_since is not None:
            answer = answer_label(t.last.status)
            said = safe(t.last.error, 160) if t.last.error else ""
            whole = (
                f"{where}: {answer} for {span(max(now - t.failing_since, 0))}, "
                f"{plural(t.backlog, 'event')} waiting"
                + (f"\n{safe(t.last.error, 600)}" if t.last.error else "")
            )
            alerts.append(
                Alert(
                    "forward",
                    f"forward:{t.target}",
                    "error",
                    f"forward failing: {answer}",
                    f"{said or answer} · {where}",
                    t.backlog,
                    whole,
                )
            )
        elif t.failed:
            hint = " · ctrl+p: Re-send every failed forward" if resend else ""
            alerts.append(
                Alert(
                    "forward-failed",
                    f"forward-failed:{t.target}",
                    "warning",
                    "forwards given up",
                    f"{where}{hint}",
                    t.failed,
                )
            )
    return alerts


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


def reconcile_alerts(status: ReconcileStatus | None) -> list[Alert]:
    """The webhooks that never came, as the gateways' status APIs tell (reconcile/): the
    delivery reports missing by the gateways' counts, the final states only a poll brought,
    the polls queued; an error while the API fails (its text never holds the key)."""
    if status is None:
        return []
    alerts = []
    if status.missing or status.recovered:
        parts = []
        if status.missing:
            parts.append(
                f"{plural(status.messages_missing, 'message')} short by the gateway's counts"
            )
        if status.recovered:
            parts.append(f"{plural(status.recovered, 'final state')} recovered by polling")
        if status.waiting:
            parts.append(f"{plural(status.waiting, 'poll')} queued")
        if status.standby:
            parts.append(f"{', '.join(status.standby)} polled by another instance")
        detail = " · ".join(parts)
        alerts.append(
            Alert(
                "reconcile",
                "reconcile",
                "warning",
                "webhooks missing",
                detail,
                status.missing + status.recovered,
                detail + " · a message's screen shows the gateway's counts beside ours",
            )
        )
    if status.last_error:
        alerts.append(
            Alert(
                "reconcile-error",
                "reconcile-error",
                "error",
                "gateway API failing",
                safe(status.last_error, 120),
                None,
            )
        )
    return alerts
