"""Telnyx's simulated traffic: a send to US numbers through one messaging profile, as
`smswatch simulate` and the demo post it, with each recipient's truth (what Telnyx knows of it,
as its `GET /v2/messages/{id}` answers) for the sandbox.

Most sends are SMS, one message (one `payload.id`) per recipient: a `message.sent` (its
recipient `queued`, `sending` or, most often, `sent`), then a `message.finalized` with
`delivered`, a failure (`delivery_failed` or `expired` with its 40xxx code in `errors[]`), or
now and then `delivery_unconfirmed`; a message Telnyx refuses before sending (an opted-out
number, an unregistered sender) has only its `message.finalized`, `sending_failed`. Now and then
a send is a group MMS instead: up to eight recipients in one message's `to[]`, one
`message.sent` for all of them and one `message.finalized` with each one's outcome. The final
event of a group is shared by its recipients, so none of them is planned as a webhook the
gateway gives up on (`--drop-rate`): dropping it for one would take the others' with it.

Signatures are not planned: the sender signs each post as it goes (`TelnyxGateway.resign`), with
a fresh `telnyx-timestamp`, as Telnyx does. The random draws are made in a fixed order: the same
seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from smswatch.gateways.base import SimPlanner

# The simulated account: its messaging profile and organization, as the payloads name them.
PROFILE_ID = "40017f5e-5a1e-4c0d-9b7a-5a1e0b7c0001"
ORGANIZATION_ID = "b448f9cc-5a1e-4784-98e9-5a1e0b7c0002"
SENDERS = ("+18445550100", "+18445550101", "+12125550142")
AREAS = ("212", "312", "415", "617", "646", "718", "917")
CARRIERS = (
    ("T-MOBILE USA, INC.", "Wireless", 0.4),
    ("CELLCO PARTNERSHIP DBA VERIZON WIRELESS", "Wireless", 0.35),
    ("AT&T MOBILITY", "Wireless", 0.25),
)
GROUP_SHARE = 0.15  # of sends that are a group MMS
TAGGED_SHARE = 0.7  # of sends tagged with their campaign
UNCONFIRMED_SHARE = 0.05  # of recipients not failing whose carrier sends no receipt
# How `message.sent` finds the recipient: (status, our state, weight).
SENT_AS = (("sent", "sent", 0.7), ("queued", "queued", 0.2), ("sending", "processing", 0.1))
# (final status, code, title, detail, permanent, weight). `permanent` is the simulator's own word
# that the number is bad for good (what `export --suppression` must list), so the truth can prove
# the catalogue (errors.toml) wrong. `sending_failed`: refused before it was sent.
FAILURES = (
    ("delivery_failed", "40001", "Not routable", "The destination is not routable.", True, 0.2),
    ("delivery_failed", "40002", "Blocked as spam - temporary", "Flagged as spam.", False, 0.1),
    ("delivery_failed", "40004", "Rejected by destination", "Rejected.", False, 0.1),
    ("expired", "40005", "Message expired during transmission", "Expired.", False, 0.1),
    ("delivery_failed", "40006", "Recipient server unavailable", "Unavailable.", False, 0.1),
    ("delivery_failed", "40008", "Undeliverable", "Not accepted by the carrier.", False, 0.1),
    ("delivery_failed", "40012", "Invalid destination number", "Invalid number.", True, 0.1),
    (
        "sending_failed",
        "40300",
        "Blocked due to STOP message",
        "The recipient opted out.",
        True,
        0.1,
    ),
    ("sending_failed", "40010", "Not 10DLC registered", "Unregistered sender.", False, 0.1),
)
SMS_COST, MMS_COST = 0.004, 0.015  # USD a part


def _stamp(planner: SimPlanner, at: float) -> str:
    """A simulated time as Telnyx writes one: milliseconds and +00:00."""
    when = datetime.fromisoformat(planner.stamp(at).replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+00:00"


def _phones(planner: SimPlanner) -> list[tuple[str, str, str]]:
    """(phone number, carrier, line type) of each recipient, all different."""
    taken: set[str] = set()
    out = []
    while len(out) < planner.recipients:
        phone = f"+1{planner.rng.choice(AREAS)}555{planner.rng.randrange(10**4):04d}"
        carrier, line, _ = planner.pick(CARRIERS)
        if phone not in taken:
            taken.add(phone)
            out.append((phone, carrier, line))
    return out


def plan_message(planner: SimPlanner, start: float) -> None:
    rng = planner.rng
    sender = rng.choice(SENDERS)
    tags = [f"cmp-{rng.getrandbits(32):08x}"] if rng.random() < TAGGED_SHARE else []
    group = rng.random() < GROUP_SHARE
    phones = _phones(planner)
    if not group:
        for phone in phones:
            _plan_sms(planner, start, sender, tags, phone)
        return
    while phones:
        size = rng.randint(2, 8)
        _plan_group(planner, start, sender, tags, phones[:size])
        phones = phones[size:]


def _payload(
    planner: SimPlanner,
    message_id: str,
    kind: str,
    sender: str,
    tags: list[str],
    to: list[dict[str, str]],
    sent_at: str | None,
    completed_at: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message as Telnyx's webhooks carry it, its fields in the order of Telnyx's examples."""
    cost = SMS_COST if kind == "SMS" else MMS_COST
    return {
        "completed_at": completed_at,
        "cost": {"amount": f"{cost:.4f}", "currency": "USD"},
        "direction": "outbound",
        "encoding": "GSM-7",
        "errors": errors or [],
        "from": {"carrier": "TELNYX LLC", "line_type": "VoIP", "phone_number": sender},
        "id": message_id,
        "messaging_profile_id": PROFILE_ID,
        "organization_id": ORGANIZATION_ID,
        "parts": 1,
        "record_type": "message",
        "sent_at": sent_at,
        "tags": tags,
        "text": "Your appointment is tomorrow at 10:00. Reply STOP to opt out.",
        "to": to,
        "type": kind,
        "valid_until": None,
        "webhook_failover_url": None,
        "webhook_url": "https://hooks.example.com/webhooks/telnyx",
    }


