"""Vonage: its SMS API delivery receipts and its Messages API status callbacks, on one route
(`/webhooks/vonage`), told apart by their shape.

**SMS API delivery receipts (DLRs)**, one per status change of one SMS part to one recipient:
Vonage makes one `messageId` per part of a concatenated message and per recipient, and sends a
receipt for each (developer.vonage.com/messaging/sms/guides/delivery-receipts). The account's
dashboard chooses how they come: a GET with the fields in the query, a POST of a form, or a POST
of JSON ("POST-JSON"); all three are taken. Fields (Vonage's SMS API spec, DeliveryReceipt;
vonage-node-sdk packages/sms DeliveryReceipt.ts): `msisdn` (the recipient), `to` (the sender
id), `network-code` (MCCMNC), `messageId`, `price`, `status`, `scts` (when the carrier's receipt
came, YYMMDDhhmm, UTC), `err-code`, `api-key`, `client-ref`, `message-timestamp` (when Vonage
began to push it, `YYYY-MM-DD HH:MM:SS` UTC), and on signed webhooks `timestamp` (Unix seconds),
`nonce` and `sig`. A body needs `messageId` and `status` to be one; an inbound SMS (which has
`text`, no `status`) is not, and is quarantined (400).

Signature (`sig`; Vonage's "Signing messages" guide; the `check_signature`/`signature` of
vonage-python-sdk 2.x and `SMS.verifySignature` of vonage-node-sdk, whose tests give the known
answers tests/test_vonage.py recomputes): drop `sig`, sort the fields by name, replace `&` and
`=` in each value by `_`, build `&name=value&name=value…`; `md5hash` is the hex MD5 of that
string followed by the signature secret, `md5`, `sha1`, `sha256`, `sha512` the hex HMAC of the
string keyed with the secret. Compared case-insensitively (the Node SDK's answers are upper
case) and in constant time. `timestamp` must be within five minutes of now, so a captured
receipt cannot be played again later. A field sent twice is refused: Vonage sends each once,
and which of two values was signed cannot be known.

**Messages API status callbacks** (JSON; vonage-java-sdk MessageStatus): `message_uuid`, `to`,
`from`, `timestamp` (ISO 8601), `status` (submitted, delivered, rejected, undeliverable, read),
`error` {`type`, `title`, `detail`}, `usage` {`currency`, `price`}, `client_ref`, `channel`,
`destination` {`network_code`}. They are signed with `Authorization: Bearer` and a JWT, HS256,
keyed with the same signature secret whatever the dashboard's method (Vonage's "Signed
webhooks" guide; vonage-python-sdk's verify_jwt decodes with PyJWT the same way), whose claim
`payload_hash` is the hex SHA-256 of the raw body and `iat` its time: both are checked, `iat`
within five minutes.

Stored: a JSON body as it came; a query or a form as the JSON object of its fields (fields in
order, a repeated one as the list of its values) with one more key, `smswatch:via` (`query` or
`form`), so that a forward or a replay sends it the way it came (`post_body`); a body that
already has that key is refused.

Mapping onto our states: `accepted` (the carrier took it) and `buffered` (the carrier holds it
for later delivery: it has left Vonage, not reached the handset) are sent; `delivered` is
delivered; `expired`, `failed`, `rejected`, `undelivered` are failed, with `err-code` as the code
(`0` is no error); `unknown` ("no useful information available", and Vonage will not say more)
is unconfirmed. Any other status (`deleted`: taken off one gateway's queue, which may still go
out through another) is stored as `unknown` and acknowledged. Messages API: submitted is sent,
delivered and read are delivered, rejected and undeliverable are failed (code: `error.title`,
else the code after `#` in `error.type`; text: `error.detail`); anything else unknown.

Identity: message_id is `messageId` (one part to one recipient) or `message_uuid`; recipient
`msisdn` or `to`; `client-ref` / `client_ref` is the message's group (the parts and recipients
of one send). Vonage sends no event id: the dedupe key is `vonage|messageId|status|scts` (no
`|scts` without one) and `vonage|message_uuid|status|timestamp`; with no id, the digest of the
fields less the signature's. Event time: `scts` (the receive time if that falls within its
minute, as for Twilio's receipts), else `message-timestamp`, else `timestamp`; the Messages API's
`timestamp`; else the receive time, marked estimated. `price` is the part's cost, in euros:
Vonage bills in EUR (the Reports API's and the Messages API's `currency` say EUR; a receipt
names none); the Messages API's `usage` names its own currency.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import ModuleType
from typing import Annotated, Any, ClassVar
from urllib.parse import urlencode

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    MAX_FIELD,
    QUERY_FORM_JSON,
    QUERY_MARK,
    AuthMode,
    BodyFormat,
    Identifier,
    Number,
    Text,
    Time,
    absent_if_blank,
    decode_payload,
    derived_id,
    form_payload,
    malformed,
    mapped_state,
    parse_form,
    parse_object,
    signature_header,
    us,
)
from smswatch.timefmt import to_us


@cache
def _jwt() -> ModuleType:
    """PyJWT, imported when a JWT is first checked or made: it loads `cryptography` whole, which
    the monitor attached to a remote feed (`smswatch attach`), importing the registry, does not
    need (tests/test_layers.py)."""
    import jwt

    # The key of the secret short enough to draw PyJWT's warning is Vonage's to choose, not
    # the user's, and a warning printed from the listener would write over the monitor's screen.
    warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
    return jwt


VIA = "smswatch:via"  # how a stored query or form came (see the module docstring)
QUERY, FORM, JSON = "query", "form", "json"
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
DEFAULT_METHOD = "md5hash"
FRESH_S = 300  # how far a signature's timestamp (or a JWT's iat) may be from now
MAX_STATUS = 128
_MINUTE = 60_000_000  # µs: scts's precision
SIGNATURE_FIELDS = frozenset(("sig", "nonce", "timestamp"))

SMS_STATES = {
    "accepted": State.SENT,
    "buffered": State.SENT,
    "delivered": State.DELIVERED,
    "expired": State.FAILED,
    "failed": State.FAILED,
    "rejected": State.FAILED,
    "undelivered": State.FAILED,
    "unknown": State.UNCONFIRMED,
}
MESSAGE_STATES = {
    "submitted": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "rejected": State.FAILED,
    "undeliverable": State.FAILED,
}


def sms_state(status: str | None) -> State:
    """Our state for an SMS API status (a receipt's, the Reports API's product SMS)."""
    return mapped_state(SMS_STATES, status)


def message_state(status: str | None) -> State:
    """Our state for a Messages API status (a callback's, the Reports API's product MESSAGES)."""
    return mapped_state(MESSAGE_STATES, status)


# --- the SMS API's signature -------------------------------------------------------------------


def signed_string(fields: Iterable[tuple[str, str]]) -> str:
    """What Vonage signs: `&name=value` for each field but `sig`, sorted by name, with `&` and
    `=` in each value replaced by `_`."""
    parts = sorted((name, value) for name, value in fields if name != "sig")
    return "".join(f"&{name}={value.replace('&', '_').replace('=', '_')}" for name, value in parts)


def signature(secret: str, method: str, fields: Iterable[tuple[str, str]]) -> str:
    """The `sig` of `fields` (hex, lower case) by `method` (one of METHODS)."""
    text = signed_string(fields).encode("utf-8", "surrogateescape")
    key = secret.encode()
    if method == "md5hash":
        return hashlib.md5(text + key).hexdigest()
    if method not in METHODS:
        raise ValueError(f"unknown signature method {method!r} (one of {', '.join(METHODS)})")
    return hmac.new(key, text, method).hexdigest()


def sign_fields(
    secret: str, method: str, fields: list[tuple[str, str]], now: float
) -> list[tuple[str, str]]:
    """`fields` signed as Vonage signs a receipt: its own `timestamp`, `nonce` and `sig` replaced
    by fresh ones (the simulator's, the forwarder's), in the order Vonage puts them, last."""
    kept = [(name, value) for name, value in fields if name not in SIGNATURE_FIELDS]
    kept += [("timestamp", str(int(now))), ("nonce", str(uuid.uuid4()))]
    return [*kept, ("sig", signature(secret, method, kept))]


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def bearer(secret: str, body: bytes, now: float) -> str:
    """A Messages API callback's JWT for `body`, as Vonage makes one (the simulator's, the
    forwarder's): HS256 with the signature secret, `payload_hash` of the body as posted."""
    claims = {
        "iat": int(now),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": payload_hash(body),
    }
    return _jwt().encode(claims, secret, algorithm="HS256")


