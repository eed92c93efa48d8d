"""The engine's side of forwarding: starts the forwarder's process, restarts it if it dies,
and reads the outbox once a second for the hub (the status bar, alerts, `attach`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from smswatch.core.forwarding import Attempt, Forward, TargetStatus
from smswatch.forward.config import ForwardConfig
from smswatch.sanitize import without_password
from smswatch.store import backend_for
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds between looks at the outbox
RESTART_AFTER = 1.0  # seconds before a forwarder that died is started again


class ForwardSupervisor:
    def __init__(
        self,
        db: str | Path,
        config: ForwardConfig,
        on_status: Callable[[tuple[TargetStatus, ...]], None],
        clock: Callable[[], int] = now_us,
        send: bool = True,
    ) -> None:
        """`send` False: no forwarder of our own. An instance of a shared database that does not
        forward itself still shows, and can re-send, what the others forward."""
        self.send = send
        self.db = db
        self.config = config
        self.on_status = on_status
        self.clock = clock
        self.outbox = backend_for(db).open_outbox(f"engine:{os.getpid()}")
        self.status: tuple[TargetStatus, ...] = ()
        self.stderr: deque[str] = deque(maxlen=200)  # the forwarder's last words, if it died
        self.restarts = 0
        self._lock = asyncio.Lock()  # one use of the outbox connection at a time
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._urls: list[str] = [t.url for t in config.targets]  # what timelines show

    async def start(self) -> None:
        await self.outbox.open()
        self._tasks = [asyncio.create_task(self._poll(), name="smswatch-forward-status")]
        if self.send:
            await self.outbox.register(self.config.targets)
            await self._spawn()
            self._tasks.append(
                asyncio.create_task(self._supervise(), name="smswatch-forward-supervisor")
            )

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "smswatch.forward",
            str(self.db),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(self.config.to_json().encode() + b"\n")
        await proc.stdin.drain()
        self._proc = proc

    async def _supervise(self) -> None:
        while not self._stopping:
            proc = self._proc
            assert proc is not None and proc.stderr is not None
            async for line in proc.stderr:
                self.stderr.append(line.decode("utf-8", "replace").rstrip())
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.warning("the forwarder exited (%s); starting it again", code)
            await asyncio.sleep(RESTART_AFTER)
            if not self._stopping:
                await self._spawn()

    async def _poll(self) -> None:
        configured = {t.url for t in self.config.targets}
        self._urls = [t.url for t in self.config.targets]
        while True:
            try:
                async with self._lock:
                    status = await self.outbox.status(self.clock())
            except Exception:  # a busy or unreachable store: ask again next time
                with contextlib.suppress(Exception):
                    async with self._lock:
                        await self.outbox.reopen()
            else:
                # Not the targets of earlier runs that the outbox still remembers; and for
                # screens, viewers and logs, never a target's password.
                if not self.send:  # every target the shared outbox has
                    configured = {s.target for s in status}
                    self._urls = sorted(configured)
                self.status = tuple(shown(s) for s in status if s.target in configured)
                self.on_status(self.status)
            await asyncio.sleep(STATUS_EVERY)

    async def stop(self) -> None:
        """Close the forwarder's lifeline and let it finish what it has in flight."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), self.config.timeout + 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:
            await self.outbox.close()

    # --- what the screens and the CLI ask -------------------------------------------------

    async def resend(
        self,
        events: Sequence[int] | None = None,
        *,
        failed_only: bool = True,
        since: int | None = None,
    ) -> int:
        async with self._lock:
            return int(
                await self.outbox.retry(
                    self.clock(),
                    failed_only=failed_only,
                    since=since,
                    events=events,
                    targets=self.config.targets,
                )
            )

    async def attempts(self, events: Sequence[int]) -> dict[int, list[Attempt]]:
        async with self._lock:
            return dict(await self.outbox.attempts(events))

    async def forwards(self, events: Sequence[int]) -> dict[int, list[Forward]]:
        """Each event's forwarding to each configured target (a timeline's): its state and
        attempts, with the targets shown without their password."""
        async with self._lock:
            found = await self.outbox.forwards(events, self._urls)
        return {
            event: [
                replace(
                    f,
                    target=without_password(f.target),
                    attempts=tuple(_attempt_shown(a) for a in f.attempts),
                )
                for f in forwards
            ]
            for event, forwards in found.items()
        }


def _attempt_shown(a: Attempt) -> Attempt:
    return replace(a, target=without_password(a.target))


def shown(status: TargetStatus) -> TargetStatus:
    """A target's status as screens show it: its URL without the password."""
    last = status.last
    return replace(
        status,
        target=without_password(status.target),
        last=_attempt_shown(last) if last is not None else None,
    )
