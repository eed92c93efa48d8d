"""The alert rules: what needs a human, most urgent first, decided from what a data source tells.

- the store cannot commit (webhooks are being answered 503);
- rejected requests by reason (a wrong secret shows here within a tick);
- webhook silence while messages are still in flight;
- recipients stuck in a non-terminal state past their deadline;
- the gateways' status APIs finding webhooks that never came, or failing;
- the team's app failing to take forwards (`--forward-to`), with its answer, and forwards
  given up on;
- failures grouped by error code, with the catalogue's name and whether a retry makes sense.

Pure functions of plain values (no Textual, no I/O), so the rules are tested on their own
(tests/test_alert_rules.py); the dashboard draws what `alerts` returns and redraws at once when
`raises_alert` says a delta started or ended one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smswatch.gateways.catalogue import explain
from smswatch.sanitize import safe, without_password
from smswatch.timefmt import age, span
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.core.figures import FailureGroup
    from smswatch.core.forwarding import TargetStatus
    from smswatch.core.live import Counters, Delta
    from smswatch.core.reconciling import ReconcileStatus
    from smswatch.core.records import Rejection
    from smswatch.source.api import Stuck


@dataclass(frozen=True)
class Alert:
    kind: str  # store | rejected | silence | stuck | forward | forward-failed | failure | reconcile
    key: str
    severity: str  # error | warning | info
    title: str
    detail: str
    count: int | None = None
    target: Any = None  # what opening the row acts on


def alerts(
    counters: Counters,
    rejections: Sequence[tuple[str, int, Rejection]],
    stuck: Stuck | None,
    failures: Sequence[FailureGroup],
    *,
    now: int,
    silence_after: int,
    can_resend: bool,
) -> list[Alert]:
    """Every alert standing now, most urgent first. `rejections`: (code, count, latest) per
    code, latest first; `silence_after`: µs without a webhook, messages in flight, before
    silence is an alert; `can_resend`: whether to offer re-sending given-up forwards."""
    c = counters
    found: list[Alert] = []
    if c.store_error:
        found.append(
            Alert(
                "store",
                "store",
                "error",
                "STORE FAILING — webhooks get 503",
                safe(c.store_error, 80),
            )
        )
    for code, count, r in rejections:
        # To the second, as ages elsewhere: in tenths the alert changed on every tick.
        when = age(now, r.received_at)
        detail = f"{safe(r.reason, 90)} ({safe(r.path, 30)}, {when} ago)"
        found.append(
            Alert(
                "rejected", f"rejected:{code}", "error", f"{r.status} {code}", detail, count, code
            )
        )
    if c.in_flight and c.last_request_at is not None:
        quiet = now - c.last_request_at
        if quiet > silence_after:
            found.append(
                Alert(
                    "silence",
                    "silence",
                    "warning",
                    f"no webhook for {span(quiet)}",
                    f"{plural(c.in_flight, 'message')} still in flight",
                )
            )
    if stuck and stuck.count:
        oldest = stuck.oldest[0] if stuck.oldest else None
        detail = ""
        if oldest and oldest.state and oldest.state_at:
            detail = f"oldest {oldest.state.value} for {span(now - oldest.state_at)}"
        found.append(Alert("stuck", "stuck", "warning", "recipients stuck", detail, stuck.count))
    found += reconcile_alerts(c.reconciling)
    found += forward_alerts(c.forwarding, now, resend=can_resend)
    for f in failures:
        found.append(failure_alert(f.provider, f.error_code, f.count, f.retryable))
    return found


# --- what a delta changes at once ------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """What of the counters an alert stands on that a delta can start or end, and the
    dashboard then draws at once rather than with its next summary."""

    store_error: str | None = None
    failing: tuple[str, ...] = ()  # forward targets whose app is failing


def standing(counters: Counters) -> Standing:
    return Standing(counters.store_error, failing_targets(counters.forwarding))


def raises_alert(delta: Delta, before: Standing) -> bool:
    """Whether the delta starts or ends an alert: a rejected request, the store failing or
    recovering, an app starting or ending to fail."""
    return bool(delta.rejections) or standing(delta.counters) != before


def newly_rejected(rejections: Iterable[Rejection], seen: set[str]) -> list[Rejection]:
    """The first rejection of each code not in `seen` (each is told once, as it happens)."""
    first: dict[str, Rejection] = {}
    for r in rejections:
        if r.code not in seen and r.code not in first:
            first[r.code] = r
    return list(first.values())


# --- forwarding (--forward-to) ---------------------------------------------------------------


def answered(status: int | None) -> bool:
    """Whether an app's answer counts as delivered (2xx)."""
    return status is not None and 200 <= status < 300


def answer_label(status: int | None) -> str:
    return "no answer" if status is None else str(status)


# Failed attempts since the last delivery before the app is called failing: one failure among
# deliveries (an app that fails now and then) does not raise and drop an alert every second.
FAILING_AFTER = 3


def failing(t: TargetStatus) -> bool:
    """The app is failing: its last answer was not a 2xx (or none came), and several attempts
    have failed with no delivery since."""
    return (
        t.failing_since is not None
        and t.failed_attempts >= FAILING_AFTER
        and t.last is not None
        and not answered(t.last.status)
    )


def failing_targets(forwarding: Sequence[TargetStatus]) -> tuple[str, ...]:
    return tuple(t.target for t in forwarding if failing(t))


def shown_target(url: str, limit: int = 80) -> str:
    """A forward target for the screen: never its password (it comes from our own config, but
    may be a viewer's copy: bounded and made safe all the same)."""
    return safe(without_password(url), limit)


def forward_alerts(targets: Sequence[TargetStatus], now: int, resend: bool) -> list[Alert]:
    """An error while a target's app fails (until a forward is delivered again), with the
    status and the start of its answer (untrusted: made safe here); else a warning for the
    forwards given up on, if any. The count is the events waiting for the app, or given up."""
    found = []
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
            found.append(
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
            found.append(
                Alert(
                    "forward-failed",
                    f"forward-failed:{t.target}",
                    "warning",
                    "forwards given up",
                    f"{where}{hint}",
                    t.failed,
                )
            )
    return found


# --- failures and reconciling ----------------------------------------------------------------


def failure_alert(provider: str, code: str | None, count: int, retryable: bool | None) -> Alert:
    info = explain(provider, code, retryable)
    name = info.title if info else "failed without a code"
    title = f"{safe(code, 10) if code else 'no code'}  {name}"
    detail = f"{provider} · retry: {info.retry}" if info else provider
    return Alert("failure", f"failure:{provider}:{code}", "info", title, detail, count, code)


def reconcile_alerts(status: ReconcileStatus | None) -> list[Alert]:
    """The webhooks that never came, as the gateways' status APIs tell (reconcile/): the
    delivery reports missing by the gateways' counts, the final states only a poll brought,
    the polls queued; an error while the API fails (its text never holds the key)."""
    if status is None:
        return []
    found = []
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
        found.append(
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
        found.append(
            Alert(
                "reconcile-error",
                "reconcile-error",
                "error",
                "gateway API failing",
                safe(status.last_error, 120),
                None,
            )
        )
    return found
