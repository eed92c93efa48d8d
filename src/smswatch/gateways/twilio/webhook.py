"""Twilio: its message status callbacks, one per status change of one message to one recipient,
posted as an HTML form and signed over the URL Twilio called.

Body (`application/x-www-form-urlencoded`): MessageSid, MessageStatus, AccountSid, From, To,
and as they apply ErrorCode, ErrorMessage, MessagingServiceSid, RawDlrDoneDate (the carrier's
delivery-receipt time, YYMMDDhhmm UTC, on delivered and undelivered), plus the legacy SmsSid /
SmsStatus twins and ApiVersion. A form that carries neither MessageStatus nor SmsStatus, or no
AccountSid, is no status callback: 400, quarantined.

Signature (`X-Twilio-Signature`, twilio-python's `RequestValidator`): base64 of HMAC-SHA1 keyed
with the account's auth token over the URL Twilio called followed by each POST field sorted by
name as name + value (a name sent more than once: each distinct value, sorted). Twilio is not
consistent about the port in what it signs, so, like the SDK, a signature over the URL without
its port or with it (443 for https, 80 for http when none is written) is accepted. The URL is
`--public-url` + the request's path and query when set, else the listener's scheme + Host +
path and query (`Request.url`).

Stored: the event's payload is the form as a JSON object (fields in order; a repeated field as
the list of its values), because every reader of payloads (exports, screens, campaigns) reads
JSON; a forward or a replay posts it as a form again (`form_body`).

Mapping onto our states: accepted, scheduled, queued: queued; sending: processing; sent and
partially_delivered (some segments arrived, more may): sent; delivered and read: delivered;
undelivered, failed and canceled: failed, with Twilio's ErrorCode. Any other status (received,
a status of tomorrow) is stored as `unknown` and acknowledged, never dropped.

Identity: message_id = MessageSid (Twilio makes one message per recipient), recipient = To.
MessagingServiceSid, when the message was sent through a messaging service, groups the messages
into one campaign (campaigns/rule.py).
Twilio sends no event id, so the dedupe key is `twilio|MessageSid|MessageStatus`, with
`|RawDlrDoneDate` when present (a second receipt of another time is another event); with no
MessageSid, the body's digest. Event time: RawDlrDoneDate when present and readable (the receive
time if that falls within RawDlrDoneDate's minute: the same time, to the microsecond), else the
receive time with `time_estimated` (the callbacks carry no other time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

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
    signature_header,
)
from smswatch.timefmt import to_us

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_STATUS = 128
_MINUTE = 60_000_000  # µs: RawDlrDoneDate's precision

STATES = {
    "accepted": State.QUEUED,
    "scheduled": State.QUEUED,
    "queued": State.QUEUED,
    "sending": State.PROCESSING,
    "sent": State.SENT,
    "partially_delivered": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "undelivered": State.FAILED,
    "failed": State.FAILED,
    "canceled": State.FAILED,
}


def state_of(status: str | None) -> State:
    """Our state for one of Twilio's statuses (the callbacks' and the Messages resource's)."""
    return mapped_state(STATES, status)


def signed_fields(fields: Iterable[tuple[str, str]]) -> str:
    """What Twilio signs after the URL: each field sorted by name as name + value; the distinct
    values of a name sent more than once, sorted (as twilio-python's compute_signature)."""
    if not isinstance(fields, list):
        fields = list(fields)
    if len({name for name, _ in fields}) == len(fields):  # each name once: Twilio's callbacks
        return "".join([name + value for name, value in sorted(fields)])
    by_name: dict[str, set[str]] = {}
    for name, value in fields:
        by_name.setdefault(name, set()).add(value)
    parts = []
    for name in sorted(by_name):
        for value in sorted(by_name[name]):
            parts.append(name)
            parts.append(value)
    return "".join(parts)


def _mac(keyed: hmac.HMAC, url: str, tail: str) -> bytes:
    """base64 HMAC-SHA1 of URL + fields, from a copy of the keyed state (the key's setup is
    done once per token, not once per request)."""
    mac = keyed.copy()
    # surrogateescape: a URL made from a target that was not UTF-8 signs its own bytes.
    mac.update((url + tail).encode("utf-8", "surrogateescape"))
    return base64.b64encode(mac.digest())


def _keyed(token: str | bytes) -> hmac.HMAC:
    return hmac.new(token.encode() if isinstance(token, str) else token, digestmod=hashlib.sha1)


