"""Counts in words, for every screen, line and report smswatch writes: "1 event", "2 events"."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """`n` (with thousands separators) and the noun that agrees with it; `many` for a plural
    that is not `one` + "s" ("stretches", "recipients were")."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"
