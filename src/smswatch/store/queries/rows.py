"""Conversions between domain objects and table rows, shared by the writer and the reader."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from smswatch.core.domain import Event, MessageInfo, MessageState, RecipientState, State
from smswatch.core.records import StoredEvent

EVENT_COLUMNS = (
    "dedupe_key, event_id, provider, event_type, state, message_id, recipient, occurred_at, "
    "received_at, time_estimated, carrier, error_code, error_message, payload"
)
# A log row holds the whole normalized event, so that the state can be folded again from the
# log alone (after a crash), without the gateway adapters: these two columns hold the rest.
LOG_COLUMNS = EVENT_COLUMNS + ", retryable, info"


def event_row(ev: Event) -> tuple[Any, ...]:
    return (
        ev.dedupe_key,
        ev.event_id,
        ev.provider,
        ev.event_type,
        ev.state.value,
        ev.message_id,
        ev.recipient,
        ev.occurred_at,
        ev.received_at,
        int(ev.time_estimated),
        ev.carrier,
        ev.error_code,
        ev.error_message,
        ev.payload,
    )


def log_row(ev: Event) -> tuple[Any, ...]:
    """An event's row in the log, in LOG_COLUMNS order."""
    info = ev.message_info
    return (
        *event_row(ev),
        None if ev.retryable is None else int(ev.retryable),
        None if info is None else _info_json(info),
    )


# A gateway with one message per recipient (Twilio) gives every event of a send the same
# MessageInfo object: its JSON is made again only when the object changes. By identity, not
# equality: 1 == 1.0 == True, and the log must keep each value's own type.
_last_info: tuple[MessageInfo, str] | None = None


def _info_json(info: MessageInfo) -> str:
    global _last_info
    last = _last_info
    if last is not None and last[0] is info:
        return last[1]
    text = json.dumps(info_fields(info), separators=(",", ":"))
    _last_info = (info, text)  # one tuple, swapped whole: safe from any writer thread
    return text


_INFO_FIELDS = tuple(f.name for f in fields(MessageInfo))


def info_fields(info: MessageInfo) -> list[Any]:
    """A MessageInfo's fields in order, as the log keeps them: `astuple` deep-copies each
    value, several times the cost, for events that every gateway with one message per
    recipient carries."""
    return [getattr(info, name) for name in _INFO_FIELDS]


def event_from_row(row: Sequence[Any]) -> Event:
    """The event a `log_row` was made of (columns in LOG_COLUMNS order)."""
    return Event(
        dedupe_key=row[0],
        event_id=row[1],
        provider=row[2],
        event_type=row[3],
        state=State(row[4]),
        message_id=row[5],
        recipient=row[6],
        occurred_at=row[7],
        received_at=row[8],
        time_estimated=bool(row[9]),
        carrier=row[10],
        error_code=row[11],
        error_message=row[12],
        payload=row[13],
        retryable=None if row[14] is None else bool(row[14]),
        message_info=None if row[15] is None else message_info(row[15]),
    )


def message_info(text: str) -> MessageInfo:
    """The MessageInfo a log row's `info` holds (JSON of its fields, in order; older rows have
    fewer). The gateway's counts come back as a list: made a tuple again."""
    fields = json.loads(text)
    if len(fields) > 7 and fields[7] is not None:
        fields[7] = tuple(fields[7])
    return MessageInfo(*fields)


STORED_EVENT_COLUMNS = (
    "id, event_id, provider, event_type, state, message_id, recipient, occurred_at, received_at, "
    "time_estimated, carrier, error_code, error_message, payload"
)


