"""Sinch (the XMS SMS API): its delivery-report callbacks, JSON, checked by HTTP Basic auth (the
callback URL's user and password) or by Sinch's HMAC signature.

Bodies (sinch-sdk-python `RecipientDeliveryReport`, `BatchDeliveryReport`; sinch-sdk-java's
`SinchEventsService` test resources):

- `recipient_delivery_report_sms` (and `_mms`), one recipient's status, for a batch sent with
  `delivery_report` `per_recipient` (every status) or `per_recipient_final` (the final one):
  `batch_id`, `recipient`, `status`, `code`, `at` (when Sinch made the report), `operator_status_at`
  (the SMSC's receipt time), `operator`, `client_reference`, `applied_originator`, `encoding`,
  `number_of_message_parts`.
- `delivery_report_sms` (and `_mms`), the batch's, for `summary` or `full`: `batch_id`,
  `client_reference`, `total_message_count`, `statuses[]` {`status`, `code`, `count`,
  `recipients[]` (`full` only)}.

Mapping onto our states (Sinch's "Delivery report statuses", in any case): Queued: queued;
Dispatched (the SMSC accepted it): sent; Delivered: delivered; Aborted, Cancelled, Rejected,
Deleted, Failed, Expired: failed, with `code` as the error code (or the status itself when the
code says nothing: 0, or the Queued/Dispatched codes 400/401); Unknown (the SMSC had it, no
receipt came or none could be read): unconfirmed. Anything else: `unknown`.

Identity: message_id = `batch_id` (a batch is one send), recipient = `recipient`, the carrier is
`operator` (informational), `client_reference` groups batches into a campaign
(`MessageInfo.group`). Event time: `at`, else the receive time, marked estimated.

A batch report is stored as: one event per recipient it lists (a `full` report; its payload is
that recipient's own report, without `at`), and always one message-level event (its payload the
report as received) carrying the per-status counts (`MessageInfo.gateway_counts`: delivered,
failed, not final yet; Unknown is in none of the three), which the message screen shows beside
the webhooks' own counts and `missing` is computed from, as for a polled Lisoloo status. So a
`summary` report, which names no recipient, is kept as the gateway's counts of that batch. An
entry of `statuses[]` that is not one is quarantined on its own and the others are stored.

Dedupe keys, from Sinch's own fields (Sinch sends no event id):
- a recipient report: `sinch|batch_id|recipient|status|code|at` (a retry of the callback is the
  same report; Dispatched and Delivered are two);
- a recipient listed in a batch report: `sinch|batch_id|recipient|status|code|` (no `at`), which
  its payload, the recipient's own report without `at`, gives again when it is forwarded to
  another smswatch or replayed;
- a batch report's counts: `sinch|batch_id|counts|` + the SHA-256 of its (status, code, count)s;
- anything else: `sinch|sha256:` + the body's digest.

Signature (sinch-sdk-python `validate_sinch_event_signature_with_nonce`, sinch-sdk-java
`HmacAuthenticationValidation`): `x-sinch-webhook-signature` is the base64 of HMAC-SHA256 with
the secret over the body, `.`, the `x-sinch-webhook-signature-nonce` header, `.`, the
`x-sinch-webhook-signature-timestamp` header (Unix seconds); `x-sinch-webhook-signature-algorithm`
names it (`HmacSHA256`, which Java's validator requires and Python's ignores: taken when absent,
refused when it names another). The timestamp must be within FRESH_S of now, either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    JSON,
    AuthMode,
    BasicAuth,
    Batch,
    BodyFormat,
    Identifier,
    Integer,
    RefusedPart,
    Text,
    Time,
    absent_if_blank,
    body_digest,
    derived_id,
    malformed,
    mapped_state,
    parse_object,
)

SIGNATURE_HEADER = "x-sinch-webhook-signature"
NONCE_HEADER = "x-sinch-webhook-signature-nonce"
TIMESTAMP_HEADER = "x-sinch-webhook-signature-timestamp"
ALGORITHM_HEADER = "x-sinch-webhook-signature-algorithm"
ALGORITHM = "HmacSHA256"
# How far a signature's timestamp may be from now, either way (seconds), as for Telnyx and
# Vonage. Sinch retries a callback for hours; a retry that kept its first timestamp would be
# refused here after five minutes (see docs/gateways.md).
FRESH_S = 300
JSON_TYPE = "application/json"

RECIPIENT_TYPES = frozenset(("recipient_delivery_report_sms", "recipient_delivery_report_mms"))
BATCH_TYPES = frozenset(("delivery_report_sms", "delivery_report_mms"))
# A batch report lists a status per code: a post of more entries than this is not Sinch's.
MAX_STATUSES = 1000

STATUSES = {
    "queued": State.QUEUED,
    "dispatched": State.SENT,
    "delivered": State.DELIVERED,
    "aborted": State.FAILED,
    "cancelled": State.FAILED,
    "rejected": State.FAILED,
    "deleted": State.FAILED,
    "failed": State.FAILED,
    "expired": State.FAILED,
    "unknown": State.UNCONFIRMED,
}
# Codes that name no error: 0, and Queued's and Dispatched's own (400, 401).
NO_ERROR_CODES = frozenset((0, 400, 401))


def state_of(status: str | None) -> State:
    """Our state for a Sinch delivery status (its webhooks' and its API's)."""
    return mapped_state(STATUSES, status)


def error_code(status: str | None, code: int | None, state: State) -> str | None:
    """A failure's code as errors.toml names it: Sinch's `code`, or the status itself when the
    code names no error."""
    if state is not State.FAILED:
        return None
    if code is not None and code not in NO_ERROR_CODES:
        return str(code)
    return absent_if_blank(status.strip()) if status else None


def counts_of(entries: list[tuple[str | None, int | None, int]]) -> tuple[int, int, int]:
    """(delivered, failed, not final yet) from a batch report's (status, code, count)s."""
    delivered = failed = pending = 0
    for status, _, count in entries:
        state = state_of(status)
        if state is State.DELIVERED:
            delivered += count
        elif state is State.FAILED:
            failed += count
        elif state in (State.QUEUED, State.SENT):
            pending += count
    return delivered, failed, pending


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class RecipientReport(_Model):
    """One recipient's report. Lenient inside: a field of a wrong type is None."""

    type: str
    batch_id: Identifier = None
    recipient: Identifier = None
    status: Text = None
    code: Integer = None
    at: Time = None
    operator_status_at: Time = None
    operator: Text = None
    client_reference: Text = None
    number_of_message_parts: Integer = None


