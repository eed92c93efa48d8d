"""PostgreSQL's placeholder style for the SQL both back ends share (written with `?`)."""

from __future__ import annotations

import re
from functools import lru_cache

_PARAM = re.compile(r"\?(\d*)")


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """The shared SQL's placeholders (`?` in order, `?N` by number) as PostgreSQL's `$n`."""
    counter = iter(range(1, 1000))

    def number(m: re.Match[str]) -> str:
        return f"${m.group(1) or next(counter)}"

    return _PARAM.sub(number, sql)
