"""In-process fan-out of what the store committed, coalesced into one delta per tick.

The writer reports every committed batch and the listener every rejected request. Subscribers
(the TUI, the feed server) never see individual events as they happen: every `tick` seconds the
hub hands each of them one `Delta` with the latest state of what changed, a bounded list of the
newest transitions, and the running counters. That bounds the UI's work per second whatever the
ingest rate, and a subscriber on another thread's loop is called on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smswatch.core.domain import FUNNEL, MessageState, State
from smswatch.core.figures import Totals
from smswatch.core.forwarding import TargetStatus
from smswatch.core.live import Counters, Delta, MessageChanges, Transition
from smswatch.core.reconciling import ReconcileStatus
from smswatch.core.records import Rejection
from smswatch.timefmt import now_us

if TYPE_CHECKING:
    # The writer calls the hub; a viewer that only reads deltas must not load the writer.
    from smswatch.core.live import Commit

log = logging.getLogger(__name__)

RATE_WINDOW = 60  # seconds of events/s history kept for sparklines
MAX_TRANSITIONS = 500  # per delta; older ones in a burst are counted as dropped from view
MAX_REJECTIONS = 100  # per delta


@dataclass(slots=True)
class _Pending:
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=MAX_TRANSITIONS))
    seen_transitions: int = 0
    messages: dict[str, MessageState] = field(default_factory=dict)
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=MAX_REJECTIONS))
    changed: bool = False


Subscriber = Callable[[Delta], Any]


class Hub:
    def __init__(
        self,
        tick: float = 0.1,
        clock: Callable[[], int] = now_us,
        changes: Callable[[bool], Awaitable[MessageChanges]] | None = None,
    ) -> None:
        self.tick = tick
        # Asked once a tick for what changed in the messages (the writer's `pull_changes`).
        self.changes = changes
        self.clock = clock
        self.started_at = clock()
        self.events = self.messages = self.in_flight = self.conflicts = 0
        self.funnel: dict[State, int] = dict.fromkeys(FUNNEL, 0)
        self.last_event_at: int | None = None
        self.duplicates = 0
        self.rejected = 0
        self.rejected_by_code: dict[str, int] = {}
        # The HTTP status each code was last answered with, from the rejection itself: a table
        # kept by hand beside the codes drifts (a new code would go out with no status).
        self.rejected_status: dict[str, int] = {}
        self.last_request_at: int | None = None
        self.store_error: str | None = None
        self.forwarding: tuple[TargetStatus, ...] = ()
        self.reconciling: ReconcileStatus | None = None
        self._rate: deque[tuple[int, int]] = deque(maxlen=RATE_WINDOW + 1)
        self._pending = _Pending()
        self._subscribers: tuple[
            tuple[Subscriber, asyncio.AbstractEventLoop | None, Callable[[], bool]], ...
        ] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_emit = 0.0

    def seed(self, totals: Totals) -> None:
        """Start the counters from what the database already holds."""
        self.events = totals.events
        self.messages = totals.messages
        self.in_flight = totals.in_flight
        self.conflicts = totals.conflicts
        self.funnel = dict(totals.funnel)
        self.last_event_at = totals.last_received_at

    # --- producers (engine loop) ----------------------------------------------------------------

    def commit(self, c: Commit) -> None:
        self.events += len(c.events)
        self.duplicates += c.duplicates
        # A stored webhook was received then, here or (a shared database) by another instance:
        # the silence alarm, "last webhook" and the rate watch the whole deployment. A poll's
        # answer is not a webhook: counted in, it would hide the very silence it was sent for.
        pushed = [ev.received_at for ev in c.events if not ev.polled]
        if pushed:
            self.last_event_at = newest = max(pushed)
            if self.last_request_at is None or newest > self.last_request_at:
                self.last_request_at = newest
            self._count_rate(len(pushed))
        p = self._pending
        p.transitions.extend(c.transitions)
        p.seen_transitions += len(c.transitions)
        p.changed = True

    def message_changes(self, c: MessageChanges) -> None:
        """What the writer says changed in the messages since it was last asked."""
        if not c.changed:
            return
        self.messages += c.new_messages
        self.in_flight += c.in_flight_delta
        for state, n in c.funnel_delta.items():
            self.funnel[state] += n
        self.conflicts += c.conflicts_delta
        p = self._pending
        for m in c.messages:
            p.messages[m.message_id] = m
        p.changed = True

    def request_seen(self, at: int) -> None:
        self.last_request_at = at

    def rejected_request(self, r: Rejection) -> None:
        self.rejected += 1
        # The status first: a scrape on the metrics thread copies the counts, then the statuses.
        self.rejected_status[r.code] = r.status
        self.rejected_by_code[r.code] = self.rejected_by_code.get(r.code, 0) + 1
        self._pending.rejections.append(r)
        self._pending.changed = True

    def store_health(self, error: str | None) -> None:
        self.store_error = error
        self._pending.changed = True

    def forward_status(self, status: tuple[TargetStatus, ...]) -> None:
        if status != self.forwarding:
            self.forwarding = status
            self._pending.changed = True

    def reconcile_status(self, status: ReconcileStatus) -> None:
        if status != self.reconciling:
            self.reconciling = status
            self._pending.changed = True

    def _count_rate(self, n: int) -> None:
        second = self.clock() // 1_000_000
        if self._rate and self._rate[-1][0] == second:
            self._rate[-1] = (second, self._rate[-1][1] + n)
        else:
            self._rate.append((second, n))

    # --- consumers ------------------------------------------------------------------------------

    def counters(self) -> Counters:
        return Counters(
            events=self.events,
            duplicates=self.duplicates,
            rejected=self.rejected,
            rejected_by_code=dict(self.rejected_by_code),
            funnel=dict(self.funnel),
            messages=self.messages,
            in_flight=self.in_flight,
            conflicts=self.conflicts,
            rate=self._rate_series(),
            last_request_at=self.last_request_at,
            last_event_at=self.last_event_at,
            store_error=self.store_error,
            started_at=self.started_at,
            forwarding=self.forwarding,
            reconciling=self.reconciling,
        )

    async def current(self) -> Counters:
        """The counters with the messages' latest changes in them (a snapshot for a viewer that
        starts now: the ticks bring those changes up to a tick late)."""
        await self._pull()
        return self.counters()

    def _rate_series(self) -> tuple[int, ...]:
        now = self.clock() // 1_000_000
        by_second = dict(self._rate)
        return tuple(by_second.get(s, 0) for s in range(now - RATE_WINDOW + 1, now + 1))

    def subscribe(
        self,
        callback: Subscriber,
        loop: asyncio.AbstractEventLoop | None = None,
        messages: Callable[[], bool] = lambda: True,
    ) -> Callable[[], None]:
        """Call `callback(delta)` every tick that has news (and at least once a second).
        With `loop`, the call is made on that loop (thread-safe). `messages` says whether the
        subscriber wants the changed messages in its deltas now. Returns an unsubscribe
        function."""
        entry = (callback, loop, messages)
        self._subscribers = (*self._subscribers, entry)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not entry)

        return unsubscribe

    # --- the tick -------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="smswatch-hub")

    async def stop(self) -> None:
        """Stop ticking; what changed since the last tick is handed out now, so the last
        commits and rejections before a shutdown still reach the log and the viewers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._pull()
            if self._pending.changed:
                self.emit()

    async def _pull(self) -> None:
        if self.changes is None:
            return
        # Copies of the changed messages only if a subscriber shows them: a headless serve
        # with no viewer attached needs only the counters.
        copies = any(want() for _, _, want in self._subscribers)
        try:
            self.message_changes(await self.changes(copies))
        except Exception:  # the store is failing (its health says so): ask again next tick
            log.exception("could not read what changed in the messages")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            await self._pull()
            now = loop.time()
            if self._pending.changed or now - self._last_emit >= 1.0:
                self._last_emit = now
                self.emit()

    def emit(self) -> Delta:
        """Hand the coalesced changes to every subscriber now."""
        p, self._pending = self._pending, _Pending()
        delta = Delta(
            at=self.clock(),
            counters=self.counters(),
            transitions=tuple(p.transitions),
            dropped=p.seen_transitions - len(p.transitions),
            messages=tuple(p.messages.values()),
            rejections=tuple(p.rejections),
        )
        here = self._loop
        for callback, loop, _ in self._subscribers:
            if loop is None or loop is here:
                callback(delta)
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(callback, delta)
        return delta