# --- what a request brought --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """A request's fields as they came: `via` query, form or json; `pairs` a query's or form's
    fields in order (None for JSON); `obj` the first value of each (the JSON object itself)."""

    via: str
    pairs: list[tuple[str, str]] | None
    obj: dict[str, Any]


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def received(body: bytes, content_type: str | None = None) -> Received:
    """Read a body as Vonage sends one: a GET's query (`?` first: base.QUERY_MARK), or a POST
    as its content type says, a form or JSON; a type that says neither (none, `*/*`, text/plain)
    is told by the body, JSON being an object. Raises Rejected(400)."""
    if body.startswith(QUERY_MARK):
        return _from_pairs(QUERY, parse_form(body[len(QUERY_MARK) :]))
    media = _media(content_type)
    if media == FORM_TYPE:
        via = FORM
    elif media in (JSON_TYPE, "text/json") or media.endswith("+json"):
        via = JSON
    else:
        via = JSON if body.lstrip()[:1] == b"{" else FORM
    if via == FORM:
        return _from_pairs(FORM, parse_form(body))
    obj = parse_object(body)
    if VIA in obj:
        raise malformed(f"a Vonage webhook has no field {VIA!r}", "unknown_envelope")
    return Received(JSON, None, obj)


def _from_pairs(via: str, pairs: list[tuple[str, str]]) -> Received:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name == VIA:
            raise malformed(f"a Vonage webhook has no field {VIA!r}", "unknown_envelope")
        obj.setdefault(name, value)
    return Received(via, pairs, obj)


def is_receipt(obj: Mapping[str, Any]) -> bool:
    """An SMS API delivery receipt's shape."""
    return "messageId" in obj and "status" in obj


