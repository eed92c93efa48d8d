"""Group commit, the listener's side of a writer, the same for both back ends.

Requests wait in a queue; the back end's writer task takes them a batch at a time, commits the
batch in one transaction and resolves each request's future only after its COMMIT (so an HTTP
2xx means "on disk"). While one batch commits the next one queues up behind it, which is what
makes the commit cost per event fall as load rises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smswatch.core.domain import Event
from smswatch.core.live import Stored
from smswatch.core.records import Rejection
from smswatch.store.errors import StoreUnavailable


@dataclass(slots=True)
class QueuedRequest:
    """One request's events waiting in a writer's queue, and the future its handler awaits."""

    events: Sequence[Event]
    future: asyncio.Future[list[Stored]]


class GroupCommit:
    """The listener's side of a writer, the same for both back ends: requests wait in a queue,
    the writer task takes them a batch at a time and resolves each one's future after the
    batch's COMMIT. A subclass sets `_queue`, `_rejections`, `_task`, `_loop`, `max_batch` and
    `quarantine_keep`, and runs a task that calls `_batch_from`."""

    _queue: asyncio.Queue[QueuedRequest | None]
    _rejections: list[Rejection]
    _task: asyncio.Task[None] | None
    _loop: asyncio.AbstractEventLoop | None
    max_batch: int
    quarantine_keep: int

    @property
    def depth(self) -> int:
        """Requests queued and not yet committed: the listener stops reading above a limit."""
        return self._queue.qsize()

    async def submit(self, events: Sequence[Event]) -> list[Stored]:
        """Store events; returns once they are committed. Raises StoreUnavailable/Unstorable."""
        return await self.submit_nowait(events)

    def submit_nowait(self, events: Sequence[Event]) -> asyncio.Future[list[Stored]]:
        """Queue events for the next batch; the future is resolved once they are committed
        (or fails with StoreUnavailable/Unstorable). On the writer's loop."""
        if self._task is None or self._loop is None:
            raise StoreUnavailable("the store is not running")
        future: asyncio.Future[list[Stored]] = self._loop.create_future()
        self._queue.put_nowait(QueuedRequest(events, future))
        return future

    def quarantine(self, rejection: Rejection) -> None:
        """Keep a rejected request with the next batch. Best effort: never waits."""
        if len(self._rejections) >= self.quarantine_keep:
            del self._rejections[0]
        self._rejections.append(rejection)
        if self._queue.empty():
            self._queue.put_nowait(QueuedRequest((), asyncio.get_running_loop().create_future()))

    async def drain(self) -> None:
        """Commit what is queued and take no more (the hub can still ask what changed)."""
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _batch_from(self, item: QueuedRequest | None) -> tuple[list[QueuedRequest], bool]:
        """The next batch: `item` and what else is queued, up to `max_batch`; and whether the
        stop marker (None) was among them."""
        batch: list[QueuedRequest] = []
        stopping = item is None
        if item is not None:
            batch.append(item)
        while len(batch) < self.max_batch and not self._queue.empty():
            more = self._queue.get_nowait()
            if more is None:
                stopping = True
                continue
            batch.append(more)
        return batch, stopping

    @staticmethod
    def _fail(batch: Iterable[QueuedRequest], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)
                # A quarantine wake-up item has nobody awaiting it.
                if not pending.events:
                    pending.future.exception()
