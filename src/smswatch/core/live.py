"""What flows from the store to the screens: a committed batch, its transitions, and the
hub's coalesced delta with its running counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from smswatch.core.domain import (
    Event,
    MessageState,
    State,
)
from smswatch.core.forwarding import TargetStatus
from smswatch.core.reconciling import ReconcileStatus
from smswatch.core.records import Rejection


@dataclass(frozen=True, slots=True)
class Counters:
    events: int
    duplicates: int
    rejected: int
    rejected_by_code: dict[str, int]
    funnel: dict[State, int]
    messages: int
    in_flight: int
    conflicts: int
    rate: tuple[int, ...]  # events stored in each of the last RATE_WINDOW seconds, oldest first
    last_request_at: int | None  # any request to a webhook route, accepted or not
    last_event_at: int | None  # the last webhook stored (a poll's answer is not one)
    store_error: str | None
    started_at: int
    forwarding: tuple[TargetStatus, ...] = ()  # each forward target's outbox, if forwarding
    reconciling: ReconcileStatus | None = None  # polling the gateways' status APIs, if keyed

    @property
    def delivery_rate(self) -> float | None:
        done = self.funnel[State.DELIVERED] + self.funnel[State.FAILED]
        return self.funnel[State.DELIVERED] / done if done else None

    @property
    def events_per_second(self) -> float:
        recent = self.rate[-6:-1]  # the last five whole seconds
        return sum(recent) / len(recent) if recent else 0.0


@dataclass(frozen=True, slots=True)
class Delta:
    at: int
    counters: Counters
    transitions: tuple[Transition, ...] = ()
    dropped: int = 0
    messages: tuple[MessageState, ...] = ()  # the latest state of each message that changed
    rejections: tuple[Rejection, ...] = ()


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store answers one event of a commit: its id, the message it belongs to (the
    first one's, for a duplicate), and whether it was one."""

    event_id: str
    message_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Commit:
    """One committed batch, as published to the hub. What it did to the messages is not in it:
    the hub asks for that once a tick (`pull_changes`), coalesced, instead of every batch
    copying every message it touched."""

    at: int
    events: tuple[Event, ...]
    duplicates: int
    transitions: tuple[Transition, ...]
    rejections_stored: int


@dataclass(frozen=True, slots=True)
class Transition:
    """What one stored event did to its recipient (before = after = None for a message-level
    event)."""

    event: Event
    before: State | None
    after: State | None
    since: int | None  # microseconds since the recipient entered `before`, by event time


@dataclass(frozen=True, slots=True)
class MessageChanges:
    """What changed in the messages since the hub last asked, for its counters and screens:
    copies of the changed messages, and the counters' changes over them."""

    messages: tuple[MessageState, ...] = ()
    funnel_delta: dict[State, int] = field(default_factory=dict)
    new_messages: int = 0
    in_flight_delta: int = 0
    conflicts_delta: int = 0
    changed: int = 0  # messages that changed (their copies are in `messages` if asked for)