def is_status(obj: Mapping[str, Any]) -> bool:
    """A Messages API status callback's shape."""
    return "message_uuid" in obj and "status" in obj


def signed_pairs(seen: Received) -> list[tuple[str, str]]:
    """The fields a receipt's `sig` covers, as text. A JSON receipt's values are strings (an
    integer is taken as its digits); any other value cannot have been signed: 401."""
    if seen.pairs is not None:
        return seen.pairs
    pairs = []
    for name, value in seen.obj.items():
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise Rejected(
                401, "bad_signature", f"field {name[:60]!r} is not text: no sig can cover it"
            )
        pairs.append((name, value))
    return pairs


def post_fields(payload: str) -> tuple[str, list[tuple[str, str]] | None]:
    """A stored payload's way (query, form, json) and, for a query or form, its fields."""
    obj = json.loads(payload)
    if not isinstance(obj, dict) or obj.get(VIA) not in (QUERY, FORM):
        return JSON, None
    via = obj.pop(VIA)
    pairs = [
        (str(name), str(v))
        for name, value in obj.items()
        for v in (value if isinstance(value, list) else [value])
    ]
    return via, pairs


def wire_body(via: str, pairs: list[tuple[str, str]]) -> bytes:
    """A query's or form's fields as the body a post of them carries (a query `?` first)."""
    form = urlencode(pairs).encode("ascii")
    return QUERY_MARK + form if via == QUERY else form


# --- lenient fields ------------------------------------------------------------------------------


def _object(value: Any) -> Any:
    return value if isinstance(value, dict) else None


class _Receipt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    msisdn: Identifier = None
    to: Text = None
    network_code: Text = Field(None, alias="network-code")
    message_id: Identifier = Field(None, alias="messageId")
    price: Number = None
    status: Text = None
    scts: Text = None
    err_code: Text = Field(None, alias="err-code")
    client_ref: Text = Field(None, alias="client-ref")
    message_timestamp: Text = Field(None, alias="message-timestamp")
    timestamp: Text = None


