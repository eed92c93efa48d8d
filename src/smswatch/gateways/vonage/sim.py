"""Vonage's simulated traffic: one send (one text to many recipients) through the SMS API, or
now and then through the Messages API, with each recipient's truth (what Vonage knows of it,
as its Reports API answers) for the sandbox, as `smswatch simulate` and the demo post them.

SMS API: a long text is cut into parts, and Vonage makes one `messageId` per part and recipient,
each with receipts of its own; the parts of one send share its `client-ref`. A part may get an
intermediate `accepted` (the carrier took it) or `buffered` receipt, then its final one:
`delivered`, a failure (`expired`, `failed`, `rejected`, `undelivered`) with its `err-code`, or
now and then `unknown`. The receipts come as the account is set: a GET with a query (most sends:
the dashboard's first choice, and what the SMS API docs' receipts are), a form, or JSON
(`smswatch:via` in the planned body says which; the listener and the sender read it).

Messages API: one `message_uuid` per recipient, `submitted` then `delivered` (and `read` on
WhatsApp), or `rejected` / `undeliverable` at once with its `error`, signed with a JWT.

Signatures are not planned: the sender signs each post as it goes (`VonageGateway.resign`), with
a fresh `timestamp`, as Vonage does. The random draws are made in a fixed order: the same seed
plans the same traffic byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smswatch.gateways.base import SimPlanner
from smswatch.gateways.vonage.webhook import FORM, QUERY, VIA
from smswatch.timefmt import from_us, to_us

# The simulated account's API key (the Reports API's `account_id`, the receipts' `api-key`):
# a reconciler polling the sandbox is configured with it (--vonage-api-key).
API_KEY = "5a1e0b7c"
SENDERS = ("AcmeAlerts", "Vonage", "447700900100")
# (country code, national prefix, digits after it, networks (MCCMNC, name), EUR per part, weight)
COUNTRIES = (
    ("44", "7700900", 3, (("23410", "O2"), ("23415", "Vodafone"), ("23420", "Three")), 0.0333, 5),
    ("49", "151", 8, (("26201", "Telekom"), ("26202", "Vodafone")), 0.0752, 3),
    ("27", "82", 7, (("65501", "Vodacom"), ("65510", "MTN")), 0.0198, 2),
)
PARTS = ((1, 0.7), (2, 0.2), (3, 0.1))  # parts of a send's text
MESSAGES_SHARE = 0.2  # of sends through the Messages API
VIA_SHARES = ((QUERY, 0.6), (FORM, 0.2), ("json", 0.2))  # how the account gets its receipts
UNKNOWN_SHARE = 0.04  # of recipients not failing whose carrier never says
# (final status, err-code, permanent, weight): `permanent` is the simulator's own word that the
# number is bad for good (what `export --suppression` must list), so the truth can prove the
# catalogue (errors.toml) wrong.
FAILURES = (
    ("failed", "3", True, 0.15),  # absent subscriber, permanent
    ("expired", "2", False, 0.20),  # absent subscriber, temporary: expired on the carrier
    ("rejected", "6", False, 0.10),  # anti-spam
    ("failed", "9", True, 0.10),  # illegal number
    ("undelivered", "4", True, 0.10),  # call barred by the user
    ("failed", "7", False, 0.10),  # handset busy
    ("failed", "8", False, 0.10),  # network error
    ("rejected", "14", True, 0.05),  # number blocked by the carrier
    ("failed", "99", False, 0.10),  # general error
)
# The Messages API's refusals (developer.vonage.com/api-errors/messages): (status, code, text,
# permanent, weight).
MESSAGE_FAILURES = (
    (
        "rejected",
        "1050",
        "Number barred - The number you are trying to submit to is blacklisted and may not "
        "receive messages.",
        True,
        0.3,
    ),
    ("rejected", "1120", "Illegal Sender Address - rejected", False, 0.2),
    ("rejected", "1160", "Non White-listed Destination", False, 0.2),
    ("undeliverable", "1100", "Communication Failed", False, 0.3),
)


def _hex(planner: SimPlanner, bits: int) -> str:
    return f"{planner.rng.getrandbits(bits):0{bits // 4}X}"


def _scts(planner: SimPlanner, at: float) -> str:
    return from_us(_us(planner, at)).astimezone(UTC).strftime("%y%m%d%H%M")


def _pushed(planner: SimPlanner, at: float) -> str:
    return from_us(_us(planner, at)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _us(planner: SimPlanner, at: float) -> int:
    """A simulated time in µs, read back from the planner's own stamp (its compressed clock)."""
    return to_us(datetime.fromisoformat(planner.stamp(at).replace("Z", "+00:00")))