def sign(token: str, url: str, fields: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature of a post of `fields` to `url` (the simulator's, the forwarder's)."""
    return _mac(_keyed(token), url, signed_fields(fields)).decode("ascii")


# A listener is called at one URL or a few: each one's two forms are worked out once.
@lru_cache(maxsize=256)
def url_variants(url: str) -> tuple[str, str]:
    """The URL as it is, then with its port taken off or (the scheme's default) added: the two
    forms twilio-python's validator accepts, since Twilio signs either."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number: no variant to make, the signature fails as it is
        return url, url
    netloc = parts.netloc
    if port is not None:
        bare = netloc[: netloc.rfind(":")]
        return urlunsplit(parts), urlunsplit(parts._replace(netloc=bare))
    default = 443 if parts.scheme.lower() == "https" else 80
    with_port = urlunsplit(parts._replace(netloc=f"{netloc}:{default}"))
    return urlunsplit(parts), with_port


# The carrier's receipt times are to the minute: a send's callbacks share a few of them.
@lru_cache(maxsize=1024)
def dlr_time(value: str | None) -> int | None:
    """RawDlrDoneDate (YYMMDDhhmm, UTC) in microseconds; None if absent or unreadable."""
    if not value or len(value) != 10 or not (value.isascii() and value.isdigit()):
        return None
    yy = int(value[:2])
    # strptime's %y, by fields: it was a tenth of a callback's CPU.
    year = yy + (1900 if yy >= 69 else 2000)
    try:
        at = datetime(year, int(value[2:4]), int(value[4:6]), int(value[6:8]), int(value[8:]))
    except ValueError:  # a month 13, an hour 25
        return None
    return to_us(at.replace(tzinfo=UTC))


def _field(fields: Mapping[str, str], *names: str) -> str | None:
    """The first of `names` the form has, bounded (the whole value stays in the payload)."""
    for name in names:
        value = fields.get(name)
        if value is not None:
            return value[:MAX_FIELD]
    return None


class Twilio:
    name: ClassVar[str] = "twilio"
    title: ClassVar[str] = "Twilio"
    body_format: ClassVar[BodyFormat] = FORM
    checks_url: ClassVar[bool] = True  # it signs the URL

    def __init__(self, auth_token: str | None = None) -> None:
        self._key = _keyed(auth_token) if auth_token else None
        # The form of the body check_auth just parsed, for parse to reuse: the listener calls
        # one right after the other for the same bytes, on one thread.
        self._parsed: tuple[bytes, list[tuple[str, str]]] | None = None

    def auth_mode(self) -> AuthMode:
        if self._key is not None:
            return AuthMode(True, "HMAC-SHA1 signature over the URL")
        return AuthMode(False, "no auth token configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._key is None:
            return
        given = signature_header(headers, SIGNATURE_HEADER)
        fields = parse_form(body)
        signed = url or ""
        mine = given.strip().encode("ascii", "replace")
        # The form the request was made to first; the other (port added or taken off) only if
        # that fails. Each comparison is constant-time; which form matched is no secret.
        tail = signed_fields(fields)
        if not any(
            hmac.compare_digest(mine, _mac(self._key, u, tail)) for u in url_variants(signed)
        ):
            shown = signed if len(signed) <= 200 else signed[:199] + "…"
            raise Rejected(
                401,
                "bad_signature",
                f"{SIGNATURE_HEADER} does not match the form signed over {shown}: is the auth "
                "token right, and is that the URL Twilio calls (behind a tunnel or proxy, set "
                "--public-url)?",
            )
        self._parsed = (body, fields)  # verified: parse need not read the form again

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return SIGNATURE_HEADER in headers

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return False  # Twilio's status callbacks are forms, never JSON

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        parsed, self._parsed = self._parsed, None
        pairs = parsed[1] if parsed is not None and parsed[0] is body else parse_form(body)
        fields: dict[str, str] = {}
        for name, value in pairs:
            fields.setdefault(name, value)  # a repeated field: its first value
        status = _field(fields, "MessageStatus", "SmsStatus")
        if status is None or "AccountSid" not in fields:
            raise malformed(
                "body is a form but not a Twilio status callback (it needs MessageStatus and "
                "AccountSid)",
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
        message_id = absent_if_blank(_field(fields, "MessageSid", "SmsSid"))
        recipient = absent_if_blank(_field(fields, "To"))
        done = absent_if_blank(_field(fields, "RawDlrDoneDate"))
        if message_id is not None:
            key = f"twilio|{message_id}|{status}" + (f"|{done}" if done else "")
        else:
            key = f"twilio|sha256:{body_digest(body)}"
        occurred = dlr_time(done)
        if occurred is not None and occurred <= received_at < occurred + _MINUTE:
            # The receipt's time is to the minute; a callback received within that minute is
            # timed by its arrival, or a delivery would seem to come before its `sent`.
            occurred = received_at
        channel = "whatsapp" if recipient and recipient.startswith("whatsapp:") else "sms"
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=status,
            state=state_of(status),
            message_id=message_id,
            recipient=recipient,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            time_estimated=occurred is None,
            payload=form_payload(pairs),
            error_code=absent_if_blank(_field(fields, "ErrorCode")),
            error_message=absent_if_blank(_field(fields, "ErrorMessage")),
            message_info=_message_info(
                channel, absent_if_blank(_field(fields, "MessagingServiceSid"))
            ),
        )


# One for each messaging service: the same value serves each of its callbacks, and the log
# writes the JSON of each distinct one once (store/queries/rows.py).
@lru_cache(maxsize=256)
def _message_info(channel: str, group: str | None) -> MessageInfo:
    return MessageInfo(total_recipients=1, channel=channel, group=group)
