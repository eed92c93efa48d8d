"""Make untrusted webhook text safe to draw in a terminal.

Every string that came from a webhook goes through `safe()` before it reaches the screen. Rich
markup is never interpreted because callers draw the result as `rich.text.Text`, never as a markup
string; this module takes care of what `Text` would still pass through to the terminal: control
characters (ESC starts an escape sequence, CR and BS overwrite what is drawn), bidirectional
overrides that reorder what the eye reads, and unbounded length.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and Unicode's bidi embedding/override/isolate marks plus the
# line/paragraph separators that some terminals treat as newlines.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

_NAMED = {"\x1b": "␛", "\n": "␤", "\r": "␍", "\t": "␉", "\x00": "␀", "\x7f": "␡"}

ELLIPSIS = "…"


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named:
        return named
    return f"\\u{ord(ch):04x}"


def safe(value: object, limit: int = 200) -> str:
    """Render any value as one safe line of at most `limit` characters (None → "")."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]  # bound the regex work on hostile megabyte strings
    text = _UNSAFE.sub(_visible, text)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return text


def safe_block(text: str, limit: int = 20_000) -> str:
    """Like `safe` for multi-line text (pretty-printed JSON): keeps newlines, neutralises the
    rest."""
    if len(text) > limit:
        text = text[:limit] + f"\n{ELLIPSIS} ({len(text) - limit} more characters)"
    return "\n".join(safe(line, limit) for line in text.split("\n"))
