"""Infobip's simulated traffic: a bulk send (one `bulkId`) to numbers in Europe, Africa and
Asia, one message (one `messageId`) per destination, each with the delivery reports Infobip
posts, batched as it batches them (the reports ready within a second, up to 100 a post: the
simulator's `batch`), with each recipient's truth for the sandbox.

Most sends ask for intermediate reports: `PENDING_ENROUTE` once Infobip routes the message,
then, from operators that acknowledge it, `DELIVERED_TO_OPERATOR`; then the final report:
`DELIVERED_TO_HANDSET`, or `UNDELIVERABLE_NOT_DELIVERED` / `UNDELIVERABLE_REJECTED_OPERATOR`
/ `EXPIRED_EXPIRED` with the operator's error, or `EXPIRED_DLR_UNKNOWN` (no receipt ever came:
unconfirmed). A message Infobip refuses itself (an unknown prefix, no credit) gets only its
`REJECTED_*` report. Each report carries the price of its parts.

The random draws are made in a fixed order: the same seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smswatch.gateways.base import SimPlanner
from smswatch.gateways.infobip.webhook import MAX_REPORTS

SENDERS = ("InfoSMS", "ACME", "38598765432")
# (country code, digits after it, mccMnc, price per part in EUR, weight).
PLACES = (
    ("385", 9, "21910", 0.0420, 0.20),  # Croatia, A1
    ("49", 11, "26201", 0.0750, 0.15),  # Germany, Telekom
    ("44", 10, "23415", 0.0360, 0.15),  # UK, Vodafone
    ("234", 10, "62130", 0.0300, 0.20),  # Nigeria, MTN
    ("91", 10, "40445", 0.0017, 0.20),  # India, Airtel
    ("62", 11, "51010", 0.0290, 0.10),  # Indonesia, Telkomsel
)
# (status group id, group name, status id, name, description): Infobip's statuses.
ENROUTE = (1, "PENDING", 7, "PENDING_ENROUTE", "Message sent to next instance")
TO_OPERATOR = (3, "DELIVERED", 2, "DELIVERED_TO_OPERATOR", "Message delivered to operator")
TO_HANDSET = (3, "DELIVERED", 5, "DELIVERED_TO_HANDSET", "Message delivered to handset")
NOT_DELIVERED = (2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED", "Message sent not delivered")
REJECTED_OPERATOR = (
    2,
    "UNDELIVERABLE",
    4,
    "UNDELIVERABLE_REJECTED_OPERATOR",
    "Message rejected by operator",
)
EXPIRED = (4, "EXPIRED", 15, "EXPIRED_EXPIRED", "Message expired")
DLR_UNKNOWN = (4, "EXPIRED", 29, "EXPIRED_DLR_UNKNOWN", "Message expired, delivery unknown")
REJECTED_DESTINATION = (5, "REJECTED", 14, "REJECTED_DESTINATION", "Destination rejected")
NO_CREDIT = (5, "REJECTED", 12, "REJECTED_NOT_ENOUGH_CREDITS", "Not enough credits")
# (error group id, group name, error id, name, description, permanent).
NO_ERROR = (0, "OK", 0, "NO_ERROR", "No Error", False)
# (final status, error, rejected by Infobip itself, weight). `permanent` of the error: the
# number is bad for good (what `export --suppression` must list) where the catalogue says the
# code is about the number.
ABSENT = (1, "HANDSET_ERRORS", 27, "EC_ABSENT_SUBSCRIBER", "Absent Subscriber", False)
UNKNOWN = (1, "HANDSET_ERRORS", 1, "EC_UNKNOWN_SUBSCRIBER", "Unknown Subscriber", True)
BARRED = (2, "USER_ERRORS", 13, "EC_CALL_BARRED", "Call Barred", True)
BUSY = (1, "HANDSET_ERRORS", 31, "EC_SUBSCRIBER_BUSY_FOR_MT_SMS", "Subscriber busy", False)
FAILURES = (
    (NOT_DELIVERED, ABSENT, False, 0.30),
    (NOT_DELIVERED, UNKNOWN, False, 0.20),
    (REJECTED_OPERATOR, BARRED, False, 0.10),
    (NOT_DELIVERED, BUSY, False, 0.10),
    (EXPIRED, ABSENT, False, 0.10),
    (REJECTED_DESTINATION, NO_ERROR, True, 0.10),
    (NO_CREDIT, NO_ERROR, True, 0.05),
    (DLR_UNKNOWN, NO_ERROR, False, 0.05),
)
# The codes whose failure is about the number (errors.toml `suppress`): with `permanent`, what
# the suppression list must hold.
NUMBER_LEVEL = frozenset(("EC_UNKNOWN_SUBSCRIBER", "EC_CALL_BARRED"))
INTERMEDIATE_SHARE = 0.8  # of sends that ask for intermediate reports
OPERATOR_ACK_SHARE = 0.6  # of messages whose operator acknowledges it before the handset
LONG_SHARE = 0.2  # of sends whose text takes two parts


def stamp(planner: SimPlanner, sim_s: float) -> str:
    """A simulated time as Infobip writes it: `2019-11-09T16:00:00.000+0000`."""
    at = datetime.fromisoformat(planner.stamp(sim_s).replace("Z", "+00:00")).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def status_object(row: tuple[Any, ...]) -> dict[str, Any]:
    group_id, group, status_id, name, description = row
    return {
        "groupId": group_id,
        "groupName": group,
        "id": status_id,
        "name": name,
        "description": description,
    }


def error_object(row: tuple[Any, ...]) -> dict[str, Any]:
    group_id, group, error_id, name, description, permanent = row
    return {
        "groupId": group_id,
        "groupName": group,
        "id": error_id,
        "name": name,
        "description": description,
        "permanent": permanent,
    }


def _report(
    planner: SimPlanner,
    base: dict[str, Any],
    price: float,
    at: float,
    status: tuple[Any, ...],
    error: tuple[Any, ...],
) -> int:
    """Plan one delivery report of a message, posted in a batch with its neighbours."""
    body = {
        **base,
        "doneAt": stamp(planner, at),
        "price": {"pricePerMessage": price, "currency": "EUR"},
        "status": status_object(status),
        "error": error_object(error),
    }
    label = f"{status[3]} {base['to']}"
    return planner.emit(at, "infobip", body, label, batch=("results", MAX_REPORTS))


def plan_message(planner: SimPlanner, start: float) -> None:
    rng = planner.rng
    bulk_id = planner.uuid4()
    intermediate = rng.random() < INTERMEDIATE_SHARE
    parts = 2 if rng.random() < LONG_SHARE else 1
    sender = rng.choice(SENDERS)
    callback = f"campaign={rng.randrange(1000, 9999)}"
    taken: set[str] = set()
    for _ in range(planner.recipients):
        while True:
            country, digits, mcc_mnc, price, _ = planner.pick(PLACES)
            phone = f"{country}{rng.randrange(10 ** (digits - 1), 10**digits)}"
            if phone not in taken:
                taken.add(phone)
                break
        message_id = planner.uuid4()
        created = t = start + rng.uniform(0.05, 1.0)
        sent_at = stamp(planner, created)
        failing = rng.random() < planner.fail_rate
        final, error, refused, _ = planner.pick(FAILURES)
        acked = rng.random() < OPERATOR_ACK_SHARE
        base = {
            "bulkId": bulk_id,
            "messageId": message_id,
            "to": phone,
            "sender": sender,
            "sentAt": sent_at,
            "smsCount": parts,
            "mccMnc": mcc_mnc,
            "callbackData": callback,
        }

        # What the sandbox's reports answer from: the report's own fields.
        fields = {
            **base,
            "price": price,
            "final": final if failing else TO_HANDSET,
            "error": error if failing else NO_ERROR,
        }
        marks: list[tuple[int, float, str]] = []
        if failing and refused:
            t += rng.uniform(0.1, 0.8)
            marks.append((_report(planner, base, 0.0, t, final, error), t, "failed"))
            how = ("infobip", message_id, phone, "failed", final[3], mcc_mnc, False)
            planner.close(how, marks, created, 1, {**fields, "price": 0.0})
            continue
        if intermediate:
            t += rng.uniform(0.2, 1.0)
            marks.append((_report(planner, base, price, t, ENROUTE, NO_ERROR), t, "processing"))
            if acked:
                t += rng.uniform(0.3, 2.0)
                marks.append((_report(planner, base, price, t, TO_OPERATOR, NO_ERROR), t, "sent"))
        t += planner.handset_delay(1.0)
        if not failing:
            marks.append((_report(planner, base, price, t, TO_HANDSET, NO_ERROR), t, "delivered"))
            how = ("infobip", message_id, phone, "delivered", None, mcc_mnc, False)
        elif final is DLR_UNKNOWN:
            marks.append((_report(planner, base, price, t, final, error), t, "unconfirmed"))
            how = ("infobip", message_id, phone, "unconfirmed", None, mcc_mnc, False)
        else:
            marks.append((_report(planner, base, price, t, final, error), t, "failed"))
            permanent = bool(error[5]) and error[3] in NUMBER_LEVEL
            how = ("infobip", message_id, phone, "failed", error[3], mcc_mnc, permanent)
        planner.close(how, marks, created, 1, fields)
