"""Turning domain values into short, safe, styled text for the panels.

Everything that came from a webhook passes through `safe()` here; the panels draw the result
as Rich `Text`, never as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.highlighter import JSONHighlighter
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from smswatch.core.domain import MessageState, State
from smswatch.sanitize import safe, safe_block
from smswatch.timefmt import iso
from smswatch.tui.themes import Palette

_PHONE = re.compile(r"^(\+?\d{3})(\d+)(\d{2})$")
_EMAIL = re.compile(r"^([^@\s])[^@\s]*(@.+)$")
_JSON_PHONE = re.compile(r'"(\+?\d{3})(\d{2,})(\d{2})"')
_JSON_EMAIL = re.compile(r'"([^"@\s])[^"@\s]*(@[^"\s]+)"')


def mask(value: str) -> str:
    """Hide the middle of a phone number or an email's local part, for screen sharing."""
    m = _PHONE.match(value)
    if m:
        return f"{m.group(1)}{'•' * len(m.group(2))}{m.group(3)}"
    m = _EMAIL.match(value)
    if m:
        return f"{m.group(1)}•••{m.group(2)}"
    return value


def mask_json(text: str) -> str:
    text = _JSON_PHONE.sub(lambda m: f'"{m.group(1)}{"•" * len(m.group(2))}{m.group(3)}"', text)
    return _JSON_EMAIL.sub(lambda m: f'"{m.group(1)}•••{m.group(2)}"', text)


def recipient_text(value: str | None, masked: bool, limit: int = 24) -> Text:
    if value is None:
        return Text("—", style="dim")
    shown = safe(value, limit)
    return Text(mask(shown) if masked else shown)


def literal(value: object, limit: int = 40) -> str:
    """Untrusted text for the places Textual parses a plain string as markup (border titles,
    palette hits, toasts): made safe, then escaped, so "[/]" or "[@click=…]" is just text."""
    return escape(safe(value, limit))


def untrusted(value: object, limit: int = 40, style: str = "") -> Text:
    return Text(safe(value, limit), style=style)


def state_text(state: State | None, palette: Palette, bold: bool = False) -> Text:
    s = state or State.UNKNOWN
    return Text(s.value, style=f"{'bold ' if bold else ''}{palette.state(s)}")


def moments(values: Sequence[int | None], now: int, seconds: bool = False) -> list[str]:
    """Times shown together (one panel), as short as stays unambiguous: the time of day alone
    (UTC, to the millisecond at most, or the second with `seconds`) when all fall on today's
    date, the date once, on the first, when all share another; else each whole (ISO 8601).
    None gives "-"."""
    whole = [iso(v) for v in values]
    days = {w[:10] for w in whole if w}
    if len(days) != 1:
        return [w or "-" for w in whole]
    (day,) = days
    shown = [_time_of_day(w, seconds) if w else "-" for w in whole]
    if day != (iso(now) or "")[:10]:
        first = next(i for i, w in enumerate(whole) if w)
        shown[first] = f"{day} {shown[first]}"
    return shown


def _time_of_day(whole: str, seconds: bool) -> str:
    """ "2026-12-07T02:57:31.957543Z" → "02:57:31.957Z" (or "02:57:31Z")."""
    clock, _, fraction = whole[11:-1].partition(".")
    return f"{clock}.{fraction[:3]}Z" if fraction and not seconds else f"{clock}Z"


def flow(items: Iterable[Text], width: int, gap: int = 2) -> Text:
    """Items on lines of at most `width` cells, each kept whole on one line (left to Rich to
    wrap, `sent` and its count could land on two lines); one wider than a line has its own."""
    out = Text()
    used = 0
    for item in items:
        size = item.cell_len
        if used and used + gap + size > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(" " * gap)
            used += gap
        out.append_text(item)
        used += size
    return out


class Flow:
    """`flow` as a Rich renderable: the items laid out for the width it is drawn in (a grid's
    cell), known only then."""

    def __init__(self, items: Iterable[Text], gap: int = 2) -> None:
        self.items = list(items)
        self.gap = gap

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield flow(self.items, options.max_width, self.gap)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [item.cell_len for item in self.items] or [0]
        return Measurement(max(widths), sum(widths) + self.gap * (len(widths) - 1))


def labelled(
    pairs: Sequence[tuple[str, Any, str, Any]], lines: Sequence[tuple[str, Any]], label: int
) -> Group:
    """A screen header: facts two to a row where they fit (`pairs`), then full-width rows
    (`lines`), their labels one width so the values line up."""
    parts = []
    if pairs:
        grid = Table.grid(padding=(0, 2), expand=True)
        for _ in range(2):
            grid.add_column(style="dim", width=label)
            grid.add_column(ratio=1)
        for row in pairs:
            grid.add_row(*row)
        parts.append(grid)
    full = Table.grid(padding=(0, 2), expand=True)
    full.add_column(style="dim", width=label)
    full.add_column(ratio=1)
    for line in lines:
        full.add_row(*line)
    return Group(*parts, full)


def cost(msg: MessageState) -> str:
    if msg.total_cost is None:
        return "-"
    currency = safe(msg.currency, 8) if msg.currency else ""
    if currency == "credits":
        return f"{msg.total_cost:g} cr"
    value = msg.total_cost
    # A message to one recipient can cost less than a cent (Telnyx's 0.004 USD): shown as
    # 0.00 it would read as free.
    amount = f"{value:.2f}" if value == 0 or abs(value) >= 0.005 else f"{value:.2g}"
    return f"{amount} {currency}".strip()


