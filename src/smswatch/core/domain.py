"""Normalized events and the rules that fold them into recipient and message state.

Pure: no I/O. Times are integer microseconds since the Unix epoch (UTC) so that they compare,
subtract and sort exactly, whatever precision the gateway sent.

The fold is order-independent: whatever order a recipient's events arrive in, the result is the
same. That is what lets us accept the gateways' unordered, retried deliveries as they come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum


class State(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    # Final as far as the gateway will ever say (Vonage `unknown`, Telnyx
    # `delivery_unconfirmed`), but no outcome: a delivered or failed replaces it, in any order.
    UNCONFIRMED = "unconfirmed"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def outcome(self) -> bool:
        """A final answer (delivered or failed), which `unconfirmed` is not."""
        return self in (State.DELIVERED, State.FAILED)


_RANK = {
    State.QUEUED: 0,
    State.PROCESSING: 1,
    State.SENT: 2,
    State.DELIVERED: 3,
    State.FAILED: 3,
    State.UNCONFIRMED: 3,
    State.UNKNOWN: -1,
}
_TERMINAL = frozenset((State.DELIVERED, State.FAILED, State.UNCONFIRMED))

# The states a recipient can be counted in, in funnel order.
FUNNEL: tuple[State, ...] = (
    State.QUEUED,
    State.PROCESSING,
    State.SENT,
    State.DELIVERED,
    State.FAILED,
    State.UNCONFIRMED,
)


def shown_states(count: Callable[[State], int]) -> tuple[State, ...]:
    """The FUNNEL states a screen or a report gives a figure to: `unconfirmed` only once some
    recipient is in it, since most gateways never say it (JSON output keeps every state)."""
    if count(State.UNCONFIRMED):
        return FUNNEL
    return FUNNEL[:-1]


# Where no message id came with a per-recipient event and none could be inferred.
UNATTRIBUTED = "unattributed"


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """Message-level facts some events carry (Lisoloo sms.queued; every YeboLink event)."""

    total_recipients: int | None = None
    total_messages: int | None = None
    total_cost: float | None = None
    currency: str | None = None
    scheduled_at: int | None = None
    channel: str | None = None
    metadata: str | None = None  # compact JSON, for display
    # A poll of the gateway's status API (Lisoloo's aggregate): delivered, failed, pending.
    gateway_counts: tuple[int, int, int] | None = None
    # The gateway's own grouping of messages into one send (Twilio MessagingServiceSid, Vonage
    # client-ref): a message's campaign when nothing more specific names one (campaigns/rule.py).
    # Last: the log keeps these fields by position.
    group: str | None = None


# Events smswatch made by polling a gateway's status API, not pushed by its webhooks.
POLLED_PREFIX = "poll."


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook event, normalized across gateways."""

    provider: str
    event_id: str
    dedupe_key: str
    event_type: str
    state: State
    message_id: str | None
    recipient: str | None
    occurred_at: int
    received_at: int
    payload: str
    time_estimated: bool = False  # no event time in the payload: occurred_at is the receive time
    carrier: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    message_info: MessageInfo | None = None

    def with_message_id(self, message_id: str) -> Event:
        return replace(self, message_id=message_id)

    @property
    def polled(self) -> bool:
        """Made from a poll of the gateway's API (the event type says so, in the log too)."""
        return self.event_type.startswith(POLLED_PREFIX)


@dataclass(slots=True)
class RecipientState:
    """Current state of one recipient of one message, as folded from its events."""

    message_id: str
    recipient: str
    provider: str
    state: State | None = None
    state_at: int | None = None
    first_at: dict[State, int] = field(default_factory=dict)
    carrier: str | None = None
    carrier_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    error_at: int | None = None
    conflict: bool = False
    events: int = 0
    last_event_at: int | None = None
    updated_at: int | None = None  # receive time of the last event folded in
    polled: bool = False  # its final state came from a poll: no webhook brought it

    @property
    def key(self) -> tuple[str, str]:
        return (self.message_id, self.recipient)

    def since_queued(self, message_queued_at: int | None) -> tuple[int | None, int | None]:
        """(time to sent, time to its final state) from when it was queued: its own queued
        event (YeboLink) or, as Lisoloo queues per message, the message's."""
        start = self.first_at.get(State.QUEUED, message_queued_at)
        if start is None:
            return None, None
        sent = self.first_at.get(State.SENT)
        final = self.state_at if self.state and self.state.terminal else None
        return (
            sent - start if sent is not None else None,
            final - start if final is not None else None,
        )


def _terminal_beats(new: State, new_at: int, old: State, old_at: int) -> bool:
    """Between two terminal outcomes the later event time wins; on a tie, failed wins.

    A total order, so the winner does not depend on arrival order.
    """
    if new_at != old_at:
        return new_at > old_at
    return new == State.FAILED and old != State.FAILED