class StatusEntry(_Model):
    status: Text = None
    code: Integer = None
    count: Integer = None
    recipients: list[Identifier] | None = None


class BatchReport(_Model):
    type: str
    batch_id: Identifier = None
    client_reference: Text = None
    total_message_count: Integer = None
    statuses: list[Any]


RECIPIENT_REPORT: TypeAdapter[RecipientReport] = TypeAdapter(RecipientReport)
BATCH_REPORT: TypeAdapter[BatchReport] = TypeAdapter(BatchReport)
STATUS_ENTRY: TypeAdapter[StatusEntry] = TypeAdapter(StatusEntry)


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"invalid field {where}: {first['msg']}"


def read_entry(item: Any) -> StatusEntry:
    """An entry of a batch report's `statuses[]`; raises ValueError saying why it is none."""
    if not isinstance(item, dict):
        raise ValueError("a status entry is not a JSON object")
    clean = dict(item)
    if "recipients" in clean and not isinstance(clean["recipients"], list):
        clean["recipients"] = None
    try:
        entry = STATUS_ENTRY.validate_python(clean)
    except ValidationError as exc:
        raise ValueError(_first_problem(exc)) from None
    if not entry.status:
        raise ValueError("a status entry has no status")
    if entry.count is None and not entry.recipients:
        raise ValueError("a status entry has neither a count nor recipients")
    return entry


def _json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _info(channel: str, group: str | None, **more: Any) -> MessageInfo:
    return MessageInfo(channel=channel, group=absent_if_blank(group), **more)


def recipient_event(report: RecipientReport, payload: str, received_at: int) -> Event:
    """A recipient report as its recipient's event."""
    state = state_of(report.status)
    word = absent_if_blank(report.status) or "unknown"
    code = report.code
    at = report.at
    # Without `at` (a batch report's recipient, forwarded or replayed as its own report) the
    # key is the batch report's: a recipient's status and code are one fact, however told.
    stamp = "" if at is None else str(at)
    key = (
        f"sinch|{report.batch_id}|{report.recipient}|{word.lower()}|"
        f"{'' if code is None else code}|{stamp}"
    )
    return Event(
        provider=Sinch.name,
        event_id=derived_id(key),
        dedupe_key=key,
        event_type=word,
        state=state,
        message_id=report.batch_id,
        recipient=report.recipient,
        occurred_at=at if at is not None else received_at,
        received_at=received_at,
        payload=payload,
        time_estimated=at is None,
        carrier=absent_if_blank(report.operator),
        error_code=error_code(report.status, code, state),
        error_message=None,
        retryable=None,
        message_info=_info(
            "mms" if report.type.endswith("_mms") else "sms",
            report.client_reference,
            total_messages=report.number_of_message_parts,
        ),
    )


