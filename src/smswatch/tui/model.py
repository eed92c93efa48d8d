"""What the dashboard shows, kept up to date from hub deltas (UI thread only).

Bounded: messages that finished leave the in-flight list after `LINGER` (they stay in the
database and in search), and at most `MAX_MESSAGES` are held; rejections keep the newest
`MAX_REJECTIONS`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from operator import attrgetter

from smswatch.core.campaigns import Summary
from smswatch.core.domain import MessageState
from smswatch.core.figures import FailureGroup
from smswatch.core.live import Counters, Delta
from smswatch.core.records import Rejection
from smswatch.source.api import Snapshot, Stuck

_NEWEST = attrgetter("first_received_at", "message_id")
LINGER_US = 60_000_000  # a finished message stays in the in-flight list this long
MAX_MESSAGES = 5000
MAX_REJECTIONS = 200


@dataclass
class LiveModel:
    counters: Counters
    messages: dict[str, MessageState] = field(default_factory=dict)
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=MAX_REJECTIONS))
    failures: list[FailureGroup] = field(default_factory=list)
    stuck: Stuck | None = None
    campaigns: list[Summary] = field(default_factory=list)  # as the dashboard last read them
    # What the snapshot already showed: the app subscribes before it reads the snapshot (so
    # nothing falls in between), and the first deltas can carry the same events and rejections.
    # At most a few hundred keys, kept for the session.
    known_events: set[str] = field(default_factory=set)
    known_rejections: set[tuple[int, str, str | None]] = field(default_factory=set)
    # The ids in `messages` that are finished: in_flight looks at these for the ones to let go,
    # not at every message (thousands on a busy monitor, on every tick with a new one).
    finished: set[str] = field(default_factory=set)

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> LiveModel:
        model = cls(snap.counters)
        for m in reversed(snap.messages):  # oldest first, so the newest end up last
            model._keep(m)
        model.rejections.extend(reversed(snap.rejections))
        model.known_events = {e.event_id for e in snap.events}
        model.known_rejections = {(r.received_at, r.code, r.remote) for r in snap.rejections}
        return model

    def apply(self, delta: Delta) -> Delta:
        """Take in a delta; returns it without what the snapshot already showed."""
        if self.known_events or self.known_rejections:
            delta = replace(
                delta,
                transitions=tuple(
                    t for t in delta.transitions if t.event.event_id not in self.known_events
                ),
                rejections=tuple(
                    r
                    for r in delta.rejections
                    if (r.received_at, r.code, r.remote) not in self.known_rejections
                ),
            )
        self.counters = delta.counters
        for m in delta.messages:
            self._keep(m)
        while len(self.messages) > MAX_MESSAGES:
            self.finished.discard(self.messages.pop(next(iter(self.messages))).message_id)
        self.rejections.extend(delta.rejections)
        return delta

    def _keep(self, m: MessageState) -> None:
        self.messages[m.message_id] = m
        if m.finished_at is not None:
            self.finished.add(m.message_id)
        else:
            self.finished.discard(m.message_id)

    def in_flight(self, now: int, failed_only: bool = False) -> list[MessageState]:
        """Unfinished messages and the recently finished, newest first."""
        for mid in [mid for mid in self.finished if now - self._finished_at(mid) > LINGER_US]:
            del self.messages[mid]
            self.finished.discard(mid)
        rows = [m for m in self.messages.values() if not failed_only or m.has_failures]
        # The key read in C: this runs on every tick with a new message, over thousands.
        try:
            rows.sort(key=_NEWEST, reverse=True)
        except TypeError:  # a message with no receive time yet: it sorts as 0
            rows.sort(key=lambda m: (m.first_received_at or 0, m.message_id), reverse=True)
        return rows

    def _finished_at(self, mid: str) -> int:
        at = self.messages[mid].finished_at
        assert at is not None
        return at

    def rejections_by_code(self) -> list[tuple[str, int, Rejection]]:
        """(code, count since start, latest rejection) for each kind seen, latest first."""
        latest: dict[str, Rejection] = {}
        for r in self.rejections:
            latest[r.code] = r
        seen: dict[str, int] = {}
        for r in self.rejections:
            seen[r.code] = seen.get(r.code, 0) + 1
        # Counted since the engine started; older ones come from the database's quarantine.
        counts = self.counters.rejected_by_code
        out = [(code, counts.get(code) or seen[code], r) for code, r in latest.items()]
        out.sort(key=lambda x: x[2].received_at, reverse=True)
        return out
