"""Plivo's simulated traffic: a bulk send to US numbers, one message (one MessageUUID) per
destination, each with the status callbacks Plivo posts, as `smswatch simulate` and the demo
post them, with each recipient's truth (what Plivo knows of it, as its Message API answers) for
the sandbox.

A message is `queued` at once and called back so (Sequence 1); Plivo hands it to a carrier,
`sent` (2), and the carrier's report makes it `delivered` or `undelivered` (3) with the report's
time as DeliveryReportTime. A message Plivo could not hand to any carrier (an invalid sender, a
number that texted STOP) goes from `queued` to `failed`. Every callback carries the times known
so far, the message's cost (TotalRate x Units, in USD), the destination's MCC and MNC, and the
Powerpack that sent it, if one did (else PowerpackUUID is empty and the sender is a number).

Signatures are not planned: the sender signs each post as it goes (`PlivoGateway.resign`), with
a fresh nonce, as Plivo does. The random draws are made in a fixed order: the same seed plans
the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smswatch.gateways.base import SimPlanner

# One simulated account: the sandbox's Message API lives under it, and a reconciler polling the
# sandbox is configured with it (--plivo-auth-id). Auth IDs are MA (or SA, a subaccount) and 18
# letters and digits.
AUTH_ID = "MA" + "5A1E0B7C" * 2 + "PV"
SENDERS = ("14155550100", "14155550101", "12125550142")
POWERPACK_SHARE = 0.5  # of sends through a Powerpack
# An account's few Powerpacks, which its sends reuse: each one is a campaign on screen.
POWERPACKS = ("d35f2e82-5a1e-4b7c-9f10-5a1e0b7c0101", "8e41c0a3-5a1e-4b7c-9f10-5a1e0b7c0102")
AREAS = ("212", "312", "415", "617", "646", "718", "917")
NETWORKS = (("310", "260", 0.4), ("311", "480", 0.35), ("310", "410", 0.25))  # MCC, MNC
RATE = "0.00500"  # per unit, USD
# (final status, ErrorCode, permanent, weight). `failed` ones never reached a carrier;
# `permanent`: the number is bad for good (what `export --suppression` must list), the
# simulator's own decision, so the truth can prove the catalogue wrong.
FAILURES = (
    ("undelivered", "80", False, 0.3),  # destination temporarily unavailable
    ("undelivered", "70", True, 0.15),  # destination permanently unavailable
    ("undelivered", "50", True, 0.1),  # invalid destination number
    ("undelivered", "30", False, 0.1),  # spam detected
    ("undelivered", "1000", False, 0.1),  # unknown error
    ("failed", "200", True, 0.15),  # the destination texted STOP
    ("failed", "90", False, 0.1),  # no route available
)


def plivo_stamp(planner: SimPlanner, at: float) -> str:
    """A simulated time as Plivo writes it: `YYYY-mm-dd HH:MM:SS.ffffff`, UTC."""
    when = datetime.fromisoformat(planner.stamp(at).replace("Z", "+00:00")).astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def plan_message(planner: SimPlanner, start: float) -> None:
    powerpack = planner.rng.choice(POWERPACKS) if planner.rng.random() < POWERPACK_SHARE else ""
    sender = planner.rng.choice(SENDERS)
    units = planner.rng.choice((1, 1, 1, 2))
    taken: set[str] = set()
    for _ in range(planner.recipients):
        while True:
            phone = f"1{planner.rng.choice(AREAS)}555{planner.rng.randrange(10**4):04d}"
            if phone not in taken:
                taken.add(phone)
                break
        uuid = planner.uuid4()
        mcc, mnc, _ = planner.pick(NETWORKS)
        created = t = start + planner.rng.uniform(0.05, 1.0)
        base: dict[str, Any] = {
            "uuid": uuid,
            "To": phone,
            "From": sender,
            "powerpack": powerpack,
            "units": units,
            "mcc": mcc,
            "mnc": mnc,
            "times": {"MessageTime": plivo_stamp(planner, t)},
        }
        marks: list[tuple[int, float, str]] = []
        t += planner.rng.uniform(0.01, 0.2)
        base["times"]["QueuedTime"] = plivo_stamp(planner, t)
        marks.append((_callback(planner, t, "queued", base, 1), t, "queued"))
        failing = planner.rng.random() < planner.fail_rate
        final, code, permanent, _ = planner.pick(FAILURES)
        fields: dict[str, Any] = {
            "auth_id": AUTH_ID,
            "from": sender,
            "powerpack": powerpack,
            "units": units,
            "rate": RATE,
        }
        if failing and final == "failed":  # refused before a carrier took it
            t += planner.rng.uniform(0.2, 1.5)
            marks.append((_callback(planner, t, "failed", base, 2, code), t, "failed"))
            fields["final_status"] = "failed"
            how = ("plivo", uuid, phone, "failed", code, f"{mcc}-{mnc}", permanent)
            planner.close(how, marks, created, 1, fields)
            continue
        t += planner.rng.uniform(0.5, 3.0)
        base["times"]["SentTime"] = plivo_stamp(planner, t)
        marks.append((_callback(planner, t, "sent", base, 2), t, "sent"))
        t += planner.handset_delay(1.2)
        base["times"]["DeliveryReportTime"] = plivo_stamp(planner, t)
        if failing:
            marks.append((_callback(planner, t, "undelivered", base, 3, code), t, "failed"))
            fields["final_status"] = "undelivered"
            how = ("plivo", uuid, phone, "failed", code, f"{mcc}-{mnc}", permanent)
        else:
            marks.append((_callback(planner, t, "delivered", base, 3), t, "delivered"))
            fields["final_status"] = "delivered"
            how = ("plivo", uuid, phone, "delivered", None, f"{mcc}-{mnc}", False)
        planner.close(how, marks, created, 1, fields)


def _callback(
    planner: SimPlanner,
    at: float,
    status: str,
    base: dict[str, Any],
    sequence: int,
    error: str | None = None,
) -> int:
    """One status callback, its fields in the order Plivo posts them."""
    units = base["units"]
    body: dict[str, str] = {
        "From": base["From"],
        "To": base["To"],
        "Type": "sms",
        "Status": status,
        "MessageUUID": base["uuid"],
        "ParentMessageUUID": base["uuid"],
        "PartInfo": f"1 of {units}",
        "Units": str(units),
        "TotalRate": RATE,
        "TotalAmount": f"{float(RATE) * units:.5f}",
        "MCC": base["mcc"],
        "MNC": base["mnc"],
        "ErrorCode": error or "",
        "PowerpackUUID": base["powerpack"],
        "Sequence": str(sequence),
        **base["times"],
    }
    return planner.emit(at, "plivo", body, f"{status} {base['To']}")
