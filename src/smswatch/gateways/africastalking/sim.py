"""Africa's Talking's simulated traffic: a bulk send to East and West African numbers, one
message (one messageId, `ATXid_…`) per recipient, each with the delivery reports Africa's Talking
posts, as `smswatch simulate` and the demo post them, with each recipient's truth.

A report follows the message through the telco: `Sent` once Africa's Talking hands it over,
now and then `Submitted` (the telco took it) and `Buffered` (the telco holds it while the
handset is out of reach), then `Success`, or `Failed` / `Rejected` with a failureReason when the
telco gives one (not all do), or the `AbsentSubscriber` status. Promotional messages to Nigerian
numbers outside the NCC's hours are rejected `DoNotDisturbRejection`. There is no status API:
what the reports say is all anyone learns of a message.

The random draws are made in a fixed order: the same seed plans the same traffic byte for byte.
"""

from __future__ import annotations

from typing import Any

from smswatch.gateways.africastalking.webhook import NETWORKS
from smswatch.gateways.base import SimPlanner

# (country code, mobile prefixes, networkCode, weight): where a campaign's numbers are.
PLACES = (
    ("254", ("70", "71", "72", "74", "79"), "63902", 0.40),  # Safaricom
    ("254", ("73", "75", "78"), "63903", 0.12),  # Airtel Kenya
    ("256", ("77", "78"), "64110", 0.12),  # MTN Uganda
    ("256", ("70", "75"), "64101", 0.06),  # Airtel Uganda
    ("255", ("74", "75", "76"), "64004", 0.08),  # Vodacom Tanzania
    ("250", ("78",), "63510", 0.06),  # MTN Rwanda
    ("234", ("803", "806", "813"), "62130", 0.16),  # MTN Nigeria
)
NIGERIA = "234"
# (status, failureReason or None, permanent, weight). `permanent`: the number is bad for good
# (what `export --suppression` must list), the simulator's own decision, so the truth can prove
# the catalogue wrong.
FAILURES = (
    ("Failed", "DeliveryFailure", False, 0.22),
    ("Failed", None, False, 0.10),  # a telco that gives no reason
    ("AbsentSubscriber", None, False, 0.14),
    ("Failed", "UserDoesNotExist", True, 0.14),
    ("Rejected", "UserInBlackList", True, 0.14),
    ("Failed", "UserIsInactive", False, 0.08),
    ("Failed", "UserAccountSuspended", False, 0.05),
    ("Failed", "NotNetworkSubscriber", False, 0.05),
    ("Rejected", None, False, 0.04),
    ("Failed", "InsufficientCredit", False, 0.04),
)
# Of the failures to Nigerian numbers: sent with a promotional sender ID after 8 pm.
CURFEW_SHARE = 0.3
SUBMITTED_SHARE = 0.35  # of messages whose telco reports taking it
BUFFERED_SHARE = 0.12  # of messages the telco holds a while first


def _number(planner: SimPlanner) -> tuple[str, str]:
    """A recipient's number (E.164) and its telco's networkCode."""
    country, prefixes, network, _ = planner.pick(PLACES)
    prefix = planner.rng.choice(prefixes)
    digits = 12 - len(country) - len(prefix) + (1 if country == NIGERIA else 0)
    return f"+{country}{prefix}{planner.rng.randrange(10**digits):0{digits}d}", network


def plan_message(planner: SimPlanner, start: float) -> None:
    taken: set[str] = set()
    for _ in range(planner.recipients):
        while True:
            phone, network = _number(planner)
            if phone not in taken:
                taken.add(phone)
                break
        message_id = f"ATXid_{planner.rng.getrandbits(128):032x}"
        base = {"id": message_id, "phoneNumber": phone, "networkCode": network}
        created = t = start + planner.rng.uniform(0.05, 1.0)
        marks: list[tuple[int, float, str]] = []
        t += planner.rng.uniform(0.2, 1.5)
        marks.append((_report(planner, t, "Sent", base), t, "sent"))
        if planner.rng.random() < SUBMITTED_SHARE:
            t += planner.rng.uniform(0.1, 1.0)
            marks.append((_report(planner, t, "Submitted", base), t, "sent"))
        failing = planner.rng.random() < planner.fail_rate
        status, reason, permanent, _ = planner.pick(FAILURES)
        curfew = planner.rng.random() < CURFEW_SHARE
        if failing and phone.startswith("+" + NIGERIA) and curfew:
            status, reason, permanent = "Rejected", "DoNotDisturbRejection", False
        if planner.rng.random() < BUFFERED_SHARE:
            t += planner.rng.uniform(0.5, 3.0)
            marks.append((_report(planner, t, "Buffered", base), t, "sent"))
        t += planner.handset_delay()
        carrier = NETWORKS[network]  # as the adapter names the telco
        if failing:
            extra = {"failureReason": reason} if reason else {}
            marks.append((_report(planner, t, status, base, extra), t, "failed"))
            code = reason or (status if status == "AbsentSubscriber" else None)
            how = ("africastalking", message_id, phone, "failed", code, carrier, permanent)
            fields: dict[str, Any] = {"final_status": status}
        else:
            marks.append((_report(planner, t, "Success", base), t, "delivered"))
            how = ("africastalking", message_id, phone, "delivered", None, carrier, False)
            fields = {"final_status": "Success"}
        planner.close(how, marks, created, 1, fields)


def _report(
    planner: SimPlanner,
    at: float,
    status: str,
    base: dict[str, str],
    extra: dict[str, str] | None = None,
) -> int:
    """One delivery report, its fields in the order Africa's Talking posts them."""
    body = {"id": base["id"], "status": status, "phoneNumber": base["phoneNumber"]}
    body["networkCode"] = base["networkCode"]
    body.update(extra or {})  # no retryCount: Africa's Talking gives it for premium SMS only
    return planner.emit(at, "africastalking", body, f"{status} {base['phoneNumber']}")
