"""Lisoloo: five `sms.*` event types in an envelope, optional HTTP Basic auth.

Envelope: {event_id, event_type, timestamp, message_id, data}. `sms.queued` is per message
(totals, cost); processing/sent/delivered/failed are per recipient (`data.recipient_phone`).
The docs' own examples omit envelope fields, so every envelope field but `event_type` is
optional: a missing `event_id` is derived from the body, a missing time falls back to the receive
time, and a missing `message_id` is resolved by the store from the recipient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
)

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.gateways.base import (
    JSON,
    AuthMode,
    BasicAuth,
    BodyFormat,
    EnvelopeTime,
    FastFloat,
    FastInt,
    FastText,
    FastTime,
    Flag,
    Identifier,
    Integer,
    Number,
    Text,
    Time,
    absent_if_blank,
    body_digest,
    decode_payload,
    derived_id,
    reject_non_json_numbers,
    us,
    validation_detail,
)

# Envelope ids are strict about type and length (a wrong one is a malformed envelope), and
# blank is absent, as everywhere (providers.base.absent_if_blank).
Id = Annotated[str, StringConstraints(max_length=256), AfterValidator(absent_if_blank)]
TypeName = Annotated[str, StringConstraints(max_length=128)]

STATES = {
    "sms.queued": State.QUEUED,
    "sms.processing": State.PROCESSING,
    "sms.sent": State.SENT,
    "sms.delivered": State.DELIVERED,
    "sms.failed": State.FAILED,
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class QueuedData(_Model):
    total_recipients: Integer = None
    total_messages: Integer = None
    total_cost: Number = None
    currency: Text = None
    scheduled_at: Time = None


class RecipientData(_Model):
    """The data of every per-recipient event type, known or not. One model for all of them: the
    normalizer reads each field directly (a missing attribute on a pydantic model costs an
    exception) and takes only what the event's type defines (`sent_at` for sms.sent, …)."""

    recipient_phone: Identifier = None
    carrier: Text = None
    sent_at: Time = None
    delivered_at: Time = None
    segments: Integer = None
    failed_at: Time = None
    error_code: Text = None
    error_message: Text = None
    retryable: Flag = None


class _Envelope(_Model):
    event_id: Id | None = None
    timestamp: EnvelopeTime = None
    message_id: Id | None = None


class Queued(_Envelope):
    event_type: Literal["sms.queued"]
    data: QueuedData = QueuedData()


class Processing(_Envelope):
    event_type: Literal["sms.processing"]
    data: RecipientData = RecipientData()


class Sent(_Envelope):
    event_type: Literal["sms.sent"]
    data: RecipientData = RecipientData()


class Delivered(_Envelope):
    event_type: Literal["sms.delivered"]
    data: RecipientData = RecipientData()


class Failed(_Envelope):
    event_type: Literal["sms.failed"]
    data: RecipientData = RecipientData()


class Other(_Envelope):
    """Any event type we do not know yet: stored as `unknown`, never rejected."""

    event_type: TypeName
    data: RecipientData = RecipientData()