def _recipients(planner: SimPlanner) -> list[tuple[str, str, str, float]]:
    """(msisdn, network code, network name, price) of each recipient, all different."""
    taken: set[str] = set()
    out = []
    weights = [row[-1] for row in COUNTRIES]
    while len(out) < planner.recipients:
        cc, prefix, digits, networks, price, _ = planner.rng.choices(COUNTRIES, weights)[0]
        number = f"{cc}{prefix}{planner.rng.randrange(10**digits):0{digits}d}"
        network, name = planner.rng.choice(networks)
        if number not in taken:
            taken.add(number)
            out.append((number, network, name, price))
    return out


def plan_message(planner: SimPlanner, start: float) -> None:
    rng = planner.rng
    sender = rng.choice(SENDERS)
    client_ref = f"cmp-{_hex(planner, 32).lower()}"
    if rng.random() < MESSAGES_SHARE:
        channel = "whatsapp" if rng.random() < 0.15 else "sms"
        for recipient in _recipients(planner):
            _plan_messages_api(planner, start, sender, client_ref, channel, recipient)
        return
    parts = planner.pick(PARTS)[0]
    via = planner.pick(VIA_SHARES)[0]
    for recipient in _recipients(planner):
        failing = rng.random() < planner.fail_rate
        unknown = not failing and rng.random() < UNKNOWN_SHARE
        failure = planner.pick(FAILURES)
        for _ in range(parts):
            _plan_part(
                planner, start, sender, client_ref, via, recipient, failing, unknown, failure
            )


def _plan_part(
    planner: SimPlanner,
    start: float,
    sender: str,
    client_ref: str,
    via: str,
    recipient: tuple[str, str, str, float],
    failing: bool,
    unknown: bool,
    failure: tuple[Any, ...],
) -> None:
    rng = planner.rng
    msisdn, network, network_name, price = recipient
    message_id = _hex(planner, 64)
    base: dict[str, Any] = {
        "msisdn": msisdn,
        "to": sender,
        "network-code": network,
        "messageId": message_id,
        "price": f"{price:.8f}",
        "api-key": API_KEY,
        "client-ref": client_ref,
        "via": via,
    }
    created = t = start + rng.uniform(0.05, 1.0)
    marks: list[tuple[int, float, str]] = []
    statuses: list[str] = []
    step = rng.random()
    if step < 0.65:  # an intermediate receipt: the carrier took it, or holds it
        middle = "accepted" if step < 0.55 else "buffered"
        t += rng.uniform(0.5, 3.0)
        marks.append((_receipt(planner, t, middle, "0", base), t, "sent"))
        statuses.append(middle)
    t += planner.handset_delay(1.1)
    fields: dict[str, Any] = {
        "api": "sms",
        "account": API_KEY,
        "from": sender,
        "client_ref": client_ref,
        "network": network,
        "network_name": network_name,
        "price": price,
        "currency": "EUR",
    }
    if failing:
        final, code, permanent, _ = failure
        marks.append((_receipt(planner, t, final, code, base), t, "failed"))
        how = ("vonage", message_id, msisdn, "failed", code, network, permanent)
    elif unknown:
        final = "unknown"
        marks.append((_receipt(planner, t, final, "1", base), t, "unconfirmed"))
        how = ("vonage", message_id, msisdn, "unconfirmed", None, network, False)
    else:
        final = "delivered"
        marks.append((_receipt(planner, t, final, "0", base), t, "delivered"))
        how = ("vonage", message_id, msisdn, "delivered", None, network, False)
    statuses.append(final)
    fields.update(final_status=final, statuses=tuple(statuses))
    planner.close(how, marks, created, 1, fields)


