"""Twilio's simulated traffic: a bulk send to US numbers, one message (one MessageSid) per
recipient, each with the status callbacks Twilio posts, as `smswatch simulate` and the demo post
them, with each recipient's truth (what Twilio knows of it) for the sandbox.

Twilio posts no callback for a message's initial status. Sent through a Messaging Service (most
bulk sends), a message starts `accepted` and calls back `queued`, now and then `sending`, `sent`,
then `delivered` or `undelivered`; from a bare number it starts `queued` and calls back `sent`
onwards. A message refused before any carrier took it (an unregistered sender, an unsubscribed
recipient) calls back `failed`. The carrier's receipt time comes as RawDlrDoneDate.

The random draws are made in a fixed order: the same seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smswatch.gateways.base import SimPlanner

# One simulated account: the sandbox's Messages resource lives under it, and a reconciler
# polling the sandbox is configured with it (--twilio-account-sid).
ACCOUNT_SID = "AC" + "5a1e" * 8
SENDERS = ("+14155550100", "+14155550101", "+12125550142")
SERVICE_SHARE = 0.7  # of sends through a Messaging Service
# An account's few Messaging Services, which its sends reuse: each one is a campaign on screen.
SERVICES = ("MG" + "9e1c" * 8, "MG" + "b07a" * 8)
AREAS = ("212", "312", "415", "617", "646", "718", "917")
# (final status, ErrorCode, ErrorMessage, permanent, weight). `failed` ones never reached a
# carrier; `permanent`: the number is bad for good (what `export --suppression` must list),
# the simulator's own decision, so the truth can prove the catalogue wrong.
FAILURES = (
    ("undelivered", "30003", "Unreachable destination handset", False, 0.35),
    ("undelivered", "30005", "Unknown destination handset", True, 0.15),
    ("undelivered", "30006", "Landline or unreachable carrier", True, 0.15),
    ("undelivered", "30007", "Message filtered", False, 0.10),
    ("undelivered", "30008", "Unknown error", False, 0.10),
    ("failed", "30034", "Message from an Unregistered Number", False, 0.10),
    ("failed", "21610", "Attempt to send to unsubscribed recipient", True, 0.05),
)


def _sid(planner: SimPlanner, prefix: str) -> str:
    return f"{prefix}{planner.rng.getrandbits(128):032x}"


def _dlr(stamp: str) -> str:
    """A simulated time as RawDlrDoneDate writes it: YYMMDDhhmm, UTC."""
    return (
        datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).strftime("%y%m%d%H%M")
    )


def plan_message(planner: SimPlanner, start: float) -> None:
    service = planner.rng.choice(SERVICES) if planner.rng.random() < SERVICE_SHARE else None
    sender = planner.rng.choice(SENDERS)
    taken: set[str] = set()
    for _ in range(planner.recipients):
        while True:
            phone = f"+1{planner.rng.choice(AREAS)}555{planner.rng.randrange(10**4):04d}"
            if phone not in taken:
                taken.add(phone)
                break
        sid = _sid(planner, "SM")
        base = {"To": phone, "From": sender, "sid": sid, "service": service}
        created = t = start + planner.rng.uniform(0.05, 1.0)
        marks: list[tuple[int, float, str]] = []
        if service is not None:
            t += planner.rng.uniform(0.05, 0.5)
            marks.append((_callback(planner, t, "queued", base), t, "queued"))
        failing = planner.rng.random() < planner.fail_rate
        final, code, text, permanent, _ = planner.pick(FAILURES)
        fields: dict[str, Any] = {
            "account_sid": ACCOUNT_SID,
            "from": sender,
            "messaging_service_sid": service,
        }
        if failing and final == "failed":  # refused before a carrier took it
            t += planner.rng.uniform(0.2, 1.5)
            data = {"ErrorCode": code, "ErrorMessage": text}
            marks.append((_callback(planner, t, "failed", base, data), t, "failed"))
            fields.update(final_status="failed", error_message=text)
            how = ("twilio", sid, phone, "failed", code, None, permanent)
            planner.close(how, marks, created, 1, fields)
            continue
        if service is not None and planner.rng.random() < 0.3:
            t += planner.rng.uniform(0.1, 0.6)
            marks.append((_callback(planner, t, "sending", base), t, "processing"))
        t += planner.rng.uniform(0.5, 3.0)
        marks.append((_callback(planner, t, "sent", base), t, "sent"))
        t += planner.handset_delay(1.2)
        done = {"RawDlrDoneDate": _dlr(planner.stamp(t))}
        if failing:
            data = {"ErrorCode": code, "ErrorMessage": text, **done}
            marks.append((_callback(planner, t, "undelivered", base, data), t, "failed"))
            fields.update(final_status="undelivered", error_message=text)
            how = ("twilio", sid, phone, "failed", code, None, permanent)
        else:
            marks.append((_callback(planner, t, "delivered", base, done), t, "delivered"))
            fields.update(final_status="delivered")
            how = ("twilio", sid, phone, "delivered", None, None, False)
        planner.close(how, marks, created, 1, fields)


def _callback(
    planner: SimPlanner,
    at: float,
    status: str,
    base: dict[str, Any],
    extra: dict[str, str] | None = None,
) -> int:
    """One status callback, its fields in the order Twilio posts them."""
    body: dict[str, str] = dict(extra or {})
    body.pop("RawDlrDoneDate", None)
    body.update({"SmsSid": base["sid"], "SmsStatus": status, "MessageStatus": status})
    body["To"] = base["To"]
    if base["service"] is not None:
        body["MessagingServiceSid"] = base["service"]
    body.update({"MessageSid": base["sid"], "AccountSid": ACCOUNT_SID, "From": base["From"]})
    if extra and "RawDlrDoneDate" in extra:
        body["RawDlrDoneDate"] = extra["RawDlrDoneDate"]
    body["ApiVersion"] = "2010-04-01"
    return planner.emit(at, "twilio", body, f"{status} {base['To']}")