def _tag(value: Any) -> str:
    kind = value.get("event_type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and kind in STATES else "other"


LisolooEvent = Annotated[
    Annotated[Queued, Tag("sms.queued")]
    | Annotated[Processing, Tag("sms.processing")]
    | Annotated[Sent, Tag("sms.sent")]
    | Annotated[Delivered, Tag("sms.delivered")]
    | Annotated[Failed, Tag("sms.failed")]
    | Annotated[Other, Tag("other")],
    Discriminator(_tag),
]
ADAPTER: TypeAdapter[Any] = TypeAdapter(LisolooEvent)
TAGS = (*STATES, "other")


# The same envelope in plain types, tried first (see providers.base: "the fast path"): a
# well-formed body of a known type is validated entirely in pydantic-core. Anything it refuses
# (an unknown type, a wrong type, an odd timestamp) goes through ADAPTER above, which decides.
class _Fast(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class FastQueuedData(_Fast):
    total_recipients: FastInt = None
    total_messages: FastInt = None
    total_cost: FastFloat = None
    currency: FastText = None
    scheduled_at: FastTime = None


class FastRecipientData(_Fast):
    recipient_phone: FastText = None
    carrier: FastText = None
    sent_at: FastTime = None
    delivered_at: FastTime = None
    segments: FastInt = None
    failed_at: FastTime = None
    error_code: FastText = None
    error_message: FastText = None
    retryable: bool | None = None


FastId = Annotated[str, StringConstraints(max_length=256)] | None


class FastQueued(_Fast):
    event_id: FastId = None
    event_type: Literal["sms.queued"]
    timestamp: FastTime = None
    message_id: FastId = None
    data: FastQueuedData = FastQueuedData()


class FastRecipientEvent(_Fast):
    event_id: FastId = None
    event_type: Literal["sms.processing", "sms.sent", "sms.delivered", "sms.failed"]
    timestamp: FastTime = None
    message_id: FastId = None
    data: FastRecipientData = FastRecipientData()


FAST: TypeAdapter[Any] = TypeAdapter(
    Annotated[FastQueued | FastRecipientEvent, Field(discriminator="event_type")]
)


class Lisoloo:
    name: ClassVar[str] = "lisoloo"
    title: ClassVar[str] = "Lisoloo"
    body_format: ClassVar[BodyFormat] = JSON
    checks_url: ClassVar[bool] = False  # its check is over the body alone

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self._credentials = basic_auth
        self._basic = BasicAuth(*basic_auth) if basic_auth else None

    def auth_mode(self) -> AuthMode:
        if self._credentials:
            return AuthMode(True, f"Basic auth (user {self._credentials[0]})")
        return AuthMode(False, "no auth configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._basic is not None:
            self._basic.check(headers)

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return False  # Basic auth is not specific to Lisoloo

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return "event_type" in obj

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        reject_non_json_numbers(body)
        try:
            ev = FAST.validate_json(body)
        except ValidationError:
            try:
                ev = ADAPTER.validate_json(body)
            except ValidationError as exc:
                raise validation_detail(exc, TAGS) from None
        return [self._normalize(ev, body, received_at)]

    def _normalize(self, ev: Any, body: bytes, received_at: int) -> Event:
        """One event from either model (FAST or ADAPTER): blank ids are absent, times are
        microseconds, and a per-recipient event takes only its own type's time and fields."""
        data = ev.data
        state = STATES.get(ev.event_type, State.UNKNOWN)
        given_id = absent_if_blank(ev.event_id)
        if given_id:
            event_id, dedupe = given_id, f"lisoloo|{given_id}"
        else:
            digest = body_digest(body)
            event_id, dedupe = derived_id("lisoloo", digest), f"lisoloo|sha256:{digest}"
        message_id = absent_if_blank(ev.message_id)
        timestamp = us(ev.timestamp)
        if state is State.QUEUED:
            return Event(
                self.name,
                event_id,
                dedupe,
                ev.event_type,
                state,
                message_id,
                None,
                received_at if timestamp is None else timestamp,
                received_at,
                decode_payload(body),
                timestamp is None,
                message_info=MessageInfo(
                    total_recipients=data.total_recipients,
                    total_messages=data.total_messages,
                    total_cost=data.total_cost,
                    currency=data.currency,
                    scheduled_at=us(data.scheduled_at),
                    channel="sms",
                ),
            )
        if state is State.SENT:
            occurred = us(data.sent_at)
        elif state is State.DELIVERED:
            occurred = us(data.delivered_at)
        elif state is State.FAILED:
            occurred = us(data.failed_at)
        else:
            occurred = None
        if occurred is None:
            occurred = timestamp
        failed = state is State.FAILED
        return Event(
            self.name,
            event_id,
            dedupe,
            ev.event_type,
            state,
            message_id,
            absent_if_blank(data.recipient_phone),
            received_at if occurred is None else occurred,
            received_at,
            decode_payload(body),
            occurred is None,
            data.carrier,
            data.error_code if failed else None,
            data.error_message if failed else None,
            data.retryable if failed else None,
        )
