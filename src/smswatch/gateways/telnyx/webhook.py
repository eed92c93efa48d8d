"""Telnyx: its messaging webhooks, `message.sent` and `message.finalized`, one per change of an
outbound message, JSON, signed with Ed25519.

Envelope (developers.telnyx.com, "Receiving Webhooks for Messaging"; telnyx-python's
`DeliveryUpdateWebhookEvent`, `OutboundMessage`, `OutboundMessagePayload`): `{"data": {
"record_type": "event", "id", "event_type", "occurred_at", "payload": {...}}, "meta": {"attempt",
"delivered_to"}}`. The payload is the message as its detail record says it: `id` (the message),
`to[]` (each recipient: `phone_number`, `status`, `carrier`, `line_type`), `from`, `type` (SMS,
MMS), `messaging_profile_id`, `tags[]`, `cost` {`amount` as text, `currency`}, `errors[]`
({`code`, `title`, `detail`, `source` {`pointer`}}: Telnyx's 40xxx codes, errors.toml),
`sent_at`, `completed_at`. A group MMS has up to eight recipients in one message's `to[]`.

Signature (telnyx-python `lib/webhook_verification.py`, the Go, Node, PHP and Java SDKs alike):
`telnyx-signature-ed25519` is the base64 of an Ed25519 signature (64 bytes) by the account's key
over the `telnyx-timestamp` header's value, `|`, and the raw body; the timestamp (Unix seconds)
must be within five minutes of now, either way, so a captured webhook cannot be played again.
Verified by `cryptography` against the account's public key (`--telnyx-public-key`), or, when
only a signing key is set (the simulator's and the demo's pair, `--telnyx-signing-key`), its
public half. A missing header, a signature that is not 64 bytes of base64, one that does not
verify, or a stale timestamp: 401.

Mapping onto our states (the SDK's `To.status` literal): queued is queued; sending is
processing; sent is sent; delivered is delivered; sending_failed (Telnyx or the carrier refused
it before sending), delivery_failed (the carrier's receipt says not delivered) and expired are
failed, with the first of `errors[]` that points at the recipient (`source.pointer` `/to/N`),
else the first that points at no other; delivery_unconfirmed (the carrier gave no receipt, and
Telnyx will say no more) is unconfirmed, replaced by a later outcome. Any other status is
stored as `unknown` and acknowledged; so is an event of another type (an inbound
`message.received` posted to the same profile's webhook URL), as one message-level event.

Identity: message_id = `payload.id`, one event per recipient in `to[]` (recipient
`phone_number`, carrier `carrier`). The dedupe key is `telnyx|data.id|phone_number`: `data.id` is
the event's own id, the same on each of Telnyx's retries, and one event speaks for every
recipient of its message; without an id, the body's digest stands in for it. Event time:
`data.occurred_at`, else the payload's `completed_at` or `sent_at`, else the receive time,
marked estimated. `cost.amount` in `cost.currency` is the message's cost; the first of `tags` is
its group (the send it was part of), else its `messaging_profile_id`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
)

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    JSON,
    MAX_FIELD,
    AuthMode,
    BodyFormat,
    FastFloat,
    FastText,
    FastTime,
    Identifier,
    Number,
    Text,
    Time,
    absent_if_blank,
    body_digest,
    decode_payload,
    derived_id,
    malformed,
    mapped_state,
    number,
    reject_non_json_numbers,
    signature_header,
    us,
    validation_detail,
)
from smswatch.gateways.telnyx.keys import SIGNATURE_BYTES, read_public, read_signing

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
JSON_TYPE = "application/json"
FRESH_S = 300  # Telnyx's SDKs' tolerance, either way
DELIVERY_EVENTS = ("message.sent", "message.finalized")
# A group MMS has eight recipients at most; a `to[]` far past that is no Telnyx message, and
# each entry is an event (and a copy of the body) in the store.
MAX_RECIPIENTS = 100
MAX_STATUS = 128

STATES = {
    "queued": State.QUEUED,
    "sending": State.PROCESSING,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "sending_failed": State.FAILED,
    "delivery_failed": State.FAILED,
    "expired": State.FAILED,
    "delivery_unconfirmed": State.UNCONFIRMED,
}


def state_of(status: str | None) -> State:
    """Our state for one of Telnyx's recipient statuses (the webhooks' and the API's)."""
    return mapped_state(STATES, status)


