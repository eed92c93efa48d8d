"""The JSON shapes of `export` and `inspect --json` (docs/json.md), and the export writers.

Both shapes are a stable interface: fields may be added, never renamed or removed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict
from itertools import groupby
from typing import Any, TextIO

from smswatch.core.domain import FUNNEL, MessageInfo, MessageState, RecipientState
from smswatch.core.records import StoredEvent
from smswatch.gateways.catalogue import explain
from smswatch.sanitize import visible
from smswatch.store.queries.rows import message_info
from smswatch.timefmt import iso

EXPORT_FIELDS = (
    "event_id",
    "provider",
    "event_type",
    "state",
    "message_id",
    "recipient",
    "occurred_at",
    "received_at",
    "carrier",
    "error_code",
    "error_message",
    "payload",
)


def event_fields(ev: StoredEvent) -> dict[str, Any]:
    """An event's export record without its payload."""
    return {
        "event_id": ev.event_id,
        "provider": ev.provider,
        "event_type": ev.event_type,
        "state": ev.state.value,
        "message_id": ev.message_id,
        "recipient": ev.recipient,
        "occurred_at": iso(ev.occurred_at),
        "received_at": iso(ev.received_at),
        "carrier": ev.carrier,
        "error_code": ev.error_code,
        "error_message": ev.error_message,
    }


def restore_fields(
    ev: StoredEvent, log: tuple[str, bool | None, str | None], tag: tuple[str, str, int] | None
) -> dict[str, Any]:
    """What `smswatch import` needs beyond the event's fields to store it again exactly as it
    was (restore.py reads them back): the log's own columns and the message's campaign."""
    dedupe_key, retryable, info = log
    return {
        "time_estimated": ev.time_estimated,
        "dedupe_key": dedupe_key,
        "retryable": retryable,
        "message_info": None if info is None else _info_record(message_info(info)),
        "campaign": None
        if tag is None
        else {"name": tag[0], "source": tag[1], "tagged_at": tag[2]},
    }


def _info_record(info: MessageInfo) -> dict[str, Any]:
    record = asdict(info)
    record["scheduled_at"] = iso(info.scheduled_at)
    return record


def export_line(
    ev: StoredEvent, ascii_only: bool = False, extra: dict[str, Any] | None = None
) -> str:
    """One JSONL line. The payload is the stored body, spliced in as received when it is on
    one line (it is valid JSON: it was parsed before it was stored), re-encoded otherwise.
    `ascii_only` (for a terminal): every non-ASCII character as a JSON escape, which reads back
    as the same value but cannot hide (zero-width characters) or act (C1 controls) on screen.
    `extra`: more fields, before the payload (restore_fields)."""
    head = json.dumps({**event_fields(ev), **(extra or {})}, ensure_ascii=ascii_only)
    payload = ev.payload
    if (ascii_only and not payload.isascii()) or "\n" in payload or "\r" in payload:
        payload = json.dumps(json.loads(payload), ensure_ascii=ascii_only, separators=(",", ":"))
    return f'{head[:-1]}, "payload": {payload.strip()}}}'


async def write_jsonl(
    events: AsyncIterator[StoredEvent], out: TextIO, ascii_only: bool = False, reader: Any = None
) -> int:
    """The events as JSON lines; with `reader` (a store reader), each with its restore_fields,
    so that `smswatch import` can make the same database again."""
    tags = await reader.campaign_tags() if reader is not None else {}
    n = 0
    async for page in _pages(events, 500):
        log = await reader.log_fields([ev.id for ev in page]) if reader is not None else {}
        for ev in page:
            extra = (
                restore_fields(ev, log[ev.id], tags.get(ev.message_id)) if ev.id in log else None
            )
            out.write(export_line(ev, ascii_only, extra) + "\n")
        n += len(page)
    return n


async def _pages(events: AsyncIterator[StoredEvent], size: int) -> AsyncIterator[list[Any]]:
    page: list[StoredEvent] = []
    async for ev in events:
        page.append(ev)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


async def write_csv(
    events: AsyncIterator[StoredEvent], out: TextIO, for_terminal: bool = False
) -> int:
    """CSV with the values as stored; `for_terminal` shows control and invisible characters as
    their code points instead (sanitize.visible), as a screen must."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    n = 0
    async for ev in events:
        fields = event_fields(ev)
        payload = json.dumps(json.loads(ev.payload), ensure_ascii=False, separators=(",", ":"))
        row = [*(fields[k] for k in EXPORT_FIELDS[:-1]), payload]
        if for_terminal:
            row = [visible(v) if isinstance(v, str) else v for v in row]
        writer.writerow(row)
        n += 1
    return n


def timeline_entry(ev: StoredEvent) -> dict[str, Any]:
    return {
        "event_id": ev.event_id,
        "event_type": ev.event_type,
        "state": ev.state.value,
        "occurred_at": iso(ev.occurred_at),
        "received_at": iso(ev.received_at),
        "time_estimated": ev.time_estimated,
    }


def recipient_record(r: RecipientState, events: Iterable[StoredEvent]) -> dict[str, Any]:
    info = explain(r.provider, r.error_code, r.retryable)
    return {
        "recipient": r.recipient,
        "state": r.state.value if r.state else "unknown",
        "carrier": r.carrier,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "error_name": info.name if info else None,
        "retry": info.retry if info else None,
        "conflict": r.conflict,
        "state_at": iso(r.state_at),
        "times": {s.value: iso(r.first_at.get(s)) for s in FUNNEL},
        "events": [timeline_entry(ev) for ev in events],
    }


def message_record(
    msg: MessageState,
    recipients: list[RecipientState],
    events: list[StoredEvent],
) -> dict[str, Any]:
    """The `inspect --json` shape. `events` are the message's events sorted by recipient."""
    by_recipient: dict[str | None, list[StoredEvent]] = {
        key: sorted(group, key=lambda e: (e.occurred_at, e.id))
        for key, group in groupby(events, key=lambda e: e.recipient)
    }
    return {
        "message_id": msg.message_id,
        "provider": msg.provider,
        "total_recipients": msg.expected_recipients,
        "total_cost": msg.total_cost,
        "currency": msg.currency,
        "counts": {s.value: msg.count(s) for s in FUNNEL},
        "channel": msg.channel,
        "metadata": _metadata(msg.metadata),
        "conflicts": msg.conflicts,
        "finished": msg.finished,
        "first_received_at": iso(msg.first_received_at),
        "last_received_at": iso(msg.last_received_at),
        "message_events": [timeline_entry(ev) for ev in by_recipient.get(None, [])],
        "recipients": [recipient_record(r, by_recipient.get(r.recipient, [])) for r in recipients],
    }


def _metadata(text: str | None) -> Any:
    """The sender's metadata as JSON again; as text if it was cut to fit the column."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