class _Error(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Text = None
    title: Text = None  # Vonage's code, a number or its digits
    detail: Text = None


class _Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    currency: Text = None
    price: Number = None


class _Destination(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    network_code: Text = None


class _Status(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_uuid: Identifier = None
    to: Identifier = None
    status: Text = None
    timestamp: Time = None
    error: Annotated[_Error | None, BeforeValidator(_object)] = None
    usage: Annotated[_Usage | None, BeforeValidator(_object)] = None
    client_ref: Text = None
    channel: Text = None
    destination: Annotated[_Destination | None, BeforeValidator(_object)] = None


def scts_time(value: str | None) -> int | None:
    """`scts` (YYMMDDhhmm, UTC) in microseconds; None if absent or unreadable."""
    if not value or len(value) != 10 or not value.isdigit():
        return None
    try:
        return to_us(datetime.strptime(value, "%y%m%d%H%M").replace(tzinfo=UTC))
    except ValueError:
        return None


def pushed_time(value: str | None) -> int | None:
    """`message-timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC) in microseconds."""
    if not value:
        return None
    try:
        return to_us(datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    except ValueError:
        return None


def unix_time(value: str | None) -> int | None:
    """`timestamp` (Unix seconds) in microseconds."""
    if not value or not value.strip().isdigit() or len(value.strip()) > 12:
        return None
    return int(value.strip()) * 1_000_000


def _zero(code: str) -> bool:
    return code.isdigit() and not code.strip("0")


def _title(text: str | None, limit: int = MAX_STATUS) -> str:
    return (text or "").strip()[:limit]


class Vonage:
    name: ClassVar[str] = "vonage"
    title: ClassVar[str] = "Vonage"
    body_format: ClassVar[BodyFormat] = QUERY_FORM_JSON
    checks_url: ClassVar[bool] = False  # `sig` and the JWT cover the fields, not the URL

    def __init__(
        self,
        secret: str | None = None,
        method: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        method = method or DEFAULT_METHOD
        if method not in METHODS:
            raise ValueError(f"unknown Vonage signature method {method!r}")
        self.secret = secret
        self.method = method
        if secret is not None:
            _jwt()  # now, not in the middle of the first callback that carries a JWT
        self.clock = clock
        # What check_auth read of the body, for parse to reuse: the listener calls one right
        # after the other for the same bytes, on one thread.
        self._seen: tuple[bytes, Received] | None = None

    def auth_mode(self) -> AuthMode:
        if self.secret is not None:
            return AuthMode(True, f"{self.method} sig, Messages JWT")
        return AuthMode(False, "no signature secret configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        seen = received(body, headers.get("content-type"))
        self._seen = (body, seen)
        if self.secret is None:
            return
        if seen.via == JSON and is_status(seen.obj):
            self._check_jwt(headers, body)
        else:
            self._check_sig(seen)

    def _check_sig(self, seen: Received) -> None:
        assert self.secret is not None
        pairs = signed_pairs(seen)
        names = [name for name, _ in pairs]
        if "sig" not in names:
            raise Rejected(
                401,
                "missing_signature",
                "missing sig: with --vonage-signature-secret set, receipts must be signed "
                "(signed webhooks are enabled by Vonage support)",
            )
        if len(set(names)) != len(names):
            raise Rejected(401, "bad_signature", "a field sent twice: not what Vonage signs")
        given = seen.obj["sig"].strip().lower().encode("ascii", "replace")
        if not hmac.compare_digest(given, signature(self.secret, self.method, pairs).encode()):
            raise Rejected(401, "bad_signature", self._mismatch(pairs, given))
        self._fresh(unix_time(dict(pairs).get("timestamp")), "timestamp")

    def _mismatch(self, pairs: list[tuple[str, str]], given: bytes) -> str:
        """Why a sig does not match, saying so when another method would have matched (the
        dashboard's method and --vonage-signature-method differ): the request is refused
        either way."""
        for method in METHODS:
            if method != self.method and hmac.compare_digest(
                given, signature(self.secret or "", method, pairs).encode()
            ):
                return (
                    f"sig is {method}, not {self.method}: set --vonage-signature-method "
                    f"{method} as the Vonage dashboard's signature method says"
                )
        return (
            f"sig does not match the fields signed by {self.method} with the signature secret: "
            "are --vonage-signature-secret and --vonage-signature-method the dashboard's?"
        )

    def _fresh(self, at_us: int | None, what: str) -> None:
        if at_us is None:
            raise Rejected(401, "bad_signature", f"no {what} to check the signature's age by")
        off = self.clock() - at_us / 1_000_000
        if abs(off) > FRESH_S:
            when = f"{off:.0f} s old" if off > 0 else f"{-off:.0f} s in the future"
            raise Rejected(
                401,
                "stale_signature",
                f"signed {when} ({what}): Vonage's signatures are good for {FRESH_S // 60} "
                "minutes (a replay, or a clock that is off)",
            )

    def _check_jwt(self, headers: Mapping[str, str], body: bytes) -> None:
        assert self.secret is not None
        given = signature_header(headers, "Authorization")
        scheme, _, token = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "bad_signature", "Authorization is not a Bearer JWT")
        jwt = _jwt()
        try:
            claims = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=["HS256"],
                options={"require": ["iat", "payload_hash"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise Rejected(401, "stale_signature", "the JWT has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Rejected(
                401,
                "bad_signature",
                f"the Bearer JWT does not verify with the signature secret ({type(exc).__name__})",
            ) from None
        iat = claims["iat"]
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise Rejected(401, "bad_signature", "the JWT's iat is not a time")
        self._fresh(int(iat * 1_000_000), "the JWT's iat")
        hashed = claims["payload_hash"]
        mine = payload_hash(body).encode()
        if not isinstance(hashed, str) or not hmac.compare_digest(
            hashed.strip().lower().encode("ascii", "replace"), mine
        ):
            raise Rejected(401, "bad_signature", "the JWT's payload_hash is not the body's")

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return False  # a Bearer token or a query says nothing that is Vonage's alone

    def claims_body(self, obj: dict[str, Any]) -> bool:
        receipt = isinstance(obj.get("messageId"), str) and "msisdn" in obj
        return (receipt or isinstance(obj.get("message_uuid"), str)) and isinstance(
            obj.get("status"), str
        )

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        cached, self._seen = self._seen, None
        seen = cached[1] if cached is not None and cached[0] is body else received(body)
        if seen.via == JSON and is_status(seen.obj):
            return [self._status(seen.obj, body, received_at)]
        if is_receipt(seen.obj):
            return [self._receipt(seen, body, received_at)]
        raise malformed(
            "body is not a Vonage delivery receipt (it needs messageId and status) nor a "
            "Messages API status (message_uuid and status)",
            "unknown_envelope",
        )

    def _receipt(self, seen: Received, body: bytes, received_at: int) -> Event:
        f = _Receipt.model_validate(seen.obj)
        status = _title(f.status) or "unknown"
        message_id = f.message_id
        scts = absent_if_blank(f.scts)
        if message_id is not None:
            key = f"vonage|{message_id}|{status}" + (f"|{scts}" if scts else "")
        else:
            key = f"vonage|sha256:{_digest(seen.obj)}"
        occurred = scts_time(scts)
        if occurred is not None and occurred <= received_at < occurred + _MINUTE:
            # The carrier's time is to the minute; a receipt that came within that minute is
            # timed by its arrival, or a delivery could seem to come before its `accepted`.
            occurred = received_at
        if occurred is None:
            occurred = pushed_time(f.message_timestamp) or unix_time(f.timestamp)
        code = absent_if_blank(f.err_code)
        code = None if code is None or _zero(code.strip()) else code.strip()
        payload = (
            decode_payload(body)
            if seen.pairs is None
            else form_payload([*seen.pairs, (VIA, seen.via)])
        )
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=status,
            state=sms_state(status),
            message_id=message_id,
            recipient=f.msisdn,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            time_estimated=occurred is None,
            payload=payload,
            carrier=absent_if_blank(f.network_code),
            error_code=code,
            message_info=MessageInfo(
                total_recipients=1,
                total_cost=f.price,
                currency="EUR" if f.price is not None else None,
                channel="sms",
                group=absent_if_blank(f.client_ref),
            ),
        )

    def _status(self, obj: dict[str, Any], body: bytes, received_at: int) -> Event:
        m = _Status.model_validate(obj)
        status = _title(m.status) or "unknown"
        stamp = obj.get("timestamp")
        stamp_text = stamp[:MAX_FIELD] if isinstance(stamp, str) else ""
        if m.message_uuid is not None:
            key = f"vonage|{m.message_uuid}|{status}|{stamp_text}"
        else:
            key = f"vonage|sha256:{_digest(obj)}"
        occurred = us(m.timestamp)
        error = m.error
        code = message = None
        if error is not None:
            code = absent_if_blank(error.title)
            if code is None and error.type and "#" in error.type:
                code = absent_if_blank(error.type.rsplit("#", 1)[1])
            message = absent_if_blank(error.detail)
        usage = m.usage
        price = usage.price if usage is not None else None
        currency = absent_if_blank(usage.currency) if usage is not None else None
        return Event(
            provider=self.name,
            event_id=derived_id(key),
            dedupe_key=key,
            event_type=status,
            state=message_state(status),
            message_id=m.message_uuid,
            recipient=m.to,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            time_estimated=occurred is None,
            payload=decode_payload(body),
            carrier=absent_if_blank(m.destination.network_code) if m.destination else None,
            error_code=code.strip() if code else None,
            error_message=message,
            message_info=MessageInfo(
                total_recipients=1,
                total_cost=price,
                currency=currency or ("EUR" if price is not None else None),
                channel=absent_if_blank(m.channel),
                group=absent_if_blank(m.client_ref),
            ),
        )


def _digest(obj: Mapping[str, Any]) -> str:
    """A body with no id, by its fields less the signature's (a retry is signed anew)."""
    kept = {k: v for k, v in obj.items() if k not in SIGNATURE_FIELDS}
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
