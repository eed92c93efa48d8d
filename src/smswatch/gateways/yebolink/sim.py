"""YeboLink's simulated traffic: bulk sends to southern African numbers, each recipient its own
message, the campaign named in the metadata, as `smswatch simulate` and the demo post them.

The random draws are made in a fixed order: the same seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from typing import Any

from smswatch.gateways.base import SimPlanner

# YeboLink (Twilio's codes): (code, error_message, permanent, weight). The handset that is off
# comes back, the spam filter is about the text, "unknown destination" is Twilio's unknown
# error whatever YeboLink's label says, and 30034 is the sender's registration.
FAILURES = (
    ("30003", "Unreachable destination handset", False, 0.35),
    ("30005", "Unknown destination handset", True, 0.15),
    ("30006", "Landline or unreachable carrier", True, 0.15),
    ("30007", "Message filtered (spam)", False, 0.10),
    ("30008", "Unknown destination", False, 0.10),
    ("21610", "Attempt to send to unsubscribed recipient", True, 0.10),
    ("30034", "Exceeded max price", False, 0.05),
)
PREFIXES = ("+26876", "+26878", "+26879", "+2782", "+2783", "+2772")
CAMPAIGNS = ("black-friday", "otp-resend", "payday-reminder", "clinic-recall", "stock-alert")


def plan_message(planner: SimPlanner, start: float) -> None:
    campaign = planner.rng.choice(CAMPAIGNS)
    batch = f"bulk_{planner.rng.getrandbits(32):08x}"
    taken: set[str] = set()
    for i in range(planner.recipients):
        while True:
            phone = f"{planner.rng.choice(PREFIXES)}{planner.rng.randrange(10**6):06d}"
            if phone not in taken:
                taken.add(phone)
                break
        message_id = planner.uuid4()
        metadata = {"campaign": campaign, "batch": batch, "user_id": str(10000 + i)}
        base = {"message_id": message_id, "channel": "sms", "recipient": phone}
        created = t = start + planner.rng.uniform(0.05, 1.0)
        queued = {**base, "status": "queued", "credits_used": 1, "metadata": metadata}
        marks = [(_event(planner, t, "message.queued", queued, phone), t, "queued")]
        sid = f"SM{planner.rng.getrandbits(128):032x}"
        t += planner.rng.uniform(0.5, 3.0)
        sent = {**base, "status": "sent", "provider_message_id": sid, "metadata": metadata}
        marks.append((_event(planner, t, "message.sent", sent, phone), t, "sent"))
        t += planner.handset_delay(1.1)
        fields: dict[str, Any] = {
            "channel": "sms",
            "credits_used": 1,
            "provider_message_id": sid,
            "metadata": metadata,
        }
        if planner.rng.random() < planner.fail_rate:
            code, text, permanent, _ = planner.pick(FAILURES)
            data = {
                **base,
                "status": "failed",
                "error_code": code,
                "error_message": text,
                "provider_message_id": sid,
                "metadata": metadata,
            }
            marks.append((_event(planner, t, "message.failed", data, phone), t, "failed"))
            fields["error_message"] = text
            how = ("yebolink", message_id, phone, "failed", code, None, permanent, campaign)
        else:
            data = {
                **base,
                "status": "delivered",
                "provider_message_id": sid,
                "delivered_at": planner.stamp(t),
                "metadata": metadata,
            }
            index = _event(planner, t, "message.delivered", data, phone)
            marks.append((index, t, "delivered"))
            how = ("yebolink", message_id, phone, "delivered", None, None, False, campaign)
        planner.close(how, marks, created, 1, fields)


def _event(planner: SimPlanner, at: float, kind: str, data: dict[str, Any], phone: str) -> int:
    body = {"event": kind, "timestamp": planner.stamp(at), "data": data}
    return planner.emit(at, "yebolink", body, f"{kind} {phone}")
