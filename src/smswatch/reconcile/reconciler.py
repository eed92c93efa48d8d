"""Find the webhooks that never came: poll the gateways' status APIs for the messages that
look unfinished, and store what they say as polled events.

Both gateways say not to trust webhooks alone: Lisoloo drops an event for good after its retries
and calls `GET /status/{id}` authoritative; YeboLink says to poll a message with no final state
after ten minutes. The reconciler, on the engine's loop:

- every few seconds, takes from the store each keyed gateway's unfinished messages that have
  been quiet for `quiet` (no event received), the quietest first, and those with a recipient
  stuck past its state's deadline, and queues them;
- polls each gateway's queue one call at a time: the client keeps to the gateway's rate limit
  (Lisoloo: 120 a minute), so a big campaign's polls spread out instead of being refused, and
  the queue's length is shown;
- stores each answer through the writer, like a webhook: the domain rules fold it, a polled
  final state never replaces a pushed one (a disagreement is a conflict), and the same answer
  twice is stored once;
- polls a message again later only if it is still unfinished, less and less often (15 s, then
  up to 30 minutes), and stops once the gateway calls it final;
- for YeboLink, which has one message id per recipient, reads its filtered list instead when
  many messages wait (a bulk send's lost reports): the delivered and the failed messages created
  around theirs, 100 a call, instead of one call per message, as long as that costs at most half
  the calls. A message a sweep did not find is not final at the gateway; one two sweeps missed
  is asked about by its id.

`poll_now` answers an operator's request (a key on a message, `smswatch reconcile`) at once.

Instances sharing a PostgreSQL database poll one at a time: the one holding the lease
(store/postgres/lease.py) polls; the others stand by, still reading the missing counts for their
screens, and one of them takes over within a scan if it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from smswatch.config import stuck_deadlines
from smswatch.core.domain import State
from smswatch.core.reconciling import PollResult, ReconcileStatus
from smswatch.gateways.registry import GATEWAYS, file_gateways
from smswatch.reconcile.api import (
    ApiError,
    AuthError,
    GatewayApi,
    Listed,
    ListingApi,
    same_recipient,
)
from smswatch.reconcile.clients import UNPOLLED
from smswatch.store.api import ReconcileQueries
from smswatch.store.errors import StoreUnavailable, Unstorable

log = logging.getLogger(__name__)

# Seconds until a message still unfinished after a poll is polled again: soon at first (the
# gateway may have been mid-way), then less and less often.
BACKOFF_S = (15, 30, 60, 120, 300, 600, 1800)
SCAN_EVERY = 5.0  # seconds between looks at the store for quiet messages
# How long a message must have been quiet before it is polled: each gateway says.
DEFAULT_QUIET = {name: g.reconcile_quiet_us for name, g in GATEWAYS.items()}
SCAN_LIMIT = 2000  # messages taken from the store per gateway and scan
HORIZON_US = 86_400_000_000  # messages quiet for longer than a day are left alone
REFUSED_PAUSE_US = 600_000_000  # a gateway that refused the key is asked again in 10 minutes
MEMORY = 100_000  # messages whose next poll time is remembered
# A YeboLink list sweep: from this many waiting messages (fewer are cheaper asked about one by
# one), at most this many at once, spending at most half the calls asking each would cost.
SWEEP_MIN = 10
SWEEP_MAX = 5000
# Its window: the messages' first events, widened for the clocks' skew and the gateway's queue;
# messages first seen further apart than SWEEP_GAP_US are swept apart.
SWEEP_MARGIN_US = 600_000_000
SWEEP_GAP_US = 2 * SWEEP_MARGIN_US
SWEEP_TRIES = 2  # a message this many sweeps read whole did not find is asked about by its id
SWEEP_PAUSE_US = 600_000_000  # after a failed call, sweeps wait: asking each goes on meanwhile


class Lease(Protocol):
    """Leave to poll with one key, among instances sharing a database."""

    async def acquire(self, owner: int) -> bool:
        """Take the lease of `owner` (a gateway and key: `GatewayApi.rate_owner`), or check it
        is still held: True if held."""
        ...

    async def close(self) -> None: ...


class Reconciler:
    def __init__(
        self,
        clients: dict[str, GatewayApi],
        submit: Callable[[list[Any]], Any],
        reader: Callable[[], Any],
        clock: Callable[[], int],
        report: Callable[[ReconcileStatus], None] | None = None,
        quiet: dict[str, int] | None = None,
        scan_every: float = SCAN_EVERY,
        deadlines: dict[State, int] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.clients = clients
        self._submit = submit  # the writer's: async, returns once committed
        self._open_reader = reader  # async () -> ReconcileQueries
        self.clock = clock
        self._report = report
        self.quiet = {**DEFAULT_QUIET, **(quiet or {})}
        self.scan_every = scan_every
        self.deadlines = deadlines if deadlines is not None else stuck_deadlines({})
        self._queues: dict[str, deque[str]] = {name: deque() for name in clients}
        self._queued: set[str] = set()
        self._wake: dict[str, asyncio.Event] = {name: asyncio.Event() for name in clients}
        self._next: dict[str, tuple[int, int]] = {}  # message id -> (not before, polls so far)
        self._final: set[str] = set()  # the gateway called these final
        self._first_at: dict[str, int] = {}  # message id -> its first event's time (µs)
        self._swept: dict[str, int] = {}  # message id -> sweeps read whole that did not find
        # it (or SWEEP_TRIES once a sweep was cut short for its cost: asked about by id then)
        self._sweeps_paused: dict[str, int] = {}  # gateway -> no sweep before then (µs)
        self._refused: dict[str, int] = {}  # gateway -> when to try its key again (µs)
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: ReconcileQueries | None = None
        self._lease = lease  # None: this instance is the only one, it always polls
        self.leading = {name: lease is None for name in clients}
        self.status = ReconcileStatus(
            gateways=tuple(sorted(clients)), unpolled=(*UNPOLLED, *file_gateways())
        )

    # --- life cycle -----------------------------------------------------------------------------

    async def start_reader(self) -> None:
        """The reader alone: for one-off polls (`smswatch reconcile`), no scanning."""
        self._reader = await self._open_reader()

    async def start(self) -> None:
        await self.start_reader()
        self._tasks = [asyncio.create_task(self._scanning(), name="smswatch-reconcile-scan")]
        for name in self.clients:
            self._tasks.append(
                asyncio.create_task(self._polling(name), name=f"smswatch-reconcile-{name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        try:
            if self._reader is not None:
                await self._reader.close()
                self._reader = None
        finally:
            if self._lease is not None:
                await self._lease.close()

    async def _lead(self) -> None:
        """Take each key's lease, or check it is still ours; stand by for a gateway whose
        key another instance polls with (the rate limit is the key's, not the instance's)."""
        if self._lease is None:
            return
        for name, client in self.clients.items():
            held = await self._lease.acquire(client.rate_owner())
            was, self.leading[name] = self.leading[name], held
            if held and not was:
                log.info("reconcile: this instance polls %s now", client.title)
            if was and not held:
                self._drop_queue(name)
        standby = tuple(sorted(name for name, held in self.leading.items() if not held))
        if standby != self.status.standby:
            for name in set(standby) - set(self.status.standby):
                log.info(
                    "reconcile: another instance polls %s; standing by", self.clients[name].title
                )
            self._set(standby=standby)

    def _drop_queue(self, gateway: str) -> None:
        queue = self._queues[gateway]
        self._queued.difference_update(queue)
        for message_id in queue:
            self._first_at.pop(message_id, None)
            self._swept.pop(message_id, None)
        queue.clear()

    # --- what to poll ---------------------------------------------------------------------------

    async def _scanning(self) -> None:
        while True:
            try:
                await self._lead()
                await self.scan()
            except Exception as exc:  # the store away a moment: try again at the next scan
                log.warning("reconcile scan failed: %s", exc)
            await asyncio.sleep(self.scan_every)

    async def scan(self) -> None:
        """Queue each gateway's quiet unfinished messages that are due (if this instance
        polls), and report the missing counts (whichever instance polled)."""
        reader = self._reader
        assert reader is not None
        await self._queue_due(reader, self.clock())
        missing, messages, recovered = await reader.missing_totals()
        self._set(missing=missing, messages_missing=messages, recovered=recovered)

    async def _queue_due(self, reader: ReconcileQueries, now: int) -> None:
        polling = [name for name in self.clients if self.leading[name]]
        if not polling:
            return
        for name in polling:
            quiet = await reader.quiet_unfinished(
                name, now - self.quiet[name], now - HORIZON_US, SCAN_LIMIT
            )
            self.remember_first(name, quiet)
            for message_id, _, _ in quiet:
                self._maybe(name, message_id, now)
        # A busy message can hide a recipient stuck for an hour behind its other recipients'
        # traffic: recipients past their state's deadline bring their message in too.
        for r in await reader.stuck(self.deadlines, now, SCAN_LIMIT, since=now - HORIZON_US):
            if r.provider in polling:
                self._maybe(r.provider, r.message_id, now)
        self._set()  # the queues' lengths, once a scan

    def _maybe(self, gateway: str, message_id: str, now: int) -> None:
        due, _polls = self._next.get(message_id, (0, 0))
        if message_id not in self._final and due <= now:
            self._enqueue(gateway, message_id)

    def _enqueue(self, gateway: str, message_id: str) -> None:
        if message_id in self._queued:
            return
        self._queued.add(message_id)
        self._queues[gateway].append(message_id)
        self._wake[gateway].set()

    # --- polling --------------------------------------------------------------------------------

    async def _polling(self, gateway: str) -> None:
        queue = self._queues[gateway]
        while True:
            if not queue:
                self._wake[gateway].clear()
                await self._wake[gateway].wait()
                continue
            now = self.clock()
            paused = self._refused.get(gateway, 0)
            if paused > now:
                # The gateway refused the key: asking again at full rate changes nothing, and
                # Lisoloo may suspend a key that keeps knocking.
                await asyncio.sleep(min((paused - now) / 1e6, 5.0))
                continue
            batch = self.sweepable(gateway, queue)
            if batch:
                try:
                    results = await self.sweep(gateway, batch)
                except Exception as exc:  # the store failing under it: ask each instead, later
                    log.warning("reconcile: reading %s's list failed: %s", gateway, exc)
                    self._sweeps_paused[gateway] = self.clock() + SWEEP_PAUSE_US
                    continue
                done = set(results)
                self._queues[gateway] = queue = deque(m for m in queue if m not in done)
                self._queued -= done
                for result in results.values():
                    self._polled(result)
                self._set()
                continue
            message_id = queue.popleft()
            self._queued.discard(message_id)
            self._set()
            try:
                result = await self.poll(gateway, message_id)
            except Exception as exc:  # never let one message end a gateway's polling
                log.warning("reconcile: polling %s failed: %s", gateway, exc)
                result = PollResult(message_id, gateway, False, True, False, str(exc))
            self._polled(result)

    def _polled(self, result: PollResult) -> None:
        """When to ask about a message again, if ever."""
        now = self.clock()
        message_id = result.message_id
        _, polls = self._next.get(message_id, (0, 0))
        wait = BACKOFF_S[min(polls, len(BACKOFF_S) - 1)] * 1_000_000
        self._next[message_id] = (now + wait, polls + 1)
        if result.final:
            self._final.add(message_id)
        if len(self._next) > MEMORY:
            self._forget(now)

    def _forget(self, now: int) -> None:
        """Bound what is remembered per message: the oldest due times go first (a message
        asked about again is simply polled again, once)."""
        for message_id, _ in sorted(self._next.items(), key=lambda kv: kv[1][0])[: MEMORY // 2]:
            self._next.pop(message_id, None)
            self._final.discard(message_id)
            self._first_at.pop(message_id, None)
            self._swept.pop(message_id, None)

    def _can_sweep(self, gateway: str) -> bool:
        return isinstance(self.clients.get(gateway), ListingApi)

    def sweepable(self, gateway: str, waiting: Sequence[str]) -> list[str]:
        """The waiting messages one sweep of the gateway's list should look for: a listing API's,
        with a known first event, not missed by earlier sweeps, and first seen close together
        (the list's window is their span: a day-wide one would cost more than asking each).
        None if too few to pay, or while sweeps are paused after a failed one."""
        if (
            len(waiting) < SWEEP_MIN
            or not self._can_sweep(gateway)
            or self._sweeps_paused.get(gateway, 0) > self.clock()
        ):
            return []
        found = sorted(
            (self._first_at[m], m)
            for m in waiting
            if m in self._first_at and self._swept.get(m, 0) < SWEEP_TRIES
        )
        best: list[tuple[int, str]] = []
        run: list[tuple[int, str]] = []
        for item in found:
            if run and item[0] - run[-1][0] > SWEEP_GAP_US:
                best, run = max(best, run, key=len), []
            run.append(item)
        best = max(best, run, key=len)[:SWEEP_MAX]
        return [m for _, m in best] if len(best) >= SWEEP_MIN else []

    def remember_first(self, gateway: str, found: list[tuple[str, int, int | None]]) -> None:
        """First event times of a gateway's messages (from `quiet_unfinished`): where to look
        for them in its list, if it has one."""
        if self._can_sweep(gateway):
            for message_id, _, first_at in found:
                if first_at is not None:
                    self._first_at[message_id] = first_at

    async def sweep(self, gateway: str, batch: list[str]) -> dict[str, PollResult]:
        """Read the gateway's lists of failed and delivered messages created around the batch's
        first events, storing what they say of the batch page by page (a stop keeps what was
        found). Returns a result for each message settled: found final, or, when the whole
        window was read, not final at the gateway yet. The others are left to be asked about
        by id: the sweep was cut short because the rest of the list would cost more than half
        a call per message, or a call failed (then sweeps pause for a while)."""
        client = self.clients[gateway]
        assert isinstance(client, ListingApi)
        wanted = {m: self._first_at[m] for m in batch}
        start = min(wanted.values()) - SWEEP_MARGIN_US
        end = max(wanted.values()) + SWEEP_MARGIN_US
        budget = max(len(batch) // 2, 1)
        results: dict[str, PollResult] = {}
        whole, failed = True, False
        # Failures first: the shorter list as a rule, and one the delivered pages must not
        # leave without a call.
        order = (State.FAILED, State.DELIVERED)
        for i, status in enumerate(order):
            reserve = len(order) - 1 - i  # calls kept for the lists after this one
            page = 1
            while whole and len(results) < len(wanted):
                if not self.leading[gateway] or budget - reserve <= 0:
                    whole = False  # another instance polls now, or the budget is spent
                    break
                budget -= 1
                try:
                    answer = await client.messages(status.value, start, end, page=page)
                except ApiError as exc:
                    self._call_failed(gateway, exc)
                    whole, failed = False, True
                    break
                self._set(polls=self.status.polls + 1)
                hits = {
                    msg.message_id: msg
                    for msg in answer.messages
                    if msg.message_id in wanted
                    and msg.message_id not in results
                    and msg.state is not None
                    and msg.state.terminal
                }
                results.update(await self._store_found(gateway, hits))
                if not answer.has_more or not answer.messages:
                    break
                pages = -(-answer.total // len(answer.messages)) if answer.total else None
                if pages is not None and pages - page > budget - reserve:
                    whole = False  # the rest of the list costs more than asking each
                page += 1
        self._set(swept=self.status.swept + 1)
        if failed:
            self._sweeps_paused[gateway] = self.clock() + SWEEP_PAUSE_US
        for message_id in wanted.keys() - results.keys():
            if whole:  # read whole, and not in it: not final at the gateway yet
                self._swept[message_id] = self._swept.get(message_id, 0) + 1
                results[message_id] = PollResult(
                    message_id, gateway, True, False, False, via="list"
                )
            elif not failed and self.leading[gateway]:
                self._swept[message_id] = SWEEP_TRIES  # another sweep would cost the same
        return results

    async def _store_found(self, gateway: str, found: dict[str, Listed]) -> dict[str, PollResult]:
        client = self.clients[gateway]
        assert isinstance(client, ListingApi)
        events, ids = [], []
        results: dict[str, PollResult] = {}
        known = await self._recipients_of(list(found))
        for message_id, msg in found.items():
            ours = known.get(message_id)
            if msg.recipient and ours and not same_recipient(msg.recipient, ours):
                continue  # asked about by id, where the mismatch is reported
            event = client.listed_event(msg, msg.recipient or ours, self.clock())
            if event is None:  # no recipient anywhere: ask about it by id
                continue
            events.append(event)
            ids.append(message_id)
        if not events:
            return results
        try:
            outcome = await self._submit(events)
        except (StoreUnavailable, Unstorable) as exc:
            for message_id in ids:
                results[message_id] = PollResult(
                    message_id, gateway, True, False, False, f"not stored: {exc}", via="list"
                )
            return results
        for message_id, stored in zip(ids, outcome, strict=True):
            results[message_id] = PollResult(
                message_id, gateway, True, True, not stored.duplicate, via="list"
            )
        return results

    def _call_failed(self, gateway: str, exc: ApiError) -> None:
        if isinstance(exc, AuthError):
            # Asking again at full rate changes nothing, and Lisoloo may suspend a key that
            # keeps knocking.
            self._refused[gateway] = self.clock() + REFUSED_PAUSE_US
        self._set(polls=self.status.polls + 1, last_error=str(exc))

    async def poll(self, gateway: str, message_id: str) -> PollResult:
        """One call to the gateway about one message, its answer stored under the id asked
        about (whatever id the answer names). Never raises."""
        client = self.clients.get(gateway)
        if client is None:
            # Said apart from a missing key: no key would make such a gateway answer.
            why = "no status API: not polled" if gateway in UNPOLLED else f"no key for {gateway}"
            return PollResult(message_id, gateway, False, False, False, why)
        try:
            answer = await client.lookup(message_id, self._recipient_of, self.clock)
        except ApiError as exc:
            self._call_failed(gateway, exc)
            return PollResult(message_id, gateway, False, False, False, str(exc))
        except ValueError as exc:  # an id no URL can carry (".."): never asked about again
            self._set(polls=self.status.polls + 1, last_error=str(exc))
            return PollResult(message_id, gateway, False, True, False, str(exc))
        self._set(polls=self.status.polls + 1)
        found, final, event = answer.found, answer.final, answer.event
        if not found:
            # Unknown to the gateway (another account's id, or a typo): stop asking.
            return PollResult(message_id, gateway, False, True, False)
        if event is None:
            # Known, in a status smswatch cannot fold (not one of the documented ones): ask again.
            return PollResult(message_id, gateway, True, False, False)
        try:
            outcome = await self._submit([event, *answer.more])
        except (StoreUnavailable, Unstorable) as exc:
            return PollResult(message_id, gateway, True, False, False, f"not stored: {exc}")
        stored = any(not o.duplicate for o in outcome)
        return PollResult(message_id, gateway, True, final, stored)

    async def _recipient_of(self, message_id: str) -> str | None:
        """A message's one recipient, as the store has it, for a gateway with one message per
        recipient (an answer may name none)."""
        if self._reader is None:
            return None
        found = await self._reader.recipients(message_id, limit=1)
        return found[0].recipient if found else None

    async def _recipients_of(self, message_ids: list[str]) -> dict[str, str]:
        """`_recipient_of` for a page of messages, in one read."""
        if self._reader is None or not message_ids:
            return {}
        rows = await self._reader.recipients_of(message_ids)
        return {m: r for m, r in sorted(((row[0], row[1]) for row in rows), reverse=True)}

    async def poll_now(self, message_id: str, gateway: str | None = None) -> PollResult:
        """An operator's request: poll this message now (its gateway looked up if not given)."""
        if gateway is None:
            assert self._reader is not None
            msg = await self._reader.message(message_id)
            if msg is None:
                return PollResult(message_id, "?", False, False, False, "no such message")
            gateway = msg.provider
        self._final.discard(message_id)
        return await self.poll(gateway, message_id)

    def _set(self, **changes: Any) -> None:
        queued = {name: len(q) for name, q in self._queues.items()}
        # A 429's Retry-After pauses the client's limiter: until when, for the screen.
        wait = max((client.limiter.paused_for() for client in self.clients.values()), default=0)
        paused_until = self.clock() + int(wait * 1_000_000) if wait > 0 else None
        self.status = replace(self.status, queued=queued, paused_until=paused_until, **changes)
        if self._report is not None:
            self._report(self.status)
