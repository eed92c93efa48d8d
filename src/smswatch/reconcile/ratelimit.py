"""A strict rolling-window rate limit for one API key: never more than `limit` calls in any
`window` seconds, as the gateway counts them.

Why strict, and measured from when a call *ended*: the gateway counts a call when it arrives,
which is some time after we send it and before we get its answer. Spacing call n + limit at least
a window after call n's *answer* guarantees it arrives at least a window after call n did,
whatever the network delay; spacing it from call n's *send* would not (a slow first call and a
fast later one land closer together than they were sent). A call still in flight therefore holds
its place until it ends.

Calls wait their turn (first come, first served); they are never dropped. A 429 pauses the whole
key: `pause()` holds every call, queued or new, until the gateway's Retry-After has passed.
`clock` and `sleep` are injectable so that tests run minutes of traffic in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RollingWindow:
    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs at least one call per positive window")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._ended: deque[float] = deque()  # end times of the calls in the window, in order
        self._inflight = 0
        self._paused_until = 0.0
        self._turn = asyncio.Lock()  # one waiter at a time, in arrival order
        self._ended_one = asyncio.Event()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a place for one call: enter just before sending, leave once it has ended
        (answered, failed or timed out)."""
        await self._acquire()
        try:
            yield
        finally:
            self._inflight -= 1
            self._ended.append(self._clock())
            self._ended_one.set()

    def pause(self, seconds: float) -> bool:
        """No call starts for `seconds` from now (a later pause already set stands). True if
        this pause goes further than the one already set."""
        until = self._clock() + max(seconds, 0.0)
        if until <= self._paused_until:
            return False
        self._paused_until = until
        return True

    def paused_for(self) -> float:
        """Seconds until calls may start again after a pause (0 if not paused)."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def in_flight(self) -> int:
        """Calls that have a place and have not ended."""
        return self._inflight

    def used(self) -> int:
        """Places taken in the current window: calls in flight and calls ended within it."""
        self._expire(self._clock())
        return self._inflight + len(self._ended)

    def _expire(self, now: float) -> None:
        # Written as the same sum `_acquire` sleeps until, so that waking at exactly that time
        # frees the place (now - window could round the other way).
        while self._ended and self._ended[0] + self.window <= now:
            self._ended.popleft()

    async def _acquire(self) -> None:
        async with self._turn:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._expire(now)
                if self._inflight + len(self._ended) < self.limit:
                    self._inflight += 1
                    return
                if self._ended:
                    # The oldest ended call leaves the window first; calls in flight end later.
                    await self._sleep(self._ended[0] + self.window - now)
                else:
                    # Every place is a call in flight: nothing frees before one of them ends.
                    self._ended_one.clear()
                    await self._ended_one.wait()
