"""The suppression list: the numbers a sender should never text again, as CSV.

A failed recipient is on it when the catalogue says its failure is about the number itself
(landline, unknown, invalid, unsubscribed or blocked: `catalogue.suppressible`), not when it is
merely not worth retrying: a suspended account or an unregistered sender fails good numbers too,
and a do-not-send list that drops them loses those recipients for good.

One row per number. A number that failed for good in several messages (or on both gateways)
appears once, with its most recent permanent failure by event time (the freshest reason is the
one worth showing) and `failures`, how many of its messages failed for good. The list is built
from the store's failed recipients (`Reader.suppression`), filtered here, so `export
--suppression` and the TUI's palette write the same file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

from smswatch.core.campaigns import Selector
from smswatch.files import write_whole
from smswatch.gateways.catalogue import explain, suppressible
from smswatch.sanitize import visible
from smswatch.timefmt import iso

# docs/json.md promises recipient, provider and error_code; columns may be added, never renamed.
FIELDS = (
    "recipient",
    "provider",
    "error_code",
    "error_name",
    "error_message",
    "message_id",
    "carrier",
    "failed_at",
    "campaign",
    "failures",
)


class SuppressionSource(Protocol):
    """What the list is read from: the store's reader (both back ends)."""

    async def suppression(self, sel: Selector | None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class Suppressed:
    """One number on the list, with the failure that put it there."""

    recipient: str
    provider: str
    error_code: str
    error_name: str | None
    error_message: str | None
    message_id: str
    carrier: str | None
    failed_at: int | None  # event time of the failure, microseconds
    campaign: str | None = None
    failures: int = 1

    def row(self) -> list[str | int | None]:
        return [
            self.recipient,
            self.provider,
            self.error_code,
            self.error_name,
            self.error_message,
            self.message_id,
            self.carrier,
            iso(self.failed_at),
            self.campaign,
            self.failures,
        ]


def permanent_failures(rows: Iterable[Sequence[Any]]) -> list[Suppressed]:
    """The store's failed recipients — (recipient, provider, error_code, error_message,
    retryable, message_id, carrier, state_at[, campaign, last delivered]) — cut to the
    permanent ones, one per number, sorted by number. A number delivered to after its failure
    (another message reached it) is not on the list: it is not bad for good."""
    latest: dict[str, Suppressed] = {}
    counts: dict[str, int] = {}
    for row in rows:
        recipient, provider, code, message, retryable, message_id, carrier, at = row[:8]
        campaign, delivered = (row[8], row[9]) if len(row) > 8 else (None, None)
        if not recipient or not recipient.strip():
            continue  # nothing a sender could match against
        if delivered is not None and at is not None and delivered > at:
            continue
        retry = None if retryable is None else bool(retryable)  # SQLite stores 0/1
        if not suppressible(provider, code, message, retry):
            continue
        counts[recipient] = counts.get(recipient, 0) + 1
        seen = latest.get(recipient)
        # Ties on the time go to the larger message id, so the pick never depends on row order.
        if seen is not None and (seen.failed_at or -1, seen.message_id) >= (at or -1, message_id):
            continue
        info = explain(provider, code)
        latest[recipient] = Suppressed(
            recipient=recipient,
            provider=provider,
            error_code=code,
            error_name=info.name if info else None,
            error_message=message,
            message_id=message_id,
            carrier=carrier,
            failed_at=at,
            campaign=campaign,
        )
    return [
        replace(s, failures=counts[s.recipient])
        for s in sorted(latest.values(), key=lambda s: s.recipient)
    ]


async def suppression_list(source: SuppressionSource, sel: Selector | None) -> list[Suppressed]:
    """The list for one campaign (`sel`, a named campaign or a burst) or the whole store."""
    entries = permanent_failures(await source.suppression(sel))
    if sel is not None:
        # Every row is the campaign's; a burst has no stored name to look up.
        return [replace(s, campaign=sel.name) for s in entries]
    return entries


_FORMULA = re.compile(r"[=@\t\r]|[+-].*[A-Za-z|!=@]", re.DOTALL)


def inert(value: object) -> object:
    """A cell a spreadsheet will not run: text that would start a formula ("=cmd|...",
    "@SUM(", "-2+3+cmd|...", "+A1") gets a leading apostrophe. A sign followed by no letter
    and no formula sign is a phone number ("+243 81...", "+1 (555) 010-0000"), left as sent,
    as is every other value."""
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def write_csv(entries: Iterable[Suppressed], out: TextIO, for_terminal: bool = False) -> int:
    """The CSV with a header row. The values are as the gateways sent them (a sender matches
    numbers exactly), except that none can start a spreadsheet formula (`inert`): the list is
    made to be opened and loaded elsewhere. `for_terminal` shows control and invisible
    characters as code points instead (sanitize.visible), as a screen must: numbers and
    messages are webhook text."""
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    n = 0
    for s in entries:
        row = [inert(v) for v in s.row()]
        if for_terminal:
            row = [visible(v) if isinstance(v, str) else v for v in row]
        writer.writerow(row)
        n += 1
    return n


async def write_suppression(source: SuppressionSource, sel: Selector | None, out_path: Path) -> int:
    """Build the list (of one campaign, or all) and write it to `out_path`; how many numbers."""
    return await write_entries(await suppression_list(source, sel), out_path)


async def write_entries(entries: list[Suppressed], out_path: Path) -> int:
    """Write a list to `out_path`, whole or not at all (smswatch.files.write_whole: a sender
    loading it never reads half a list; a pipe or device is written through)."""

    def write() -> int:  # off the loop, formatting included: a long list must not stall a screen
        text = io.StringIO(newline="")
        n = write_csv(entries, text)
        write_whole(Path(out_path), text.getvalue().encode("utf-8"))
        return n

    return await asyncio.to_thread(write)
