"""Plivo: its message status callbacks, one per status change of one message to one recipient,
posted as an HTML form (the message's `url`, method POST) and signed over the URL Plivo called.

Body (`application/x-www-form-urlencoded`, docs "Message Status Callbacks"): MessageUUID, To,
From, Type (sms, mms, whatsapp), Status, Units, TotalRate, TotalAmount, MCC, MNC, ErrorCode (on
failed and undelivered), ParentMessageUUID and PartInfo (reserved), Sequence, MessageTime,
QueuedTime, SentTime, DeliveryReportTime (`YYYY-mm-dd HH:MM:SS.ffffff`, UTC), PowerpackUUID
(empty unless a Powerpack sent it), requester_ip, and WhatsApp's Conversation* fields. A form
that carries no Status or no MessageUUID is no status callback: 400, quarantined.

Signature, as plivo-python's `plivo.utils.signature_v3.validate_v3_signature` checks it (POST):
`X-Plivo-Signature-V3` is base64 of HMAC-SHA256 keyed with the auth token over

    scheme://host[:port]/path  "?"  [sorted query as k=v&k=v  "."]  POST fields  "."  nonce

where the POST fields are each field sorted by name as name + value (a name sent more than once:
each of its values, sorted), the query is the URL's own, decoded and sorted, and the nonce is
`X-Plivo-Signature-V3-Nonce` (plivo-java's computeSignatureV3 builds the same text; plivo-go's
older helper joins the fields with `.` where the others write `?`, and is not followed). The
query's values are read as UTF-8 (plivo-python reads a non-ASCII one byte by byte, as Latin-1:
a callback URL with such a query would not verify the same). The header may hold several
signatures, comma-separated: as in every Plivo SDK, any one matching is enough. The older
`X-Plivo-Signature-V2` (+ `-V2-Nonce`), base64 HMAC-SHA256 over scheme://host/path + nonce, is
accepted when no V3 header came; it covers no field of the body, so a team that can should
keep V3. The URL is `--public-url` + the request's
path and query when set, else the listener's scheme + Host + path and query (`Request.url`).
The nonce is random, not a time: a replayed callback is caught by its dedupe key, not refused.

Stored: the event's payload is the form as a JSON object (fields in order; a repeated field as
the list of its values); a forward or a replay posts it as a form again (`form_body`).

Mapping onto our states: queued: queued; sent: sent; delivered and read (WhatsApp): delivered;
undelivered, failed and rejected: failed, with Plivo's ErrorCode. Any other status (received,
inbound; a status of tomorrow) is stored as `unknown` and acknowledged, never dropped.

Identity: message_id = MessageUUID (Plivo makes one message per destination), recipient = To.
The campaign group is PowerpackUUID when the message went through a Powerpack, else the sender
(From): a bulk send from one number groups as one. Cost: TotalAmount (TotalRate x Units), in USD
(Plivo bills in US dollars; the callback names no currency). Carrier: `MCC-MNC` of the number.

Event time: the latest of the times the callback carries (DeliveryReportTime on delivered and
undelivered, SentTime on sent, QueuedTime on queued), else the receive time with
`time_estimated`. Sequence orders callbacks that arrive together: the time is kept to the
millisecond and Sequence (bounded to 0..999) fills its microseconds, so two callbacks of one
message within the same millisecond (a failed whose last time is the queued one's, a pair
retried at once) sort as Plivo generated them, and of two final outcomes the later one wins.
Dedupe key: `plivo|MessageUUID|Status|Sequence` (a retry carries the callback's own Sequence),
with the event time in place of Sequence when there is none; with no MessageUUID, the body's
digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    FORM,
    MAX_FIELD,
    AuthMode,
    BodyFormat,
    absent_if_blank,
    body_digest,
    derived_id,
    form_payload,
    malformed,
    mapped_state,
    parse_form,
)
from smswatch.timefmt import to_us

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
V2_HEADER = "X-Plivo-Signature-V2"
V2_NONCE_HEADER = "X-Plivo-Signature-V2-Nonce"
FORM_TYPE = "application/x-www-form-urlencoded"
CURRENCY = "USD"
MAX_STATUS = 128
MAX_SEQUENCE = 999  # what fits in the microseconds of a millisecond
# The times a callback carries, in the order a message passes them.
TIME_FIELDS = ("MessageTime", "QueuedTime", "SentTime", "DeliveryReportTime")
# Plivo's "no error" (its Message API writes 000 on a delivered message).
NO_ERROR = frozenset(("", "0", "000"))

STATES = {
    "queued": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "undelivered": State.FAILED,
    "failed": State.FAILED,
    "rejected": State.FAILED,
}


def state_of(status: str | None) -> State:
    """Our state for one of Plivo's statuses (the callbacks' Status, the API's message_state)."""
    return mapped_state(STATES, status)


