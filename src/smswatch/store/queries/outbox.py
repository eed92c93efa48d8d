"""What both outboxes share: how recent "recently delivered" is, how much of an app's answer
an attempt keeps, and how an event's forwards are put together from rows and attempts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from smswatch.core.forwarding import Attempt, Forward

RECENT_S = 5  # seconds: a target's deliveries this recent count as `delivered_recent`
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
