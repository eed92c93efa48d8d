"""The engine on its own thread and event loop, for the TUI.

Textual draws on the main thread's loop; a redraw of a busy screen takes tens of milliseconds.
Running the listener and the writer on a loop of their own means a slow frame never delays an
acknowledgement. The two sides talk only through the hub (deltas are handed to the UI loop
with `call_soon_threadsafe`) and through `call()`, which runs a function on the engine loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

from smswatch import loops
from smswatch.live.engine import Engine, EngineConfig

T = TypeVar("T")


class EngineThread:
    def __init__(self, config: EngineConfig) -> None:
        self.engine = Engine(config)
        self.loop = loops.new_event_loop()  # uvloop where installed: the listener's hot path
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="smswatch-engine", daemon=True)

    def start(self, timeout: float = 30.0) -> EngineThread:
        """Start the engine; returns once it listens. Raises what the engine's start raised
        (a port in use, a database it cannot open)."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the engine did not start")
        if self._error is not None:
            self._thread.join(5)
            raise self._error
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.engine.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            self.loop.close()
            return
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.engine.stop())
            self.loop.close()

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn()` on the engine loop; the result arrives as a future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future

    def stop(self, timeout: float = 15.0) -> None:
        """Stop taking requests, commit what is queued, close the database, end the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
