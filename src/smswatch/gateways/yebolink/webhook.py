"""YeboLink: four `message.*` events, each about one message to one recipient, HMAC-signed.

Envelope: {event, timestamp, data: {message_id, channel, recipient, status, ...}}. The
signature header `X-YeboLink-Signature` is the lowercase hex HMAC-SHA256 of the raw body keyed
with the webhook secret. There is no event id: the dedupe key is event + message_id + timestamp.

All four types share one data shape (fields appear from some state on), so the adapter validates
one envelope model; an unknown `event` keeps the same fields for correlation and is stored as
`unknown`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    JSON,
    AuthMode,
    BodyFormat,
    EnvelopeTime,
    FastFloat,
    FastText,
    FastTime,
    Identifier,
    JsonText,
    Number,
    Text,
    Time,
    absent_if_blank,
    body_digest,
    decode_payload,
    derived_id,
    json_text,
    reject_non_json_numbers,
    signature_header,
    us,
    validation_detail,
)

SIGNATURE_HEADER = "X-YeboLink-Signature"

STATES = {
    "message.queued": State.QUEUED,
    "message.sent": State.SENT,
    "message.delivered": State.DELIVERED,
    "message.failed": State.FAILED,
}


class Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: Identifier = None
    channel: Text = None
    recipient: Identifier = None
    status: Text = None
    credits_used: Number = None
    delivered_at: Time = None
    error_code: Text = None
    error_message: Text = None
    metadata: JsonText = None


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    event: Annotated[str, StringConstraints(max_length=128)]
    timestamp: EnvelopeTime = None
    data: Data = Data()


ADAPTER: TypeAdapter[Envelope] = TypeAdapter(Envelope)


# The same envelope in plain types, tried first (see providers.base: "the fast path").
class _Fast(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class FastData(_Fast):
    message_id: FastText = None
    channel: FastText = None
    recipient: FastText = None
    status: FastText = None
    credits_used: FastFloat = None
    delivered_at: FastTime = None
    error_code: FastText = None
    error_message: FastText = None
    metadata: Any = None  # any JSON: made compact text as the lenient model does


class FastEnvelope(_Fast):
    event: Annotated[str, StringConstraints(max_length=128)]
    timestamp: FastTime = None
    data: FastData = FastData()


FAST: TypeAdapter[FastEnvelope] = TypeAdapter(FastEnvelope)


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class YeboLink:
    name: ClassVar[str] = "yebolink"
    title: ClassVar[str] = "YeboLink"
    body_format: ClassVar[BodyFormat] = JSON
    checks_url: ClassVar[bool] = False  # its check is over the body alone

    def __init__(self, secret: str | None = None) -> None:
        self._key = secret.encode() if secret else None

    def auth_mode(self) -> AuthMode:
        if self._key:
            return AuthMode(True, "HMAC-SHA256 signature")
        return AuthMode(False, "no secret configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._key is None:
            return
        given = signature_header(headers, SIGNATURE_HEADER)
        given = given.strip().lower().removeprefix("sha256=")
        expected = hmac.new(self._key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(errors="replace"), expected.encode()):
            raise Rejected(
                401,
                "bad_signature",
                f"{SIGNATURE_HEADER} does not match the body: is the webhook secret right?",
            )

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return SIGNATURE_HEADER in headers

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return "event" in obj and "event_type" not in obj

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        reject_non_json_numbers(body)
        env: Envelope | FastEnvelope
        try:
            env = FAST.validate_json(body)
        except ValidationError:
            try:
                env = ADAPTER.validate_json(body)
            except ValidationError as exc:
                raise validation_detail(exc) from None
        return [self._normalize(env, body, received_at)]

    def _normalize(self, env: Envelope | FastEnvelope, body: bytes, received_at: int) -> Event:
        """One event from either model (FAST or ADAPTER): blank ids are absent, times are
        microseconds, metadata is compact JSON text."""
        data = env.data
        state = STATES.get(env.event, State.UNKNOWN)
        timestamp = us(env.timestamp)
        delivered = us(data.delivered_at) if state is State.DELIVERED else None
        occurred = timestamp if delivered is None else delivered
        message_id = absent_if_blank(data.message_id)
        if message_id and timestamp is not None:
            key = f"yebolink|{env.event}|{message_id}|{timestamp}"
        else:
            key = f"yebolink|sha256:{body_digest(body)}"
        credits = data.credits_used
        metadata = data.metadata if type(env) is Envelope else json_text(data.metadata)
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=env.event,
            state=state,
            message_id=message_id,
            recipient=absent_if_blank(data.recipient),
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            time_estimated=occurred is None,
            payload=decode_payload(body),
            error_code=data.error_code,
            error_message=data.error_message,
            message_info=MessageInfo(
                total_recipients=1,
                total_cost=credits,
                currency="credits" if credits is not None else None,
                channel=data.channel,
                metadata=metadata,
            ),
        )