def _narrowed(report: BatchReport, entry: StatusEntry, recipient: str) -> str:
    # What Sinch said of one recipient, as that recipient's report (without the `at` a batch
    # report does not give): forwarded or replayed, it is read as Sinch's own recipient report,
    # with the same dedupe key, and brings no counts of its own that would pass for the batch's.
    own = {
        "batch_id": report.batch_id,
        "client_reference": report.client_reference,
        "code": entry.code,
        "recipient": recipient,
        "status": entry.status,
        "type": "recipient_" + report.type,
    }
    return _json({k: v for k, v in own.items() if v is not None})


def batch_events(
    report: BatchReport, entries: list[StatusEntry], body: str, received_at: int
) -> list[Event]:
    """A batch report's events: one per listed recipient, then the batch's counts (its
    payload the report as received)."""
    batch = report.batch_id
    channel = "mms" if report.type.endswith("_mms") else "sms"
    info = _info(channel, report.client_reference)  # one for the batch's listed recipients
    events: list[Event] = []
    seen: set[str] = set()
    for entry in entries:
        state = state_of(entry.status)
        word = absent_if_blank(entry.status) or "unknown"
        code = "" if entry.code is None else entry.code
        failure = error_code(entry.status, entry.code, state)
        for recipient in entry.recipients or ():
            if recipient is None or recipient in seen:
                continue  # listed twice: the first entry's is kept
            seen.add(recipient)
            key = f"sinch|{batch}|{recipient}|{word.lower()}|{code}|"
            events.append(
                Event(
                    provider=Sinch.name,
                    event_id=derived_id(key),
                    dedupe_key=key,
                    event_type=word,
                    state=state,
                    message_id=batch,
                    recipient=recipient,
                    occurred_at=received_at,
                    received_at=received_at,
                    payload=_narrowed(report, entry, recipient),
                    time_estimated=True,
                    error_code=failure,
                    message_info=info,
                )
            )
    tally = sorted(
        (
            (absent_if_blank(e.status) or "").lower(),
            -1 if e.code is None else e.code,
            e.count if e.count is not None else len(e.recipients or ()),
        )
        for e in entries
    )
    key = f"sinch|{batch}|counts|{body_digest(_json(tally).encode())}"
    counts = counts_of(tally)
    events.append(
        Event(
            provider=Sinch.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=report.type,
            state=State.UNKNOWN,
            message_id=batch,
            recipient=None,
            occurred_at=received_at,
            received_at=received_at,
            payload=body,
            time_estimated=True,
            message_info=_info(
                channel,
                report.client_reference,
                total_recipients=report.total_message_count,
                gateway_counts=counts,
            ),
        )
    )
    return events


def signed_bytes(body: bytes, nonce: str, timestamp: str) -> bytes:
    """What Sinch signs: the body, `.`, the nonce header, `.`, the timestamp header."""
    return b".".join((body, nonce.encode("utf-8"), timestamp.encode("utf-8")))


def signature(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), signed_bytes(body, nonce, timestamp), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def sign(secret: str, body: bytes, now: float) -> dict[str, str]:
    """The headers of a post of `body` signed as Sinch signs one, at `now`, with a fresh nonce:
    the simulator's, the demo's, the forwarder's."""
    nonce = secrets.token_urlsafe(18)
    timestamp = str(int(now))
    return {
        SIGNATURE_HEADER: signature(secret, body, nonce, timestamp),
        NONCE_HEADER: nonce,
        TIMESTAMP_HEADER: timestamp,
        ALGORITHM_HEADER: ALGORITHM,
    }