def state_bar(msg: MessageState, width: int, palette: Palette) -> Text:
    """A bar split by recipient state: delivered, failed, unconfirmed, sent, processing, then
    queued."""
    return counts_bar(msg.count, msg.expected_recipients, width, palette)


def counts_bar(count: Callable[[State], int], total: int, width: int, palette: Palette) -> Text:
    """The bar of `state_bar` for any recipients: `count(state)` of `total`."""
    total = max(total, 1)
    bar = Text()
    used = 0
    order = (State.DELIVERED, State.FAILED, State.UNCONFIRMED, State.SENT, State.PROCESSING)
    for state in order:
        cells = round(count(state) / total * width)
        cells = min(cells, width - used)
        if cells:
            bar.append("█" * cells, style=palette.state(state))
            used += cells
    if used < width:
        bar.append("░" * (width - used), style=palette.state(State.QUEUED))
    return bar


# One figure with what goes around it: "1,234", "94.7%", "▼12.5%", "3.00 USD", "+1.2s".
_FIGURE = re.compile(r"^(\D*?)(\d[\d,]*)(\.\d+)?(\D*)$")
_UNITS = ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"))


def fit_figure(text: str, width: int) -> str:
    """A figure in at most `width` cells, saying the same thing: without thousands separators,
    then with fewer decimals (rounded), then abbreviated (1.2k, 15M). Cut at the edge, 141
    would read 14: a wrong figure. What cannot be shortened so becomes "…", never a part."""
    if len(text) <= width:
        return text
    m = _FIGURE.match(text)
    if m is None:
        if not any(c.isdigit() for c in text):  # words ("done", "no answer"): cut
            return text[: max(width - 1, 0)] + "…"[:width]
        return "…"[:width]
    head, whole, decimals, tail = m.groups()
    value = float(whole.replace(",", "") + (decimals or ""))
    places = len(decimals or ".") - 1
    candidates = []
    for d in range(places, -1, -1):
        if value and not round(value, d):
            break  # 0.04 is not 0
        candidates += [f"{value:,.{d}f}", f"{value:.{d}f}"]
    for scale, unit in _UNITS:
        if value / scale < 0.9995:  # 999 is not 1k (but 999,960 is 1M)
            break
        for d in (1, 0):
            mantissa = f"{value / scale:.{d}f}"
            if 1 <= float(mantissa) < 1000:  # 999,960 is 1M, not 1000k
                candidates.append(mantissa.removesuffix(".0") + unit)
    for number in candidates:
        shown = f"{head}{number}{tail}"
        if len(shown) <= width:
            return shown
    return "…"[:width]


def cut_middle(text: Text, width: int) -> Text:
    """Text in `width` cells keeping both ends: names that differ at the end (two bursts of a
    day, `lisoloo-20261207-085301` and `-093012`) stay apart when cut."""
    if text.cell_len <= width:
        return text
    if width < 3:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        return text
    tail = (width - 1) // 2
    head = width - 1 - tail
    plain = text.plain
    shown = text[:head] + Text("…", style=text.style) + text[len(plain) - tail :]
    while shown.cell_len > width and head > 1:  # wide characters
        head -= 1
        shown = text[:head] + Text("…", style=text.style) + text[len(plain) - tail :]
    shown.truncate(width)
    return shown


def cut_end(text: Text, width: int) -> Text:
    """Text in `width` cells, cut at the end with an ellipsis; a figure the cut would fall in
    goes whole ("no webhook for…", not "no webhook for 1m…")."""
    if text.cell_len <= width:
        return text
    text = text.copy()
    plain = text.plain
    start = plain.rfind(" ", 0, width) + 1
    end = plain.find(" ", start)
    word = plain[start : end if end >= 0 else len(plain)]
    if start > 1 and any(c.isdigit() for c in word) and text[:start].cell_len < width:
        text.truncate(start)
        text.rstrip()
        text.append("…")
    text.truncate(width, overflow="ellipsis")
    return text


def cut_words(text: Text, width: int) -> Text:
    """Text in `width` cells, cut after a word when one ends in the second half (a sentence
    of advice; a figure is never left as its first digits), else at the edge."""
    if text.cell_len <= width:
        return text
    space = text.plain.rfind(" ", 0, width)
    text = text.copy()
    if space > width // 2 and text[:space].cell_len < width:
        text.truncate(space)
        text.rstrip()
        text.append("…")
    text.truncate(width, overflow="ellipsis")
    return text


def short_id(message_id: str, width: int) -> str:
    text = safe(message_id, 64)
    if len(text) <= width:
        return text
    return text[: max(width - 1, 1)] + "…"


_JSON = JSONHighlighter()


def pretty_json(raw: str, masked: bool, limit: int = 20_000) -> Text:
    """Untrusted JSON text, indented when it parses, control characters neutralised, highlighted
    (as styles on plain text: nothing in it is read as markup)."""
    try:
        text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        text = raw
    text = safe_block(text, limit)
    if masked:
        text = mask_json(text)
    return _JSON(Text(text))
