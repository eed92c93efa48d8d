"""Sinch's simulated traffic: a batch (one `batch_id`) to numbers in Europe, the Americas and
Asia, as `smswatch simulate` and the demo post it, with each recipient's truth (what Sinch
knows of it, as its delivery reports API answers) for the sandbox.

Most batches ask for `per_recipient` reports: a recipient's `Queued` now and then, its
`Dispatched` once the SMSC took it, then its final report: `Delivered`, a failure (`Failed`,
`Rejected`, `Expired`, `Deleted`, with Sinch's code or 0), or `Unknown` (no receipt came:
unconfirmed). A recipient Sinch stops before the SMSC (`Aborted`, an unprovisioned region or a
blocked account) has only its final report. The other batches ask for a `full` report: one
`delivery_report_sms` once every recipient is final, its `statuses[]` listing the recipients of
each status and code; none of its recipients is planned as dropped (`--drop-rate`), since
dropping the report for one would take the others' with it.

Signatures are not planned: the sender signs each post as it goes (`SinchGateway.resign`), with
a fresh nonce and timestamp. The random draws are made in a fixed order: the same seed plans
the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from smswatch.gateways.base import SimPlanner
from smswatch.gateways.sinch.webhook import error_code, state_of

# (country code, digits after it, operator as Sinch names it (MCCMNC), weight).
PLACES = (
    ("46", 9, "24001", 0.2),  # Sweden, Telia
    ("44", 10, "23415", 0.2),  # UK, Vodafone
    ("1", 10, "310260", 0.25),  # US, T-Mobile
    ("33", 9, "20801", 0.15),  # France, Orange
    ("55", 11, "72405", 0.1),  # Brazil, Claro
    ("65", 8, "52501", 0.1),  # Singapore, Singtel
)
FULL_SHARE = 0.25  # of batches that ask for a `full` batch report instead of per-recipient ones
QUEUED_SHARE = 0.3  # of per-recipient messages whose `Queued` report comes before `Dispatched`
REFERENCED_SHARE = 0.7  # of batches sent with a client_reference
# (final status, code, the number is bad for good (what `export --suppression` must list),
# refused before the SMSC (no Dispatched), weight).
FAILURES = (
    ("Failed", 404, False, False, 0.2),
    ("Rejected", 402, False, False, 0.15),
    ("Expired", 0, False, False, 0.15),
    ("Deleted", 0, True, False, 0.15),
    ("Aborted", 412, False, True, 0.1),
    ("Aborted", 413, False, True, 0.05),
    ("Unknown", 0, False, False, 0.2),
)
# The simulated service plan, as the sandbox's API paths carry it.
SERVICE_PLAN_ID = "5a1e0b7c5a1e0b7c5a1e0b7c5a1e0b7c"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def batch_id(planner: SimPlanner) -> str:
    """A batch id as Sinch writes one: 26 characters of Crockford base32 (a ULID)."""
    return "01" + "".join(planner.rng.choice(_CROCKFORD) for _ in range(24))


def stamp(planner: SimPlanner, at: float) -> str:
    """A simulated time as Sinch writes one: `2022-08-30T08:16:08.930Z`."""
    when = datetime.fromisoformat(planner.stamp(at).replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def our_state(status: str) -> str:
    return state_of(status).value


def _recipient_report(
    planner: SimPlanner,
    batch: str,
    reference: str | None,
    phone: str,
    operator: str,
    at: float,
    status: str,
    code: int,
) -> int:
    body: dict[str, Any] = {
        "at": stamp(planner, at),
        "batch_id": batch,
        "code": code,
        "operator_status_at": stamp(planner, max(at - 0.5, 0.0)),
        "recipient": phone,
        "status": status,
        "type": "recipient_delivery_report_sms",
    }
    if reference is not None:
        body["client_reference"] = reference
    body["operator"] = operator
    return planner.emit(at, "sinch", body, f"{status} {phone}")


def plan_batch(planner: SimPlanner, start: float) -> None:
    rng = planner.rng
    batch = batch_id(planner)
    full = rng.random() < FULL_SHARE
    reference = f"campaign-{rng.randrange(1000, 9999)}" if rng.random() < REFERENCED_SHARE else None
    taken: set[str] = set()
    # A `full` batch's recipients: (phone, operator, created, final at, status, code, how).
    finals: list[tuple[str, str, float, float, str, int, tuple[Any, ...]]] = []
    for _ in range(planner.recipients):
        while True:
            country, digits, operator, _ = planner.pick(PLACES)
            phone = f"{country}{rng.randrange(10 ** (digits - 1), 10**digits)}"
            if phone not in taken:
                taken.add(phone)
                break
        created = t = start + rng.uniform(0.05, 1.0)
        failing = rng.random() < planner.fail_rate
        status, code, permanent, refused, _ = planner.pick(FAILURES)
        queued = rng.random() < QUEUED_SHARE
        if not failing:
            status, code, permanent, refused = "Delivered", 0, False, False
        state = our_state(status)
        # The parser's own rule (a code that names no error gives the status), so the truth
        # never disagrees with what smswatch stores.
        error = error_code(status, code, state_of(status))
        how = ("sinch", batch, phone, state, error, operator, permanent)
        fields = {"status": status, "code": code, "operator": operator, "reference": reference}
        if refused:
            t += rng.uniform(0.1, 0.8)
        else:
            if queued:
                t += rng.uniform(0.05, 0.3)
            t += rng.uniform(0.2, 1.0)
            dispatched = t
            t += planner.handset_delay(1.0)
        if full:
            finals.append((phone, operator, created, t, status, code, (how, fields)))
            continue
        marks: list[tuple[int, float, str]] = []
        if not refused:
            if queued:
                at = created + 0.05
                index = _recipient_report(
                    planner, batch, reference, phone, operator, at, "Queued", 400
                )
                marks.append((index, at, "queued"))
            index = _recipient_report(
                planner, batch, reference, phone, operator, dispatched, "Dispatched", 401
            )
            marks.append((index, dispatched, "sent"))
        index = _recipient_report(planner, batch, reference, phone, operator, t, status, code)
        marks.append((index, t, state))
        planner.close(how, marks, created, 1, fields)
    if full:
        _plan_full(planner, batch, reference, finals)


def _plan_full(
    planner: SimPlanner,
    batch: str,
    reference: str | None,
    finals: list[tuple[str, str, float, float, str, int, tuple[Any, ...]]],
) -> None:
    """The batch's one `full` report, once its last recipient is final, and each recipient's
    truth (its one event: the report)."""
    at = max(f[3] for f in finals) + planner.rng.uniform(0.2, 1.0)
    grouped: dict[tuple[str, int], list[str]] = {}
    for phone, _, _, _, status, code, _ in finals:
        grouped.setdefault((status, code), []).append(phone)
    body: dict[str, Any] = {
        "batch_id": batch,
        "statuses": [
            {"code": code, "count": len(phones), "recipients": phones, "status": status}
            for (status, code), phones in grouped.items()
        ],
        "total_message_count": len(finals),
        "type": "delivery_report_sms",
    }
    if reference is not None:
        body["client_reference"] = reference
    index = planner.emit(at, "sinch", body, f"batch report {batch} ({len(finals)})")
    for _, _, created, _, _, _, (how, fields) in finals:
        planner.close(how, [(index, at, how[3])], created, 1, fields)