def signed_bytes(timestamp: str, body: bytes) -> bytes:
    """What Telnyx signs: the timestamp header as sent, `|`, the raw body."""
    return timestamp.encode("utf-8", "surrogateescape") + b"|" + body


@lru_cache(maxsize=8)
def _signer(signing: str) -> Ed25519PrivateKey:
    # A sender signs every post with the same key or two: read each once.
    return read_signing(signing)


def sign(signing: str, body: bytes, now: float) -> dict[str, str]:
    """The two headers of a post of `body` signed as Telnyx signs one, at `now`, with a signing
    key (base64): the simulator's, the demo's, the forwarder's."""
    key = _signer(signing)
    stamp = str(int(now))
    signature = key.sign(signed_bytes(stamp, body))
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
    }


# --- lenient fields ------------------------------------------------------------------------------


def _object(value: Any) -> Any:
    return value if isinstance(value, dict) else None


def objects(value: Any) -> Any:
    """A list's objects; anything else in it (or a list that is none) is dropped."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _texts(value: Any) -> Any:
    return [v[:MAX_FIELD] for v in value if isinstance(v, str)] if isinstance(value, list) else []


class _To(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    phone_number: Identifier = None
    status: Text = None
    carrier: Text = None


class _Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    pointer: Text = None


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    code: Text = None
    title: Text = None
    detail: Text = None
    source: Annotated[_Source | None, BeforeValidator(_object)] = None


class _Cost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    amount: Number = None
    currency: Text = None


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: Identifier = None
    to: Annotated[list[_To], BeforeValidator(objects)] = Field(default_factory=list)
    type: Text = None
    messaging_profile_id: Text = None
    tags: Annotated[list[str], BeforeValidator(_texts)] = Field(default_factory=list)
    cost: Annotated[_Cost | None, BeforeValidator(_object)] = None
    errors: Annotated[list[Problem], BeforeValidator(objects)] = Field(default_factory=list)
    sent_at: Time = None
    completed_at: Time = None


class _Delivery(BaseModel):
    """`message.sent` or `message.finalized`: the payload must be the message."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    event_type: Literal["message.sent", "message.finalized"]
    id: Identifier = None
    occurred_at: Time = None
    payload: _Message