def stored_event(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(
        id=row[0],
        event_id=row[1],
        provider=row[2],
        event_type=row[3],
        state=State(row[4]),
        message_id=row[5],
        recipient=row[6],
        occurred_at=row[7],
        received_at=row[8],
        time_estimated=bool(row[9]),
        carrier=row[10],
        error_code=row[11],
        error_message=row[12],
        payload=row[13],
    )


_FIRST = (State.QUEUED, State.PROCESSING, State.SENT, State.DELIVERED, State.FAILED)
# The columns of each state (first times, counts) in the order the tables have them: the five of
# the first schema, then `unconfirmed`, appended by a migration at the end of the row.
_COUNTED = (*_FIRST, State.UNCONFIRMED)

RECIPIENT_COLUMNS = (
    "message_id, recipient, provider, state, state_at, queued_at, processing_at, sent_at, "
    "delivered_at, failed_at, carrier, carrier_at, error_code, error_message, retryable, "
    "error_at, conflict, events, last_event_at, updated_at, polled, unconfirmed_at"
)


def recipient_row(r: RecipientState) -> tuple[Any, ...]:
    first = r.first_at.get  # one lookup a state, no generator: a row per checkpoint per change
    return (
        r.message_id,
        r.recipient,
        r.provider,
        r.state.value if r.state else None,
        r.state_at,
        first(State.QUEUED),
        first(State.PROCESSING),
        first(State.SENT),
        first(State.DELIVERED),
        first(State.FAILED),
        r.carrier,
        r.carrier_at,
        r.error_code,
        r.error_message,
        None if r.retryable is None else int(r.retryable),
        r.error_at,
        int(r.conflict),
        r.events,
        r.last_event_at,
        r.updated_at,
        int(r.polled),
        first(State.UNCONFIRMED),
    )


def recipient_from_row(row: tuple[Any, ...]) -> RecipientState:
    times = (*row[5:10], row[21])
    first = {s: t for s, t in zip(_COUNTED, times, strict=True) if t is not None}
    return RecipientState(
        message_id=row[0],
        recipient=row[1],
        provider=row[2],
        state=State(row[3]) if row[3] else None,
        state_at=row[4],
        first_at=first,
        carrier=row[10],
        carrier_at=row[11],
        error_code=row[12],
        error_message=row[13],
        retryable=None if row[14] is None else bool(row[14]),
        error_at=row[15],
        conflict=bool(row[16]),
        events=row[17],
        last_event_at=row[18],
        updated_at=row[19],
        polled=bool(row[20]),
    )


MESSAGE_COLUMNS = (
    "message_id, provider, total_recipients, total_messages, total_cost, currency, scheduled_at, "
    "channel, metadata, n_queued, n_processing, n_sent, n_delivered, n_failed, known_recipients, "
    "conflicts, events, queued_at, first_at, last_at, first_received_at, last_received_at, "
    "finished_at, gateway_delivered, gateway_failed, gateway_pending, gateway_at, n_unconfirmed"
)


def message_row(m: MessageState) -> tuple[Any, ...]:
    return (
        m.message_id,
        m.provider,
        m.total_recipients,
        m.total_messages,
        m.total_cost,
        m.currency,
        m.scheduled_at,
        m.channel,
        m.metadata,
        m.counts[State.QUEUED],
        m.counts[State.PROCESSING],
        m.counts[State.SENT],
        m.counts[State.DELIVERED],
        m.counts[State.FAILED],
        m.known_recipients,
        m.conflicts,
        m.events,
        m.queued_at,
        m.first_at,
        m.last_at,
        m.first_received_at,
        m.last_received_at,
        m.finished_at,
        m.gateway_delivered,
        m.gateway_failed,
        m.gateway_pending,
        m.gateway_at,
        m.counts[State.UNCONFIRMED],
    )


def message_from_row(row: tuple[Any, ...]) -> MessageState:
    return MessageState(
        message_id=row[0],
        provider=row[1],
        total_recipients=row[2],
        total_messages=row[3],
        total_cost=row[4],
        currency=row[5],
        scheduled_at=row[6],
        channel=row[7],
        metadata=row[8],
        counts=dict(zip(_COUNTED, (*row[9:14], row[27]), strict=True)),
        known_recipients=row[14],
        conflicts=row[15],
        events=row[16],
        queued_at=row[17],
        first_at=row[18],
        last_at=row[19],
        first_received_at=row[20],
        last_received_at=row[21],
        finished_at=row[22],
        gateway_delivered=row[23],
        gateway_failed=row[24],
        gateway_pending=row[25],
        gateway_at=row[26],
    )


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def upsert(table: str, columns: str, key: str) -> str:
    """INSERT … ON CONFLICT(key) DO UPDATE SET every other column (full-row state writes)."""
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    sets = ", ".join(f"{n} = excluded.{n}" for n in names if n not in keys)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders(len(names))}) "
        f"ON CONFLICT({key}) DO UPDATE SET {sets}"
    )