def _emit(
    planner: SimPlanner, at: float, event_type: str, payload: dict[str, Any], label: str
) -> int:
    body = {
        "data": {
            "event_type": event_type,
            "id": planner.uuid4(),
            "occurred_at": _stamp(planner, at),
            "payload": payload,
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://hooks.example.com/webhooks/telnyx"},
    }
    return planner.emit(at, "telnyx", body, label)


def _to(phone: tuple[str, str, str], status: str) -> dict[str, str]:
    return {"carrier": phone[1], "line_type": phone[2], "phone_number": phone[0], "status": status}


def _outcome(planner: SimPlanner, in_group: bool) -> tuple[str, tuple[Any, ...] | None]:
    """A recipient's final status and, for a failure, its row of FAILURES."""
    rng = planner.rng
    failing = rng.random() < planner.fail_rate
    unconfirmed = rng.random() < UNCONFIRMED_SHARE
    failure = planner.pick(FAILURES)
    if failing and not (in_group and failure[0] == "sending_failed"):
        return failure[0], failure
    if failing:  # a group is refused whole or not at all: its recipient's carrier failed it
        return "delivery_failed", FAILURES[0]
    return ("delivery_unconfirmed" if unconfirmed else "delivered"), None


def _state(status: str) -> str:
    if status == "delivered":
        return "delivered"
    return "unconfirmed" if status == "delivery_unconfirmed" else "failed"


def _error(failure: tuple[Any, ...], pointer: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": failure[1], "title": failure[2], "detail": failure[3]}
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    return error


def _fields(sender: str, tags: list[str], kind: str, carrier: str) -> dict[str, Any]:
    return {
        "from": sender,
        "tags": tuple(tags),
        "type": kind,
        "carrier": carrier,
        "cost": SMS_COST if kind == "SMS" else MMS_COST,
    }


def _plan_sms(
    planner: SimPlanner, start: float, sender: str, tags: list[str], phone: tuple[str, str, str]
) -> None:
    rng = planner.rng
    message_id = planner.uuid4()
    created = t = start + rng.uniform(0.05, 1.0)
    final, failure = _outcome(planner, in_group=False)
    sent_as, sent_state, _ = planner.pick(SENT_AS)
    fields = _fields(sender, tags, "SMS", phone[1])
    marks: list[tuple[int, float, str]] = []
    statuses: list[str] = []
    if final == "sending_failed":  # refused before it was sent: only its final event
        t += rng.uniform(0.1, 1.0)
        payload = _payload(
            planner,
            message_id,
            "SMS",
            sender,
            tags,
            [_to(phone, final)],
            None,
            _stamp(planner, t),
            [_error(failure or FAILURES[0])],
        )
        marks.append(
            (_emit(planner, t, "message.finalized", payload, f"{final} {phone[0]}"), t, "failed")
        )
    else:
        t += rng.uniform(0.2, 1.5)
        sent_at = _stamp(planner, t)
        payload = _payload(planner, message_id, "SMS", sender, tags, [_to(phone, sent_as)], sent_at)
        marks.append(
            (_emit(planner, t, "message.sent", payload, f"{sent_as} {phone[0]}"), t, sent_state)
        )
        statuses.append(sent_as)
        t += planner.handset_delay(1.1)
        errors = [_error(failure)] if failure is not None else []
        payload = _payload(
            planner,
            message_id,
            "SMS",
            sender,
            tags,
            [_to(phone, final)],
            sent_at,
            _stamp(planner, t),
            errors,
        )
        label = f"{final} {phone[0]}"
        marks.append((_emit(planner, t, "message.finalized", payload, label), t, _state(final)))
    statuses.append(final)
    fields.update(final_status=final, statuses=tuple(statuses))
    if failure is not None:
        fields["error"] = _error(failure)
    code = failure[1] if failure is not None else None
    permanent = bool(failure[4]) if failure is not None else False
    how = ("telnyx", message_id, phone[0], _state(final), code, phone[1], permanent)
    planner.close(how, marks, created, 1, fields)


def _plan_group(
    planner: SimPlanner,
    start: float,
    sender: str,
    tags: list[str],
    phones: list[tuple[str, str, str]],
) -> None:
    rng = planner.rng
    message_id = planner.uuid4()
    created = t = start + rng.uniform(0.05, 1.0)
    outcomes = [_outcome(planner, in_group=True) for _ in phones]
    t += rng.uniform(0.2, 1.5)
    sent_at = _stamp(planner, t)
    payload = _payload(
        planner, message_id, "MMS", sender, tags, [_to(p, "sent") for p in phones], sent_at
    )
    _emit(planner, t, "message.sent", payload, f"group sent {len(phones)}")
    t += planner.handset_delay(1.3)
    errors = [
        _error(failure, f"/to/{i}")
        for i, (_, failure) in enumerate(outcomes)
        if failure is not None
    ]
    to = [_to(p, final) for p, (final, _) in zip(phones, outcomes, strict=True)]
    payload = _payload(
        planner, message_id, "MMS", sender, tags, to, sent_at, _stamp(planner, t), errors
    )
    final_index = _emit(planner, t, "message.finalized", payload, f"group final {len(phones)}")
    for phone, (final, failure) in zip(phones, outcomes, strict=True):
        fields = _fields(sender, tags, "MMS", phone[1])
        fields.update(final_status=final, statuses=(final,), group_size=len(phones))
        if failure is not None:
            fields["error"] = _error(failure)
        code = failure[1] if failure is not None else None
        permanent = bool(failure[4]) if failure is not None else False
        how = ("telnyx", message_id, phone[0], _state(final), code, phone[1], permanent)
        # Only the shared final: see the module docstring.
        planner.close(how, [(final_index, t, _state(final))], created, len(phones), fields)
