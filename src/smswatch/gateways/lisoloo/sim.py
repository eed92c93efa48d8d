"""Lisoloo's simulated traffic: multi-recipient sends to DRC numbers, as `smswatch simulate` and
the demo post them, with each recipient's truth (what the gateway knows of it) for the sandbox.

The random draws are made in a fixed order: the same seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from typing import Any

from smswatch.gateways.base import SimPlanner

# Lisoloo serves the DRC: carrier connector slugs by mobile prefix (+243 XX).
CARRIERS = {
    "vodacom_drc": ("81", "82", "83"),
    "airtel_drc": ("97", "98", "99"),
    "orange_drc": ("84", "85", "89"),
    "africell_drc": ("90", "91"),
}
# A carrier's delivery receipts come more or less quickly.
CARRIER_PACE = {"vodacom_drc": 1.0, "airtel_drc": 1.4, "orange_drc": 1.2, "africell_drc": 2.0}
# Failure codes in rough real-world proportions; one unnamed code shows pass-through. Each row
# says why the simulated recipient failed, including whether the number itself is bad for good
# (`permanent`: what `export --suppression` must list). That is the simulator's own decision,
# made here, never read from the catalogue: the truth must be able to prove the catalogue wrong.
# The weight stays last (`SimPlanner.pick`), so a seed plans the same traffic as before.
# Lisoloo: (code, error_message, retryable, permanent, weight).
FAILURES = (
    ("1502", "Number unreachable", False, True, 0.55),
    ("1503", "Delivery receipt timeout", True, False, 0.30),
    # The same code as a bad number, but the sender is at fault: the number is fine.
    ("1502", "Rejected by carrier: sender ID not registered", False, False, 0.10),
    ("1504", "Carrier congestion", True, False, 0.05),
)


def _phone(planner: SimPlanner, taken: set[str]) -> tuple[str, str]:
    while True:
        carrier = planner.rng.choice(list(CARRIERS))
        phone = f"+243{planner.rng.choice(CARRIERS[carrier])}{planner.rng.randrange(10**7):07d}"
        if phone not in taken:
            taken.add(phone)
            return phone, carrier


def _event(
    planner: SimPlanner, at: float, message_id: str, kind: str, data: dict[str, Any], label: str
) -> int:
    body = {
        "event_id": planner.uuid4(),
        "event_type": kind,
        "timestamp": planner.stamp(at),
        "message_id": message_id,
        "data": data,
    }
    return planner.emit(at, "lisoloo", body, label)


def plan_message(planner: SimPlanner, start: float) -> None:
    n = planner.recipients
    message_id = f"{planner.rng.getrandbits(96):024x}"
    segments = planner.rng.choice((1, 1, 1, 2))
    _event(
        planner,
        start,
        message_id,
        "sms.queued",
        {
            "total_recipients": n,
            "total_messages": n * segments,
            "total_cost": round(n * segments * 0.02, 2),
            "currency": "USD",
            "scheduled_at": None,
        },
        f"sms.queued {message_id}",
    )
    taken: set[str] = set()
    for _ in range(n):
        phone, carrier = _phone(planner, taken)
        base = {"recipient_phone": phone, "carrier": carrier}
        t = start + planner.rng.uniform(0.3, 2.5)
        label = f"sms.processing {phone}"
        index = _event(planner, t, message_id, "sms.processing", dict(base), label)
        marks = [(index, t, "processing")]
        failing = planner.rng.random() < planner.fail_rate
        code, text, retryable, permanent, _ = planner.pick(FAILURES)
        if failing and planner.rng.random() < 0.3:  # refused before the SMSC took it
            t += planner.rng.uniform(0.5, 2.0)
            index = _failed(planner, t, message_id, base, code, text, retryable, phone)
            marks.append((index, t, "failed"))
            how = ("lisoloo", message_id, phone, "failed", code, carrier, permanent)
            planner.close(how, marks, start, n)
            continue
        t += planner.rng.uniform(0.5, 3.0)
        sent = {**base, "sent_at": planner.stamp(t)}
        index = _event(planner, t, message_id, "sms.sent", sent, f"sms.sent {phone}")
        marks.append((index, t, "sent"))
        t += planner.handset_delay(CARRIER_PACE[carrier])
        if failing:
            index = _failed(planner, t, message_id, base, code, text, retryable, phone)
            marks.append((index, t, "failed"))
            how = ("lisoloo", message_id, phone, "failed", code, carrier, permanent)
        else:
            data = {**base, "delivered_at": planner.stamp(t), "segments": segments}
            index = _event(planner, t, message_id, "sms.delivered", data, f"sms.delivered {phone}")
            marks.append((index, t, "delivered"))
            how = ("lisoloo", message_id, phone, "delivered", None, carrier, False)
        planner.close(how, marks, start, n)


def _failed(
    planner: SimPlanner,
    t: float,
    message_id: str,
    base: dict[str, Any],
    code: str,
    text: str,
    retryable: bool,
    phone: str,
) -> int:
    data = {
        **base,
        "failed_at": planner.stamp(t),
        "error_code": code,
        "error_message": text,
        "retryable": retryable,
    }
    return _event(planner, t, message_id, "sms.failed", data, f"sms.failed {phone}")