def fold(rec: RecipientState, ev: Event) -> State | None:
    """Apply one event to a recipient. Returns the state the recipient had before.

    - The current state is the highest-ranked one seen; terminal states are never replaced by a
      lower one, whatever the arrival order.
    - If both delivered and failed arrive, the later one by event time is kept and the conflict
      is flagged. `unconfirmed` (final, but no outcome) gives way to either, without a conflict.
    - Each state's first time is kept for timings; carrier comes from the latest event that had
      one; error fields from the latest failure.
    - A final state a webhook pushed beats one a poll found, whatever their times and order: a
      poll never silently overrides a pushed final state, and a disagreement is flagged.
    """
    before = rec.state
    at = ev.occurred_at
    rec.events += 1
    rec.updated_at = (
        ev.received_at if rec.updated_at is None else max(rec.updated_at, ev.received_at)
    )
    if rec.last_event_at is None or at > rec.last_event_at:
        rec.last_event_at = at
    if ev.carrier and (rec.carrier_at is None or at >= rec.carrier_at):
        rec.carrier, rec.carrier_at = ev.carrier, at

    new = ev.state
    if new == State.UNKNOWN:
        return before
    if new not in rec.first_at or at < rec.first_at[new]:
        rec.first_at[new] = at
    if new == State.FAILED and (rec.error_at is None or at >= rec.error_at):
        rec.error_code, rec.error_message = ev.error_code, ev.error_message
        rec.retryable, rec.error_at = ev.retryable, at

    cur = rec.state
    polled = ev.polled
    if cur is None or new.rank > cur.rank:
        rec.state = new
        rec.state_at = at if new.terminal else rec.first_at[new]
        rec.polled = polled and new.terminal
    elif new.terminal and cur.terminal:
        if new.outcome != cur.outcome:
            # `unconfirmed` is no answer: an outcome replaces it (pushed or polled, earlier or
            # later), is never replaced by it, and the two never conflict.
            if new.outcome:
                rec.state, rec.state_at, rec.polled = new, at, polled
            return before
        if new != cur:
            rec.conflict = True
        assert rec.state_at is not None
        if rec.polled != polled:
            if not polled:  # pushed beats polled
                rec.state, rec.state_at, rec.polled = new, at, False
        elif _terminal_beats(new, at, cur, rec.state_at):
            rec.state, rec.state_at = new, at
    elif new == cur:
        rec.state_at = rec.first_at[new]
    return before


@dataclass(slots=True)
class MessageState:
    """One message (a send to one or more recipients) with counts of its recipients' states."""

    message_id: str
    provider: str
    total_recipients: int | None = None
    total_messages: int | None = None
    total_cost: float | None = None
    currency: str | None = None
    scheduled_at: int | None = None
    channel: str | None = None
    metadata: str | None = None
    counts: dict[State, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL, 0))
    known_recipients: int = 0  # recipients with a known state
    conflicts: int = 0
    events: int = 0
    queued_at: int | None = None  # first queued event, message- or recipient-level
    first_at: int | None = None
    last_at: int | None = None
    first_received_at: int | None = None
    last_received_at: int | None = None
    finished_at: int | None = None  # receive time at which every recipient became terminal
    # The gateway's own counts, from the latest poll of its status API (Lisoloo).
    gateway_delivered: int | None = None
    gateway_failed: int | None = None
    gateway_pending: int | None = None
    gateway_at: int | None = None  # the gateway's time of those counts

    @property
    def expected_recipients(self) -> int:
        """The total the gateway announced, or what we have seen if it never said."""
        if self.total_recipients is None:
            return self.known_recipients
        return max(self.total_recipients, self.known_recipients)

    def count(self, state: State) -> int:
        """Recipients in a state. Lisoloo announces recipients in sms.queued and names them only
        from sms.processing on, so the ones not named yet count as queued."""
        n = self.counts.get(state, 0)
        if state == State.QUEUED:
            n += self.expected_recipients - self.known_recipients
        return n

    @property
    def terminal(self) -> int:
        return (
            self.counts[State.DELIVERED]
            + self.counts[State.FAILED]
            + self.counts[State.UNCONFIRMED]
        )

    @property
    def has_failures(self) -> bool:
        return self.counts[State.FAILED] > 0 or self.conflicts > 0

    @property
    def finished(self) -> bool:
        return self.known_recipients > 0 and self.terminal >= self.expected_recipients

    @property
    def missing(self) -> int | None:
        """Delivery reports the gateway has (by its last poll) and the webhooks never brought."""
        if self.gateway_delivered is None or self.gateway_failed is None:
            return None
        return max(self.gateway_delivered - self.counts[State.DELIVERED], 0) + max(
            self.gateway_failed - self.counts[State.FAILED], 0
        )


def apply_event_to_message(msg: MessageState, ev: Event) -> None:
    """Merge an event's message-level facts and times into the message."""
    msg.events += 1
    at, rx = ev.occurred_at, ev.received_at
    msg.first_at = at if msg.first_at is None else min(msg.first_at, at)
    msg.last_at = at if msg.last_at is None else max(msg.last_at, at)
    msg.first_received_at = rx if msg.first_received_at is None else min(msg.first_received_at, rx)
    msg.last_received_at = rx if msg.last_received_at is None else max(msg.last_received_at, rx)
    if ev.state == State.QUEUED and (msg.queued_at is None or at < msg.queued_at):
        msg.queued_at = at
    info = ev.message_info
    if info is None:
        return
    counts = info.gateway_counts
    if counts is not None and (msg.gateway_at is None or at >= msg.gateway_at):
        msg.gateway_delivered, msg.gateway_failed, msg.gateway_pending = counts
        msg.gateway_at = at
    # Later facts fill gaps and overwrite earlier ones; a retried sms.queued says the same thing.
    for name in (
        "total_recipients",
        "total_messages",
        "total_cost",
        "currency",
        "scheduled_at",
        "channel",
        "metadata",
    ):
        value = getattr(info, name)
        if value is not None:
            setattr(msg, name, value)


def apply_transition(
    msg: MessageState, before: State | None, after: State | None, conflict_added: bool
) -> None:
    """Move one recipient between the message's state counts."""
    if before == after:
        if conflict_added:
            msg.conflicts += 1
        return
    if before is not None and before != State.UNKNOWN:
        msg.counts[before] -= 1
    else:
        msg.known_recipients += 1
    if after is not None and after != State.UNKNOWN:
        msg.counts[after] += 1
    if conflict_added:
        msg.conflicts += 1
