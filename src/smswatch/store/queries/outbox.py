"""What both outboxes share: how recent "recently delivered" is, how much of an app's answer
an attempt keeps, and how an event's forwards are put together from rows and attempts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smswatch.core.forwarding import Attempt, Forward, TargetStatus

EXCERPT = 512  # characters of an app's answer kept with an attempt


def forwards_of(
    events: Sequence[int],
    targets: Sequence[str],
    states: dict[tuple[int, str], str],
    tried: dict[int, list[Attempt]],
    without_row: Callable[[int, str], str],
) -> dict[int, list[Forward]]:
    """Each event's Forward to each target, from the rows' states and the attempts; the state
    of an (event, target) with no row is `without_row`'s (the back ends differ there)."""
    found: dict[int, list[Forward]] = {}
    for event in events:
        for target in targets:
            state = states.get((event, target)) or without_row(event, target)
            attempts = tuple(a for a in tried.get(event, ()) if a.target == target)
            found.setdefault(event, []).append(Forward(event, target, state, attempts))
    return found


@dataclass(frozen=True, slots=True)
class StatusQueries:
    """The SQL of a target's status, asked every second: every count reads a partial index or
    a counter, never every delivered row. `?` placeholders, in the order `target_status`
    passes them; each back end names its attempts table."""

    pending: str
    failed_by_status: str
    delivered_since: str
    last_delivered: str
    last_attempt: str
    failing_since: str


def status_queries(attempts: str) -> StatusQueries:
    return StatusQueries(
        pending="SELECT count(*) FROM forwards WHERE state = 'pending' AND target = ?",
        failed_by_status=(
            "SELECT status, count(*) FROM forwards WHERE state = 'failed' AND target = ? "
            "GROUP BY status ORDER BY count(*) DESC, status"
        ),
        delivered_since=(
            "SELECT count(*) FROM forwards WHERE state = 'delivered' AND target = ? "
            "AND delivered_at > ?"
        ),
        last_delivered=(
            "SELECT max(delivered_at) FROM forwards WHERE state = 'delivered' AND target = ?"
        ),
        last_attempt=(
            f"SELECT event, target, at, status, error, ms FROM {attempts} WHERE target = ? "
            "ORDER BY at DESC LIMIT 1"
        ),
        failing_since=(
            f"SELECT min(at), count(*) FROM {attempts} WHERE target = ? AND at > ? "
            "AND (status IS NULL OR status < 200 OR status > 299)"
        ),
    )


def target_status(
    target: str,
    rows: int,
    unlisted: int,
    pending: int,
    by_status: tuple[tuple[int | None, int], ...],
    recent: int,
    last: Sequence[Any] | None,
    since: int | None,
    failed_attempts: int,
) -> TargetStatus:
    """One target's status from its counts. `rows`: its rows in `forwards`; `unlisted`: the
    events it has yet to be given rows for (SQLite's log past its cursor)."""
    failed = sum(n for _, n in by_status)
    return TargetStatus(
        target=target,
        backlog=pending + unlisted,
        failed=failed,
        delivered=rows - pending - failed,
        delivered_recent=recent,
        last=Attempt(*last) if last else None,
        failing_since=since,
        failed_attempts=failed_attempts,
        failures_by_status=by_status,
    )