class Sinch:
    name: ClassVar[str] = "sinch"
    title: ClassVar[str] = "Sinch"
    body_format: ClassVar[BodyFormat] = JSON
    checks_url: ClassVar[bool] = False

    def __init__(
        self,
        basic_auth: tuple[str, str] | None = None,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._basic = BasicAuth(*basic_auth) if basic_auth else None
        self._secret = secret.encode("utf-8") if secret else None
        self.clock = clock

    def auth_mode(self) -> AuthMode:
        ways = []
        if self._secret is not None:
            ways.append("HMAC-SHA256 signature")
        if self._basic is not None:
            ways.append(f"Basic auth (user {self._basic.user})")
        if not ways:
            return AuthMode(False, "no Basic auth or webhook secret configured")
        return AuthMode(True, " or ".join(ways))

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        """Each credential the request carries must be right, and it must carry one that is
        configured: a signature when a secret is set, Basic auth when a pair is."""
        if self._secret is None and self._basic is None:
            return
        signed = headers.get(SIGNATURE_HEADER) is not None
        basic = headers.get("Authorization") is not None
        if signed and self._secret is not None:
            self._check_signature(headers, body)
        if basic and self._basic is not None:
            self._basic.check(headers)
        if (signed and self._secret is not None) or (basic and self._basic is not None):
            return
        if self._secret is not None:
            raise Rejected(401, "missing_signature", f"missing {SIGNATURE_HEADER} header")
        assert self._basic is not None
        self._basic.check(headers)  # raises: no Basic auth

    def _check_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        assert self._secret is not None
        given = headers[SIGNATURE_HEADER]
        nonce = headers.get(NONCE_HEADER)
        stamp = headers.get(TIMESTAMP_HEADER)
        if nonce is None or stamp is None:
            missing = NONCE_HEADER if nonce is None else TIMESTAMP_HEADER
            raise Rejected(401, "missing_signature", f"missing {missing} header")
        algorithm = headers.get(ALGORITHM_HEADER)
        if algorithm is not None and algorithm.strip().lower() != ALGORITHM.lower():
            raise Rejected(401, "bad_signature", f"{ALGORITHM_HEADER} is not {ALGORITHM}: refused")
        text = stamp.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            raise Rejected(401, "bad_signature", f"{TIMESTAMP_HEADER} is not a Unix time")
        off = self.clock() - int(text)
        if abs(off) > FRESH_S:
            when = f"{off:.0f} s old" if off > 0 else f"{-off:.0f} s in the future"
            raise Rejected(401, "stale_signature", f"{TIMESTAMP_HEADER} is {when}")
        mac = hmac.new(self._secret, signed_bytes(body, nonce, stamp), hashlib.sha256)
        expected = base64.b64encode(mac.digest())
        if not hmac.compare_digest(expected, given.strip().encode("utf-8", "surrogateescape")):
            raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the body")

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return headers.get(SIGNATURE_HEADER) is not None and headers.get(NONCE_HEADER) is not None

    def claims_body(self, obj: dict[str, Any]) -> bool:
        kind = obj.get("type")
        return (
            isinstance(kind, str)
            and (kind in RECIPIENT_TYPES or kind in BATCH_TYPES)
            and isinstance(obj.get("batch_id"), str)
        )

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        obj = parse_object(body)
        kind = obj.get("type")
        if not isinstance(kind, str) or not kind.strip():
            raise malformed("body is JSON but not a Sinch callback (no type)", "unknown_envelope")
        if kind in RECIPIENT_TYPES:
            return [self._recipient(obj, body, received_at)]
        if kind in BATCH_TYPES:
            return self._batch(obj, body, received_at)
        return [self._other(obj, kind, body, received_at)]

    def _recipient(self, obj: dict[str, Any], body: bytes, received_at: int) -> Event:
        try:
            report = RECIPIENT_REPORT.validate_python(obj)
        except ValidationError as exc:
            raise malformed(_first_problem(exc), "invalid_envelope") from None
        for field, value in (
            ("batch_id", report.batch_id),
            ("recipient", report.recipient),
            ("status", report.status),
        ):
            if value is None or not value.strip():
                raise malformed(f"a recipient delivery report has no {field}", "invalid_envelope")
        return recipient_event(report, body.decode("utf-8"), received_at)

    def _batch(self, obj: dict[str, Any], body: bytes, received_at: int) -> Batch:
        try:
            report = BATCH_REPORT.validate_python(obj)
        except ValidationError as exc:
            raise malformed(_first_problem(exc), "invalid_envelope") from None
        if report.batch_id is None:
            raise malformed("a batch delivery report has no batch_id", "invalid_envelope")
        if not report.statuses:
            raise malformed("the batch delivery report has no statuses", "invalid_envelope")
        if len(report.statuses) > MAX_STATUSES:
            raise malformed(
                f"the batch delivery report has {len(report.statuses)} statuses",
                "invalid_envelope",
            )
        entries: list[StatusEntry] = []
        refused: list[RefusedPart] = []
        for index, item in enumerate(report.statuses):
            try:
                entries.append(read_entry(item))
            except ValueError as exc:
                why = Rejected(400, "malformed_report", f"statuses[{index}]: {exc}")
                refused.append(RefusedPart(why, _json(item).encode()))
        if not entries:
            first = refused[0].rejected
            raise malformed(
                f"no status of the batch report is valid ({len(refused)} refused; {first.detail})",
                "invalid_envelope",
            )
        events = batch_events(report, entries, body.decode("utf-8"), received_at)
        return Batch(events, tuple(refused))

    def _other(self, obj: dict[str, Any], kind: str, body: bytes, received_at: int) -> Event:
        # Another callback on the same URL (an inbound `mo_text`): kept, acknowledged, so Sinch
        # does not retry it for hours; message-level, under its batch if it names one.
        key = f"sinch|sha256:{body_digest(body)}"
        batch = obj.get("batch_id")
        return Event(
            provider=Sinch.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=kind[:64],
            state=State.UNKNOWN,
            message_id=absent_if_blank(batch) if isinstance(batch, str) else None,
            recipient=None,
            occurred_at=received_at,
            received_at=received_at,
            payload=body.decode("utf-8"),
            time_estimated=True,
        )
