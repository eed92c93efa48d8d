"""A polled state never silently overrides a pushed final state, whatever the order and the
times; a disagreement is flagged; and a final state only a poll brought is marked polled."""

from __future__ import annotations

import itertools

import pytest

from smswatch.core.domain import (
    Event,
    MessageInfo,
    MessageState,
    RecipientState,
    State,
    apply_event_to_message,
    fold,
)


def ev(state: State, at: int, polled: bool = False, n: int = 0) -> Event:
    kind = "poll.message" if polled else f"message.{state.value}"
    return Event(
        "yebolink", f"e{n}", f"k{n}{polled}{state}{at}", kind, state, "m1", "+1", at, at, "{}"
    )


def folded(events: list[Event]) -> RecipientState:
    rec = RecipientState("m1", "+1", "yebolink")
    for e in events:
        fold(rec, e)
    return rec


@pytest.mark.parametrize("poll_at", [5, 10, 20])
def test_a_poll_never_replaces_a_pushed_final_state_in_any_order(poll_at: int) -> None:
    events = [
        ev(State.QUEUED, 1, n=1),
        ev(State.SENT, 2, n=2),
        ev(State.FAILED, 10, n=3),
        ev(State.DELIVERED, poll_at, polled=True, n=4),
    ]
    results = {
        (r.state, r.state_at, r.conflict, r.polled)
        for order in itertools.permutations(events)
        for r in [folded(list(order))]
    }
    assert results == {(State.FAILED, 10, True, False)}


def test_a_final_state_only_a_poll_brought_is_marked_polled() -> None:
    r = folded([ev(State.QUEUED, 1), ev(State.SENT, 2), ev(State.DELIVERED, 9, polled=True)])
    assert (r.state, r.polled, r.conflict) == (State.DELIVERED, True, False)
    # The webhook arrives after all, saying the same: pushed now, no conflict.
    fold(r, ev(State.DELIVERED, 9, n=9))
    assert (r.state, r.polled, r.conflict) == (State.DELIVERED, False, False)


def test_the_gateways_counts_are_kept_from_the_latest_poll() -> None:
    msg = MessageState("m1", "lisoloo")
    for at, counts in ((20, (10, 1, 0)), (10, (5, 0, 6))):
        e = Event(
            "lisoloo",
            f"p{at}",
            f"p{at}",
            "poll.status",
            State.UNKNOWN,
            "m1",
            None,
            at,
            at,
            "{}",
            message_info=MessageInfo(gateway_counts=counts),
        )
        apply_event_to_message(msg, e)
    assert (msg.gateway_delivered, msg.gateway_failed, msg.gateway_pending) == (10, 1, 0)
    msg.counts[State.DELIVERED] = 7
    assert msg.missing == 4