class _Other(BaseModel):
    """Any other event type: kept as one message-level `unknown` event."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    event_type: Annotated[str, Field(max_length=MAX_STATUS)]
    id: Identifier = None
    occurred_at: Time = None
    payload: Any = None


def _kind(value: Any) -> str:
    event_type = value.get("event_type") if isinstance(value, dict) else None
    return "delivery" if event_type in DELIVERY_EVENTS else "other"


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    data: Annotated[
        Annotated[_Delivery, Tag("delivery")] | Annotated[_Other, Tag("other")],
        Discriminator(_kind),
    ]


ENVELOPE = TypeAdapter(_Envelope)
_TAGS = ("delivery", "other")


# The same delivery event in plain types, tried first (gateways.base: "the fast path"): a
# well-formed `message.sent` / `message.finalized` is validated inside pydantic-core, with no
# call back into Python per field. Whatever it refuses (another event type, a field of another
# type, an odd time, a text past the limit) goes through ENVELOPE above, which decides. Blank
# ids are made absent and times read as microseconds where the event is built (`parse`), for
# both; a cost's amount (Telnyx writes it as a string) is read there too.
class _Fast(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class _FastTo(_Fast):
    phone_number: FastText = None
    status: FastText = None
    carrier: FastText = None


class _FastSource(_Fast):
    pointer: FastText = None


class _FastProblem(_Fast):
    code: FastText = None
    title: FastText = None
    detail: FastText = None
    source: _FastSource | None = None


class _FastCost(_Fast):
    amount: Annotated[str, StringConstraints(max_length=MAX_FIELD)] | FastFloat = None
    currency: FastText = None


class _FastMessage(_Fast):
    id: FastText = None
    to: list[_FastTo] = []
    type: FastText = None
    messaging_profile_id: FastText = None
    tags: list[Annotated[str, StringConstraints(max_length=MAX_FIELD)]] = []
    cost: _FastCost | None = None
    errors: list[_FastProblem] = []
    sent_at: FastTime = None
    completed_at: FastTime = None


class _FastDelivery(_Fast):
    event_type: Literal["message.sent", "message.finalized"]
    id: FastText = None
    occurred_at: FastTime = None
    payload: _FastMessage


class _FastEnvelope(_Fast):
    data: _FastDelivery


FAST = TypeAdapter(_FastEnvelope)


def error_for(
    errors: Sequence[Problem | _FastProblem], index: int
) -> Problem | _FastProblem | None:
    """The error of recipient `index`: the first pointing at it (`/to/N`, or deeper), else the
    first pointing at no recipient at all."""
    mine = f"/to/{index}"
    fallback = None
    for error in errors:
        pointer = (error.source.pointer or "") if error.source else ""
        if pointer == mine or pointer.startswith(mine + "/"):
            return error
        if fallback is None and not pointer.startswith("/to/"):
            fallback = error
    return fallback


class Telnyx:
    name: ClassVar[str] = "telnyx"
    title: ClassVar[str] = "Telnyx"
    body_format: ClassVar[BodyFormat] = JSON
    checks_url: ClassVar[bool] = False  # the signature covers the timestamp and the body only

    def __init__(
        self,
        public_key: str | None = None,
        signing_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ValueError (keys.BadKey) for a key that is not one: refused at start rather
        than every webhook refused later."""
        self.clock = clock
        self._key: Ed25519PublicKey | None = None
        self._by = ""
        # Read even beside a public key: a signing key that is no key would fail every post
        # the simulator or the forwarder signs, so it is refused at start too.
        signer = read_signing(signing_key) if signing_key else None
        if public_key:
            self._key, self._by = read_public(public_key), "the public key"
        elif signer is not None:
            self._key, self._by = signer.public_key(), "the signing key's public half"

    def auth_mode(self) -> AuthMode:
        if self._key is not None:
            return AuthMode(True, f"Ed25519 signature ({self._by})")
        return AuthMode(False, "no public key configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._key is None:
            return
        from cryptography.exceptions import InvalidSignature

        given = signature_header(headers, SIGNATURE_HEADER)
        stamp = signature_header(headers, TIMESTAMP_HEADER)
        try:
            signature = base64.b64decode(given.strip(), validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if len(signature) != SIGNATURE_BYTES:
            raise Rejected(
                401,
                "bad_signature",
                f"{SIGNATURE_HEADER} is not the base64 of a {SIGNATURE_BYTES}-byte "
                "Ed25519 signature",
            )
        try:
            self._key.verify(signature, signed_bytes(stamp, body))
        except InvalidSignature:
            raise Rejected(
                401,
                "bad_signature",
                f"{SIGNATURE_HEADER} does not verify with {self._by} over {TIMESTAMP_HEADER}|"
                "body: is --telnyx-public-key the one the Telnyx portal shows, and is the body "
                "passed on unchanged?",
            ) from None
        self._fresh(stamp)

    def _fresh(self, stamp: str) -> None:
        text = stamp.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            raise Rejected(401, "bad_signature", f"{TIMESTAMP_HEADER} is not a Unix time")
        off = self.clock() - int(text)
        if abs(off) > FRESH_S:
            when = f"{off:.0f} s old" if off > 0 else f"{-off:.0f} s in the future"
            raise Rejected(
                401,
                "stale_signature",
                f"signed {when} ({TIMESTAMP_HEADER}): Telnyx's signatures are good for "
                f"{FRESH_S // 60} minutes (a replay, or a clock that is off)",
            )

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return SIGNATURE_HEADER in headers

    def claims_body(self, obj: dict[str, Any]) -> bool:
        data = obj.get("data")
        return (
            isinstance(data, dict)
            and isinstance(data.get("event_type"), str)
            and "payload" in data
            and "event_type" not in obj
            and "event" not in obj
        )

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        reject_non_json_numbers(body)
        env: _Envelope | _FastEnvelope | None
        try:
            env = FAST.validate_json(body)
        except ValidationError:
            env = None
        if env is None or not env.data.payload.to:  # a message-level event: the lenient way
            try:
                env = ENVELOPE.validate_json(body)
            except ValidationError as exc:
                raise validation_detail(exc, _TAGS) from None
        data = env.data
        payload = decode_payload(body)
        # The event's own id, else the body's digest: the same bytes posted again are the same.
        event_id = absent_if_blank(data.id)
        base = "telnyx|" + (event_id if event_id is not None else f"sha256:{body_digest(body)}")
        if isinstance(data, _Other) or not data.payload.to:
            assert isinstance(data, _Delivery | _Other)
            return [self._message_level(data, base, payload, received_at)]
        message = data.payload
        if len(message.to) > MAX_RECIPIENTS:
            raise malformed(
                f"payload.to has {len(message.to)} recipients: a Telnyx message has at most "
                f"{MAX_RECIPIENTS}",
                "invalid_envelope",
            )
        occurred = us(data.occurred_at) or us(message.completed_at) or us(message.sent_at)
        message_id = absent_if_blank(message.id)
        info = MessageInfo(
            total_recipients=len(message.to),
            total_cost=number(message.cost.amount) if message.cost else None,
            currency=absent_if_blank(message.cost.currency) if message.cost else None,
            channel=(absent_if_blank(message.type) or "sms").lower(),
            group=next((t for t in message.tags if t.strip()), None)
            or absent_if_blank(message.messaging_profile_id),
        )
        events: list[Event] = []
        seen: set[str | None] = set()
        for index, to in enumerate(message.to):
            phone = absent_if_blank(to.phone_number)
            if phone in seen:
                continue  # one event per recipient: a repeated number says nothing more
            seen.add(phone)
            status = (to.status or "").strip()[:MAX_STATUS] or "unknown"
            state = state_of(status)
            error = (
                error_for(message.errors, index)
                if state in (State.FAILED, State.UNCONFIRMED)
                else None
            )
            key = f"{base}|{phone or ''}"
            events.append(
                Event(
                    provider=self.name,
                    event_id=derived_id(key),
                    dedupe_key=key,
                    event_type=status,
                    state=state,
                    message_id=message_id,
                    recipient=phone,
                    occurred_at=occurred if occurred is not None else received_at,
                    received_at=received_at,
                    time_estimated=occurred is None,
                    payload=payload,
                    carrier=absent_if_blank(to.carrier),
                    error_code=absent_if_blank(error.code.strip())
                    if error and error.code
                    else None,
                    error_message=(
                        absent_if_blank(error.detail) or absent_if_blank(error.title)
                        if error
                        else None
                    ),
                    message_info=info,
                )
            )
        return events

    def _message_level(
        self, data: _Delivery | _Other, key: str, payload: str, received_at: int
    ) -> Event:
        """An event that names no recipient: another type (`message.received`), or a message
        with no `to[]`: stored as `unknown`, acknowledged."""
        inner = data.payload
        message_id = None
        if isinstance(inner, _Message):
            message_id = inner.id
        elif isinstance(inner, dict) and isinstance(inner.get("id"), str):
            message_id = absent_if_blank(inner["id"][:MAX_FIELD])
        occurred = us(data.occurred_at)
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=data.event_type,
            state=State.UNKNOWN,
            message_id=message_id,
            recipient=None,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            time_estimated=occurred is None,
            payload=payload,
        )
