"""Make untrusted webhook text safe to draw in a terminal.

Every string that came from a webhook goes through `safe()` before it reaches the screen. Rich
markup is never interpreted because callers draw the result as `rich.text.Text`, never as a markup
string; this module takes care of what `Text` would still pass through to the terminal:
- control characters (ESC starts an escape sequence, CR and BS overwrite what is drawn);
- characters that draw nothing but change what the text is: bidirectional overrides that reorder
  what the eye reads, zero-width spaces and joiners, the soft hyphen, word joiners, the BOM,
  variation selectors, tag characters. `+24399885\\u200b7000` must not look like `+243998857000`,
  because it is another recipient; so each is shown as its code point;
- long runs of combining marks ("Zalgo" text), which pile up over neighbouring lines and which
  terminals count in cells differently: at most two stay on a character, the rest are counted;
- unbounded length.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.words import plural

# C0 controls, DEL and C1 controls; every format character (Unicode category Cf: bidi marks and
# overrides, zero-width space/joiners, soft hyphen, word joiner, invisible operators, BOM,
# interlinear annotations, tags); characters that draw as nothing though they are not format
# characters (combining grapheme joiner, Hangul fillers, Mongolian free variation selectors,
# variation selectors); and the line/paragraph separators some terminals take for newlines.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)

_NAMED = {"\x1b": "␛", "\n": "␤", "\r": "␍", "\t": "␉", "\x00": "␀", "\x7f": "␡"}

ELLIPSIS = "…"
MAX_MARKS = 2  # combining marks kept on one character (Vietnamese stacks two)
DOTTED_CIRCLE = "\u25cc"  # the conventional base for a mark that has none


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


def _tame_marks(text: str) -> str:
    """Keep at most MAX_MARKS combining marks per character and show how many more there were;
    give a mark with nothing to sit on (at the start) a dotted circle, or it would combine with
    whatever the screen drew just before it, such as a table border."""
    out: list[str] = []
    run = 0
    extra = 0
    for ch in text:
        if _is_mark(ch):
            if not out:
                out.append(DOTTED_CIRCLE)
            run += 1
            if run > MAX_MARKS:
                extra += 1
                continue
        else:
            if extra:
                out.append(f"[+{plural(extra, 'mark')}]")
            run = extra = 0
        out.append(ch)
    if extra:
        out.append(f"[+{plural(extra, 'mark')}]")
    return "".join(out)


def visible(text: str) -> str:
    """Every control and invisible character shown as its code point; nothing cut or merged
    (for whole values written to a terminal, such as `export` on stdout)."""
    return _UNSAFE.sub(_visible, text)


def safe(value: object, limit: int = 200) -> str:
    """Render any value as one safe line of at most `limit` characters (None → "")."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]  # bound the regex work on hostile megabyte strings
    text = visible(text)
    if not text.isascii():
        text = _tame_marks(text)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return text


def safe_block(text: str, limit: int = 20_000) -> str:
    """Like `safe` for multi-line text (pretty-printed JSON): keeps newlines, neutralises the
    rest."""
    if len(text) > limit:
        text = text[:limit] + f"\n{ELLIPSIS} ({plural(len(text) - limit, 'more character')})"
    return "\n".join(safe(line, limit) for line in text.split("\n"))


# Query parameters that carry a gateway's shared secret (Africa's Talking's `token`): a URL
# shown anywhere shows their values as ***, as it does a password.
_SECRET_NAMES = "|".join(re.escape(c.query) for c in GATEWAY_CREDENTIALS if c.query)
_SECRET_QUERY = re.compile(f"([?&;]|^)({_SECRET_NAMES})=[^&;#]*") if _SECRET_NAMES else None


def _secrets_hidden(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1\2=***", text) if _SECRET_QUERY is not None else text


def without_password(url: str) -> str:
    """Any URL with its password (if it has one), and the value of any query parameter a
    gateway's credential travels in (`token`), shown as ***."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can split: hide whatever sits between ':' and '@'
        return _secrets_hidden(re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url))
    query = _secrets_hidden(parts.query)
    if parts.password is None:
        # Rebuilt only when something is hidden: urlunsplit drops an empty `?` or `#`.
        return url if query == parts.query else urlunsplit(parts._replace(query=query))
    host = parts.netloc.rpartition("@")[2]  # as written: never raises on a bad port
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))
