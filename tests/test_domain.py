"""The fold: highest rank wins, terminal states stick, conflicts are flagged, order is
irrelevant."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from smswatch.core.domain import (
    Event,
    MessageInfo,
    MessageState,
    RecipientState,
    State,
    apply_event_to_message,
    apply_transition,
    fold,
)

S = 1_000_000


def ev(state: State, at: int, **kw) -> Event:
    return Event(
        provider="lisoloo",
        event_id=f"{state}-{at}",
        dedupe_key=f"{state}-{at}",
        event_type=f"sms.{state}",
        state=state,
        message_id="m1",
        recipient="+1",
        occurred_at=at,
        received_at=at,
        payload="{}",
        **kw,
    )


def folded(events: list[Event]) -> RecipientState:
    rec = RecipientState("m1", "+1", "lisoloo")
    for e in events:
        fold(rec, e)
    return rec


def test_highest_rank_wins_and_a_late_lower_state_is_ignored() -> None:
    rec = folded([ev(State.PROCESSING, 1 * S), ev(State.DELIVERED, 5 * S), ev(State.SENT, 3 * S)])
    assert rec.state == State.DELIVERED
    assert rec.first_at[State.SENT] == 3 * S  # kept for timings even though it came late
    assert rec.conflict is False


def test_delivered_and_failed_keep_the_later_and_flag_conflict() -> None:
    rec = folded([ev(State.FAILED, 9 * S, error_code="1502"), ev(State.DELIVERED, 8 * S)])
    assert (rec.state, rec.conflict, rec.error_code) == (State.FAILED, True, "1502")
    rec = folded([ev(State.FAILED, 7 * S), ev(State.DELIVERED, 8 * S)])
    assert (rec.state, rec.conflict) == (State.DELIVERED, True)


def test_a_tie_between_terminal_states_goes_to_failed_whatever_the_order() -> None:
    a = [ev(State.DELIVERED, 5 * S), ev(State.FAILED, 5 * S)]
    assert folded(a).state == folded(a[::-1]).state == State.FAILED


def test_unconfirmed_gives_way_to_an_outcome_in_any_order_without_a_conflict() -> None:
    for outcome in (State.DELIVERED, State.FAILED):
        # The gateway gave up (unknown at 9 s), then the real receipt came (earlier or later).
        for at in (3 * S, 12 * S):
            events = [ev(State.SENT, 1 * S), ev(State.UNCONFIRMED, 9 * S), ev(outcome, at)]
            for order in itertools.permutations(events):
                rec = folded(list(order))
                assert (rec.state, rec.state_at, rec.conflict) == (outcome, at, False)
                assert rec.first_at[State.UNCONFIRMED] == 9 * S


def test_unconfirmed_is_final_and_no_lower_state_replaces_it() -> None:
    rec = folded([ev(State.UNCONFIRMED, 5 * S), ev(State.SENT, 7 * S), ev(State.QUEUED, 8 * S)])
    assert (rec.state, rec.state_at, rec.conflict) == (State.UNCONFIRMED, 5 * S, False)
    assert State.UNCONFIRMED.terminal and not State.UNCONFIRMED.outcome


def test_unknown_events_count_but_change_no_state() -> None:
    rec = folded([ev(State.SENT, 1 * S), ev(State.UNKNOWN, 2 * S)])
    assert rec.state == State.SENT
    assert rec.events == 2


def test_carrier_comes_from_the_latest_event_that_has_one() -> None:
    rec = folded([ev(State.SENT, 2 * S, carrier="b"), ev(State.PROCESSING, 1 * S, carrier="a")])
    assert rec.carrier == "b"


states = st.sampled_from(
    [
        State.QUEUED,
        State.PROCESSING,
        State.SENT,
        State.DELIVERED,
        State.FAILED,
        State.UNCONFIRMED,
        State.UNKNOWN,
    ]
)


@given(st.lists(st.tuples(states, st.integers(0, 20)), min_size=1, max_size=7), st.randoms())
def test_fold_is_order_independent(pairs, rnd) -> None:
    events = [ev(s, t * S, carrier=f"c{t}") for s, t in pairs]
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a, b = folded(events), folded(shuffled)
    assert (a.state, a.state_at, a.conflict, a.first_at) == (
        b.state,
        b.state_at,
        b.conflict,
        b.first_at,
    )
    assert (a.error_at, a.events) == (b.error_at, b.events)


def test_message_counts_follow_transitions_and_unseen_recipients_count_as_queued() -> None:
    msg = MessageState("m1", "lisoloo")
    announced = Event(
        "lisoloo",
        "q",
        "q",
        "sms.queued",
        State.QUEUED,
        "m1",
        None,
        0,
        0,
        "{}",
        message_info=MessageInfo(total_recipients=3),
    )
    apply_event_to_message(msg, announced)
    assert msg.count(State.QUEUED) == 3
    rec = RecipientState("m1", "+1", "lisoloo")
    for e in (ev(State.PROCESSING, 1), ev(State.DELIVERED, 2)):
        before = fold(rec, e)
        apply_transition(msg, before, rec.state, False)
    assert msg.count(State.QUEUED) == 2
    assert msg.count(State.DELIVERED) == 1
    assert msg.count(State.PROCESSING) == 0
    assert not msg.finished


def test_every_permutation_of_a_full_lifecycle_ends_delivered() -> None:
    life = [ev(State.QUEUED, 1), ev(State.PROCESSING, 2), ev(State.SENT, 3), ev(State.DELIVERED, 4)]
    for order in itertools.permutations(life):
        assert folded(list(order)).state == State.DELIVERED
