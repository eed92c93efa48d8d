"""The event loop the engine runs on: uvloop's where it is installed, else asyncio's.

uvloop roughly halves the listener's cost per request (see shared/measurements), and nothing
in the engine depends on which loop it gets. Textual keeps its own loop: only the engine's
thread (EngineThread) and `smswatch serve` use this.
"""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # Windows, or an install without it: asyncio's loop serves as well, slower
    uvloop = None  # type: ignore[assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop, uvloop's if available."""
    if uvloop is not None:
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def name() -> str:
    """Which loop `new_event_loop` makes, for logs and benchmarks."""
    return "uvloop" if uvloop is not None else "asyncio"