def _receipt(planner: SimPlanner, at: float, status: str, code: str, base: dict[str, Any]) -> int:
    """One receipt, its fields in the order Vonage's docs list them."""
    body: dict[str, Any] = {
        "msisdn": base["msisdn"],
        "to": base["to"],
        "network-code": base["network-code"],
        "messageId": base["messageId"],
        "price": base["price"],
        "status": status,
        "scts": _scts(planner, at),
        "err-code": code,
        "api-key": base["api-key"],
        "client-ref": base["client-ref"],
        "message-timestamp": _pushed(planner, at),
    }
    if base["via"] != "json":
        body[VIA] = base["via"]
    return planner.emit(at, "vonage", body, f"{status} {base['msisdn']}")


def _plan_messages_api(
    planner: SimPlanner,
    start: float,
    sender: str,
    client_ref: str,
    channel: str,
    recipient: tuple[str, str, str, float],
) -> None:
    rng = planner.rng
    msisdn, network, network_name, price = recipient
    uuid = planner.uuid4()
    base = {"message_uuid": uuid, "to": msisdn, "from": sender, "client_ref": client_ref}
    created = t = start + rng.uniform(0.05, 1.0)
    failing = rng.random() < planner.fail_rate
    status, code, text, permanent, _ = planner.pick(MESSAGE_FAILURES)
    fields: dict[str, Any] = {
        "api": "messages",
        "account": API_KEY,
        "from": sender,
        "client_ref": client_ref,
        "channel": channel,
        "network": network,
        "network_name": network_name,
        "price": price,
        "currency": "EUR",
    }
    marks: list[tuple[int, float, str]] = []
    if failing:  # refused before any provider took it: one callback
        t += rng.uniform(0.1, 1.0)
        error = {
            "type": f"https://developer.nexmo.com/api-errors/messages-olympus#{code}",
            "title": int(code),
            "detail": text,
            "instance": planner.uuid4(),
        }
        marks.append((_status(planner, t, status, base, channel, error=error), t, "failed"))
        fields.update(final_status=status, statuses=(status,), error_message=text)
        how = ("vonage", uuid, msisdn, "failed", code, None, permanent)
        planner.close(how, marks, created, 1, fields)
        return
    t += rng.uniform(0.2, 1.5)
    usage = {"currency": "EUR", "price": f"{price:.4f}"}
    sms = channel == "sms"
    marks.append(
        (_status(planner, t, "submitted", base, channel, network, sms and usage), t, "sent")
    )
    statuses = ["submitted"]
    t += planner.handset_delay(1.0)
    marks.append(
        (
            _status(planner, t, "delivered", base, channel, network, not sms and usage),
            t,
            "delivered",
        )
    )
    statuses.append("delivered")
    if not sms and rng.random() < 0.5:
        t += rng.uniform(2.0, 20.0)
        marks.append((_status(planner, t, "read", base, channel, network), t, "delivered"))
        statuses.append("read")
    fields.update(final_status=statuses[-1], statuses=tuple(statuses))
    how = ("vonage", uuid, msisdn, "delivered", None, network if sms else None, False)
    planner.close(how, marks, created, 1, fields)


def _status(
    planner: SimPlanner,
    at: float,
    status: str,
    base: dict[str, str],
    channel: str,
    network: str | None = None,
    usage: dict[str, str] | bool = False,
    error: dict[str, Any] | None = None,
) -> int:
    """One Messages API status callback, its fields in the order Vonage's examples give them."""
    stamp = planner.stamp(at)
    body: dict[str, Any] = {
        "message_uuid": base["message_uuid"],
        "to": base["to"],
        "from": base["from"],
        # ISO 8601 with milliseconds, as the Messages API writes it.
        "timestamp": stamp[:19] + f".{_us(planner, at) // 1000 % 1000:03d}Z",
        "status": status,
    }
    if isinstance(usage, dict):
        body["usage"] = usage
    if error is not None:
        body["error"] = error
    body["client_ref"] = base["client_ref"]
    body["channel"] = channel
    if network is not None and channel == "sms":
        body["destination"] = {"network_code": network}
    return planner.emit(at, "vonage", body, f"{status} {base['to']}")
