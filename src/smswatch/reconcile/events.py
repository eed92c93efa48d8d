"""A poll's answer as an event: stored in the log like a webhook's, folded by the same rules,
and marked as polled (its type starts with `poll.`), never as pushed.

Lisoloo's status API gives a message's counts only: its event is message-level and carries
them (the message then shows the gateway's counts beside the webhooks'). YeboLink's gives one
recipient's status: its event folds into that recipient like a webhook, except that a final
state a webhook pushed is never replaced by a polled one (domain.fold).
The dedupe key is the answer itself: asking again and getting the same answer stores nothing.
"""

from __future__ import annotations

import json
from typing import Any

from smswatch.core.domain import POLLED_PREFIX, Event, MessageInfo, State


def _payload(raw: dict[str, Any]) -> str:
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)


def lisoloo_status_event(status: Any, received_at: int) -> Event:
    """A `LisolooStatus` (reconcile/lisoloo_api.py) as a message-level event."""
    counts = (status.delivered, status.failed, status.pending or 0)
    at = status.updated_at or status.created_at or received_at
    key = f"lisoloo|{POLLED_PREFIX}status|{status.message_id}|{status.status}|{counts}|{at}"
    return Event(
        provider="lisoloo",
        event_id=f"poll:{status.message_id}:{at}",
        dedupe_key=key,
        event_type=f"{POLLED_PREFIX}status",
        state=State.UNKNOWN,
        message_id=status.message_id,
        recipient=None,
        occurred_at=at,
        received_at=received_at,
        payload=_payload(status.raw or {"message_id": status.message_id}),
        time_estimated=status.updated_at is None,
        message_info=MessageInfo(total_recipients=status.total_recipients, gateway_counts=counts),
    )


def yebolink_message_event(msg: Any, received_at: int) -> Event | None:
    """A `YeboLinkMessage` (reconcile/yebolink_api.py) as its recipient's event; None when the
    answer names no recipient or a status smswatch does not know."""
    if msg.state is None or not msg.recipient:
        return None
    state: State = msg.state
    at = (
        {
            State.DELIVERED: msg.delivered_at,
            State.FAILED: msg.failed_at,
            State.SENT: msg.sent_at,
        }.get(state)
        or msg.updated_at
        or msg.created_at
    )
    estimated = at is None
    at = at or received_at
    key = f"yebolink|{POLLED_PREFIX}message|{msg.message_id}|{state.value}|{at}"
    return Event(
        provider="yebolink",
        event_id=f"poll:{msg.message_id}:{state.value}",
        dedupe_key=key,
        event_type=f"{POLLED_PREFIX}message",
        state=state,
        message_id=msg.message_id,
        recipient=msg.recipient,
        occurred_at=at,
        received_at=received_at,
        payload=_payload(msg.raw or {"message_id": msg.message_id, "status": msg.status}),
        time_estimated=estimated,
        error_code=msg.error_code if state == State.FAILED else None,
        error_message=msg.error_message if state == State.FAILED else None,
    )
