"""`smswatch import FILE`: store the events of an `export` file again, as they were stored.

Replay posts webhooks to a listener, which is right for traffic but not for a copy: the
listener stamps its own receive times, refuses the events smswatch made itself by polling the
gateways' status APIs (they are not webhooks), and tags messages by its own rules. Import writes
each exported event straight into the store with its ids, dedupe key, event and receive times,
polled mark and message facts, and each message's campaign as the export recorded it, so the
new database answers `stats`, `campaign list` and `inspect` as the old one did. Importing the
same file twice stores nothing twice (the dedupe keys).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from smswatch.campaigns.rule import CampaignRule
from smswatch.core.domain import Event, MessageInfo, State
from smswatch.timefmt import to_us

# What a line must have: `export --format jsonl` writes these (records.py).
REQUIRED = ("event_id", "provider", "event_type", "state", "message_id", "occurred_at")
_PAYLOAD_KEY = ', "payload": '


class BadExport(Exception):
    """A line that is not an event of an `smswatch export` file; the message says which.
    `done`: what was imported before it."""

    done: Imported | None = None


@dataclass(slots=True)
class RecordedCampaigns(CampaignRule):
    """The campaigns the export recorded, in place of the rules that first decided them
    (sender metadata keys, a run's --campaign, a later `campaign tag`), which import cannot
    know."""

    recorded: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def tags(self, firsts: Iterable[Event]) -> list[tuple[str, str, str, int]]:
        return [
            (ev.message_id, *self.recorded[ev.message_id])
            for ev in firsts
            if ev.message_id in self.recorded
        ]


@dataclass(slots=True)
class Imported:
    events: int = 0  # lines read
    stored: int = 0  # new to the database
    polled: int = 0  # of the lines, events made by polling a status API


def _time(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadExport(f"{name} is not an ISO 8601 time")
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise BadExport(f"{name} {value!r} is not an ISO 8601 time") from None


def _payload_text(line: str, payload: Any) -> str:
    """The body as the export spliced it in (its bytes as stored), when the line is one
    export_line wrote: "payload" is its last key, and no string before it can hold the
    unescaped quote that `, "payload": ` starts with. Re-encoded otherwise."""
    at = line.find(_PAYLOAD_KEY)
    if at >= 0:
        text = line[at + len(_PAYLOAD_KEY) :].rstrip()
        if text.endswith("}"):
            text = text[:-1].rstrip()
            try:
                if json.loads(text) == payload:
                    return text
            except ValueError:
                pass
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _message_info(value: Any) -> MessageInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadExport("message_info is not an object")
    fields = dict(value)
    fields["scheduled_at"] = _time(fields.get("scheduled_at"), "message_info.scheduled_at")
    if fields.get("gateway_counts") is not None:
        fields["gateway_counts"] = tuple(fields["gateway_counts"])
    try:
        return MessageInfo(**fields)
    except TypeError as exc:
        raise BadExport(f"message_info: {exc}") from None


def event_of(line: str, record: dict[str, Any]) -> Event:
    """The event one export line describes, as the store held it."""
    missing = [k for k in (*REQUIRED, "received_at", "dedupe_key") if k not in record]
    if missing:
        # An older export, or recorded traffic: webhooks, which replay can post again.
        hint = " (not an export smswatch import reads; `smswatch replay` posts its webhooks)"
        hint = hint if "payload" in record else ""
        raise BadExport("no " + ", ".join(missing) + hint)
    try:
        state = State(record["state"])
    except ValueError:
        raise BadExport(f"unknown state {record['state']!r}") from None
    occurred = _time(record["occurred_at"], "occurred_at")
    received = _time(record["received_at"], "received_at")
    if occurred is None or received is None:
        raise BadExport("no occurred_at or received_at")
    text = {k: record.get(k) for k in ("event_id", "provider", "event_type", "dedupe_key")}
    if not all(isinstance(v, str) and v for v in text.values()):
        raise BadExport("event_id, provider, event_type and dedupe_key must be text")
    retryable = record.get("retryable")
    return Event(
        provider=record["provider"],
        event_id=record["event_id"],
        dedupe_key=record["dedupe_key"],
        event_type=record["event_type"],
        state=state,
        message_id=record["message_id"],
        recipient=record.get("recipient"),
        occurred_at=occurred,
        received_at=received,
        payload=_payload_text(line, record.get("payload")),
        time_estimated=bool(record.get("time_estimated", False)),
        carrier=record.get("carrier"),
        error_code=record.get("error_code"),
        error_message=record.get("error_message"),
        retryable=None if retryable is None else bool(retryable),
        message_info=_message_info(record.get("message_info")),
    )


def _campaign(record: dict[str, Any]) -> tuple[str, str, int] | None:
    value = record.get("campaign")
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise BadExport("campaign is not an object with a name")
    return value["name"], str(value.get("source") or "tag"), int(value.get("tagged_at") or 0)


def read(lines: Iterable[str], rule: RecordedCampaigns, chunk: int = 500) -> Iterator[list[Event]]:
    """The file's events, `chunk` at a time, in the file's order (the store's order when it
    was exported); each message's recorded campaign goes into `rule` before its events."""
    page: list[Event] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise BadExport("not a JSON object")
            event = event_of(line, record)
            tag = _campaign(record)
        except ValueError as exc:
            raise BadExport(f"line {number}: not JSON: {exc}") from None
        except BadExport as exc:
            raise BadExport(f"line {number}: {exc}") from None
        if tag is not None and event.message_id:
            rule.recorded.setdefault(event.message_id, tag)
        page.append(event)
        if len(page) >= chunk:
            yield page
            page = []
    if page:
        yield page


async def import_events(db: str | Path, lines: Iterable[str]) -> Imported:
    """Store the export's events in `db` (created if it is a new file). Raises CannotOpen
    (DatabaseInUse: another smswatch writes this SQLite file) and BadExport."""
    from smswatch.store import make_writer

    rule = RecordedCampaigns()
    pages = read(lines, rule)
    first = next(pages, None)  # a file that is no export is refused before a database is made
    writer = make_writer(db, campaigns=rule)
    await writer.open()
    done = Imported()
    try:
        for page in itertools.chain([first] if first else [], pages):
            outcomes = await writer.submit(page)
            done.events += len(page)
            done.stored += sum(not o.duplicate for o in outcomes)
            done.polled += sum(ev.polled for ev in page)
    except BadExport as exc:
        exc.done = done
        raise
    finally:
        await writer.close()
    return done
