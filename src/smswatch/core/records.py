"""Stored records as read back: an event with its raw payload, a refused request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from smswatch.core.domain import State


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the database."""

    id: int
    event_id: str
    provider: str
    event_type: str
    state: State
    message_id: str
    recipient: str | None
    occurred_at: int
    received_at: int
    time_estimated: bool
    carrier: str | None
    error_code: str | None
    error_message: str | None
    payload: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the listener refused, kept (bounded) so the TUI can show why."""

    received_at: int
    status: int
    code: str
    reason: str
    remote: str | None = None
    method: str | None = None
    path: str | None = None
    provider: str | None = None
    content_type: str | None = None
    body_size: int | None = None
    body: bytes | None = None


async def paged(
    fetch: Callable[[int, int], Awaitable[list[StoredEvent]]], size: int = 1000
) -> AsyncIterator[StoredEvent]:
    """Walk a keyset pagination: `fetch(after_id, size)` returns the next page in id order."""
    after = 0
    while True:
        page = await fetch(after, size)
        for ev in page:
            yield ev
        if len(page) < size:
            return
        after = page[-1].id
