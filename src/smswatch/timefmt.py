"""Conversions between datetimes, ISO 8601 text and integer microseconds since the epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    """A datetime as microseconds since the epoch; a naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int | None) -> str | None:
    """ISO 8601 UTC with a Z, with only as much fraction as the value has."""
    if us is None:
        return None
    dt = from_us(us)
    if us % 1_000_000 == 0:
        text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    elif us % 1000 == 0:
        text = dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"
    else:
        text = dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text + "Z"


def clock(us: int | None) -> str:
    """Local wall-clock time of day, for live panels."""
    if us is None:
        return "--:--:--"
    return datetime.fromtimestamp(us / 1e6).strftime("%H:%M:%S")


def span(us: int | None) -> str:
    """A duration, short: 850ms, 12.3s, 4m05s, 2h13m, 3d04h."""
    if us is None:
        return "-"
    neg = us < 0
    us = abs(us)
    if us < 1_000_000:
        text = f"{us // 1000}ms"
    elif us < 60_000_000:
        text = f"{us / 1e6:.1f}s"
    elif us < 3_600_000_000:
        s = us // 1_000_000
        text = f"{s // 60}m{s % 60:02d}s"
    elif us < 86_400_000_000:
        m = us // 60_000_000
        text = f"{m // 60}h{m % 60:02d}m"
    else:
        h = us // 3_600_000_000
        text = f"{h // 24}d{h % 24:02d}h"
    return "-" + text if neg else text


def age(now: int, then: int | None) -> str:
    """How long ago, to the second under a minute: a column of ages in tenths would change on
    every tick and redraw every row of its table for nothing."""
    if then is None:
        return "-"
    us = max(now - then, 0)
    return f"{us // 1_000_000}s" if us < 60_000_000 else span(us)