def error_of(code: str | None) -> str | None:
    """Plivo's ErrorCode, None for its "no error"."""
    if code is None or code.strip() in NO_ERROR:
        return None
    return code.strip()


def signed_fields(fields: Iterable[tuple[str, str]]) -> str:
    """What V3 signs of the POST fields: each sorted by name as name + value; a name sent more
    than once, each of its values sorted (plivo-python's get_sorted_params_string)."""
    by_name: dict[str, list[str]] = {}
    for name, value in fields:
        by_name.setdefault(name, []).append(value)
    return "".join(
        "".join(name + value for value in sorted(values))
        for name, values in sorted(by_name.items())
    )


@lru_cache(maxsize=256)
def _url_parts(url: str) -> tuple[str, str]:
    """(scheme://host/path, the query sorted as plivo-python's get_sorted_query_string writes
    it): what V3 signs of the URL, worked out once per URL a listener is called at."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    by_name: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        by_name.setdefault(name, []).append(value)
    query = "&".join(
        "&".join(f"{name}={value}" for value in sorted(values))
        for name, values in sorted(by_name.items())
    )
    return base, query


def v3_base(url: str, fields: Iterable[tuple[str, str]]) -> str:
    """The text V3 signs before `.nonce`, for a POST of `fields` to `url`
    (plivo-python's construct_post_url)."""
    base, query = _url_parts(url)
    tail = signed_fields(fields)
    if query:
        return f"{base}?{query}.{tail}" if tail else f"{base}?{query}{tail}"
    return f"{base}?{tail}" if tail else base


def _mac(token: bytes, text: str) -> bytes:
    # surrogateescape: a URL made from a target that was not UTF-8 signs its own bytes.
    digest = hmac.new(token, text.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return base64.b64encode(digest)


def sign(token: str, url: str, fields: Iterable[tuple[str, str]], nonce: str) -> str:
    """X-Plivo-Signature-V3 of a POST of `fields` to `url` with `nonce` (the simulator's, the
    forwarder's)."""
    return _mac(token.encode(), f"{v3_base(url, fields)}.{nonce}").decode("ascii")


def sign_v2(token: str, url: str, nonce: str) -> str:
    """X-Plivo-Signature-V2: over scheme://host/path + nonce, no query, no field."""
    return _mac(token.encode(), _url_parts(url)[0] + nonce).decode("ascii")


# Plivo writes its times as `YYYY-mm-dd HH:MM:SS.ffffff` in UTC; its API adds the zone.
@lru_cache(maxsize=1024)
def plivo_time(value: str | None) -> int | None:
    """One of Plivo's times in microseconds; None if absent or unreadable."""
    if not value or len(value) > 40:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        return to_us(at)
    except (OverflowError, ValueError):
        return None


def sequence_of(value: str | None) -> int | None:
    """Sequence as a number, None if it is none."""
    if value is None or not value.isascii() or not value.strip().isdigit():
        return None
    return int(value.strip())


def ordered_time(at: int, sequence: int | None) -> int:
    """An event time to the millisecond, Sequence in its microseconds (see the docstring)."""
    if sequence is None:
        return at
    return at // 1000 * 1000 + min(sequence, MAX_SEQUENCE)


def _field(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    return None if value is None else value[:MAX_FIELD]


def _amount(value: str | None) -> float | None:
    if not value:
        return None
    try:
        amount = float(value)
    except ValueError:
        return None
    return amount if amount == amount and abs(amount) < 1e12 else None  # no NaN, no inf


class Plivo:
    name: ClassVar[str] = "plivo"
    title: ClassVar[str] = "Plivo"
    body_format: ClassVar[BodyFormat] = FORM
    checks_url: ClassVar[bool] = True  # it signs the URL

    def __init__(self, auth_token: str | None = None) -> None:
        self._token = auth_token.encode() if auth_token else None
        # The form of the body check_auth just parsed, for parse to reuse: the listener calls
        # one right after the other for the same bytes, on one thread.
        self._parsed: tuple[bytes, list[tuple[str, str]]] | None = None

    def auth_mode(self) -> AuthMode:
        if self._token is not None:
            return AuthMode(True, "HMAC-SHA256 signature (V3) over the URL")
        return AuthMode(False, "no auth token configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._token is None:
            return
        signed = url or ""
        given = headers.get(SIGNATURE_HEADER)
        if given is not None:
            nonce = headers.get(NONCE_HEADER)
            if nonce is None:
                raise Rejected(401, "missing_signature", f"missing {NONCE_HEADER} header")
            fields = parse_form(body)
            mine = _mac(self._token, f"{v3_base(signed, fields)}.{nonce}")
            # Each one compared in constant time; which one matched is no secret.
            ok = [
                hmac.compare_digest(s.strip().encode("ascii", "replace"), mine)
                for s in given.split(",")
            ]
            if not any(ok):
                raise self._bad(SIGNATURE_HEADER, signed)
            self._parsed = (body, fields)  # verified: parse need not read the form again
            return
        given = headers.get(V2_HEADER)
        if given is None:
            raise Rejected(401, "missing_signature", f"missing {SIGNATURE_HEADER} header")
        nonce = headers.get(V2_NONCE_HEADER)
        if nonce is None:
            raise Rejected(401, "missing_signature", f"missing {V2_NONCE_HEADER} header")
        mine = _mac(self._token, _url_parts(signed)[0] + nonce)
        if not hmac.compare_digest(given.strip().encode("ascii", "replace"), mine):
            raise self._bad(V2_HEADER, signed)

    @staticmethod
    def _bad(header: str, signed: str) -> Rejected:
        shown = signed if len(signed) <= 200 else signed[:199] + "…"
        return Rejected(
            401,
            "bad_signature",
            f"{header} does not match the form signed over {shown}: is the auth token right, "
            "and is that the URL Plivo calls (behind a tunnel or proxy, set --public-url)?",
        )

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return SIGNATURE_HEADER in headers or V2_HEADER in headers

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return False  # Plivo's status callbacks are forms, never JSON

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        parsed, self._parsed = self._parsed, None
        pairs = parsed[1] if parsed is not None and parsed[0] is body else parse_form(body)
        fields: dict[str, str] = {}
        for name, value in pairs:
            fields.setdefault(name, value)  # a repeated field: its first value
        status = _field(fields, "Status")
        if status is None or "MessageUUID" not in fields:
            raise malformed(
                "body is a form but not a Plivo status callback (it needs Status and MessageUUID)",
                "unknown_envelope",
            )
        return [self._normalize(fields, status[:MAX_STATUS], pairs, body, received_at)]

    def _normalize(
        self,
        fields: dict[str, str],
        status: str,
        pairs: list[tuple[str, str]],
        body: bytes,
        received_at: int,
    ) -> Event:
        message_id = absent_if_blank(_field(fields, "MessageUUID"))
        recipient = absent_if_blank(_field(fields, "To"))
        sequence = sequence_of(_field(fields, "Sequence"))
        times = [t for t in (plivo_time(_field(fields, n)) for n in TIME_FIELDS) if t is not None]
        carried = max(times) if times else None
        if message_id is None:
            key = f"plivo|sha256:{body_digest(body)}"
        elif sequence is not None:
            key = f"plivo|{message_id}|{status}|{sequence}"
        else:
            key = f"plivo|{message_id}|{status}|{carried if carried is not None else ''}"
        occurred = ordered_time(carried if carried is not None else received_at, sequence)
        mcc, mnc = _field(fields, "MCC"), _field(fields, "MNC")
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=status,
            state=state_of(status),
            message_id=message_id,
            recipient=recipient,
            occurred_at=occurred,
            received_at=received_at,
            time_estimated=carried is None,
            payload=form_payload(pairs),
            carrier=f"{mcc}-{mnc}" if mcc and mnc else None,
            error_code=error_of(_field(fields, "ErrorCode")),
            message_info=_message_info(
                absent_if_blank(_field(fields, "Type")) or "sms",
                absent_if_blank(_field(fields, "PowerpackUUID"))
                or absent_if_blank(_field(fields, "From")),
                _amount(_field(fields, "TotalAmount")),
            ),
        )


# One for each sender and cost: the same value serves each of a send's callbacks, and the log
# writes the JSON of each distinct one once (store/queries/rows.py).
@lru_cache(maxsize=256)
def _message_info(channel: str, group: str | None, cost: float | None) -> MessageInfo:
    return MessageInfo(
        total_recipients=1,
        total_cost=cost,
        currency=CURRENCY if cost is not None else None,
        channel=channel[:32],
        group=group,
    )
