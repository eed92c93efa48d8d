"""Keyset pagination over stored events, for any source of pages (a reader, the feed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from smswatch.core.records import StoredEvent


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
