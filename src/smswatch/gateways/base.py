"""The interface every gateway adapter implements, and the helpers they share.

An adapter turns the raw bytes of one webhook request into normalized `Event`s. It also says
whether the request is authentic (on the raw bytes, before anything is parsed) and whether a
JSON body has its envelope shape (for `POST /webhooks`, which detects the gateway). Most gateways
post JSON; one that posts forms (`application/x-www-form-urlencoded`, Twilio) says so by its
`body_format`, and one whose check needs the URL it called (Twilio signs it, Africa's Talking
carries a token in its query) says so by `checks_url`: the listener then takes form bodies on
its route and hands `check_auth` the public URL of the request. A gateway whose account
chooses how its fields come (Vonage: a GET with a query, a form or JSON) says
`QUERY_FORM_JSON`: its route also takes GET, and a GET's query is handed to the adapter as its
body, `?` first (`QUERY_MARK`), so that one `bytes` says both what the fields are and that they
came in the URL; a forward or a simulated post of such a body goes as a GET again (`outgoing`).

Parsing policy: the *envelope* is the contract. A body that is not a JSON object with the
gateway's envelope is rejected (400). Inside a valid envelope we are lenient: an unknown event
type or a data field of an unexpected type is stored rather than rejected, because Lisoloo does
not retry a 4xx and a rejected event is lost for good. Every normalized field is bounded and
made storable (finite numbers, 64-bit integers), so no body can poison a database batch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlencode, urlsplit

import pydantic_core
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from smswatch.config import Credentials
from smswatch.core.domain import Event, State
from smswatch.core.rejected import Rejected
from smswatch.timefmt import to_us

if TYPE_CHECKING:
    from smswatch.gateways.sandboxing import GatewaySandbox
    from smswatch.reconcile.api import GatewayApi

# Normalized string columns are bounded; the full value stays in the stored payload.
MAX_FIELD = 512
_INT64 = 2**63 - 1
_ID_NAMESPACE = uuid.UUID("6c1f6bd0-8f1e-4f43-9a57-1c1b2f2d5e7a")
# A gateway's webhook bodies: JSON (Lisoloo, YeboLink), an HTML form (Twilio), or whichever of
# a GET's query, a form or JSON its account is set to (Vonage), told apart per request.
BodyFormat = Literal["json", "form", "query_form_json"]
JSON: BodyFormat = "json"
FORM: BodyFormat = "form"
QUERY_FORM_JSON: BodyFormat = "query_form_json"
# The first byte of a body that is a GET's query (see the module docstring): no JSON body starts
# with it, and no form body does either (urlencode escapes it).
QUERY_MARK = b"?"
# Fields of one form body at most: Twilio's status callbacks carry about twenty; a body of
# thousands of `&`s is refused before it costs a list of thousands of pairs.
MAX_FORM_FIELDS = 256


def malformed(detail: str, code: str = "malformed") -> Rejected:
    return Rejected(400, code, detail)


@dataclass(frozen=True, slots=True)
class RefusedPart:
    """One report of a batch that is not a report (Infobip's `results[3]`): quarantined on its
    own, with its bytes, while the batch's other reports are stored."""

    rejected: Rejected  # what the listener would have answered it alone (400)
    body: bytes  # the part as received, re-encoded as JSON


class Batch(list[Event]):
    """What `parse` returns for a post that carries several reports (Infobip's `results[]`):
    the events of the valid ones, which are committed together before the 2xx, and the parts
    that were malformed (`refused`), which the listener quarantines without refusing the post:
    a gateway that gets a 4xx for the whole batch would drop its valid neighbours with it."""

    def __init__(self, events: list[Event], refused: tuple[RefusedPart, ...] = ()) -> None:
        super().__init__(events)
        self.refused = refused


@dataclass(frozen=True)
class AuthMode:
    """How a gateway's requests are checked, for the status bar and `serve`'s banner."""

    verified: bool  # requests are authenticated
    label: str  # e.g. "Basic auth (user ops)", "HMAC-SHA256 signature", "open (loopback only)"


class Provider(Protocol):
    name: ClassVar[str]
    title: ClassVar[str]
    # What its route takes: JSON bodies (415 for a form), forms (415 for JSON), or either and
    # GET with a query (QUERY_FORM_JSON: the query comes as the body, `?` first).
    body_format: ClassVar[BodyFormat]
    # Its check needs the URL it called (a signature over it, a token in its query):
    # `check_auth` is given the request's public URL.
    checks_url: ClassVar[bool]

    def auth_mode(self) -> AuthMode: ...

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        """Raise `Rejected(401, ...)` unless the request is authentic. Constant-time. `url`:
        the URL the gateway called (`--public-url` + path and query, else scheme + Host +
        path and query), given to a gateway that `checks_url`, None to the others."""

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        """True if the headers alone say the request comes from this gateway."""

    def claims_body(self, obj: dict[str, Any]) -> bool:
        """True if a parsed JSON object has this gateway's envelope shape."""

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        """Validate the body and normalize it. Raise `Rejected(400, ...)` if it is not ours."""


@dataclass(frozen=True)
class Resigned:
    """How a forward of one of a gateway's webhooks authenticates to the team's app: as the
    gateway's own post would have (Basic auth, a signature header over the body)."""

    basic_auth: tuple[str, str] | None = None  # unless the target's URL carries its own
    headers: Mapping[str, str] = field(default_factory=dict)
    # The body to send instead, for a gateway whose signature rides in the fields themselves
    # (Vonage's `sig`, `timestamp`, `nonce`): freshly signed. None: the body as it was given.
    body: bytes | None = None


def outgoing(url: str, body: bytes) -> tuple[str, str, bytes | None]:
    """How a post of a gateway's body to `url` goes: (method, URL, data). A query body
    (`QUERY_MARK` first) is a GET with its fields added to the URL's query and no body, as the
    gateway sent it; anything else is a POST of the body."""
    if not body.startswith(QUERY_MARK):
        return "POST", url, body
    # As sent when it came from a query (urlencode's output is all safe); a byte a URL cannot
    # hold (a hand-written replay line) is escaped rather than sent raw.
    query = quote_from_bytes(body[len(QUERY_MARK) :], safe="&=+%-._~!$'()*,;:@/?")
    if not query:
        return "GET", url, None
    return "GET", url + ("&" if urlsplit(url).query else "?") + query, None


class SimPlanner(Protocol):
    """What a gateway's simulator profile plans its traffic on (`smswatch.devtools.simulate`):
    one seeded generator for every draw, the compressed clock, and the plan it adds to."""

    rng: random.Random

    @property
    def recipients(self) -> int:
        """Recipients of one send."""

    @property
    def fail_rate(self) -> float:
        """Share of recipients that fail."""

    def uuid4(self) -> str:
        """A random UUID drawn from `rng`."""

    def stamp(self, sim_s: float) -> str:
        """A simulated time as the gateway writes a timestamp."""

    def handset_delay(self, pace: float = 1.0) -> float:
        """Seconds from sent to the handset's receipt."""

    def pick(self, table: tuple[Any, ...]) -> Any:
        """A row of `table`, drawn by the weight each row ends with."""

    def emit(
        self,
        at: float,
        provider: str,
        body: dict[str, Any],
        label: str,
        batch: tuple[str, int] | None = None,
    ) -> int:
        """Plan one webhook at sim time `at`; its index, for `close`. `batch`, for a gateway
        that posts its reports in batches (Infobip): (the list key, the most a post holds);
        `body` is then one report, posted with the others ready at about the same time."""

    def close(
        self,
        how: tuple[Any, ...],
        marks: list[tuple[int, float, str]],
        created: float,
        total: int = 1,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Settle one recipient: its truth (`how`, the leading fields of `Truth`) and its
        events (`marks`: index, sim time, status)."""


class Gateway(Protocol):
    """Everything smswatch knows about one gateway, behind one name. The engine, the forwarder,
    the reconciler and the dev tools reach a gateway only through this and the registry
    (`smswatch.gateways.registry`); its error catalogue is the `errors.toml` of its package."""

    name: str  # the provider name in the store, the exports and `/webhooks/<name>`
    title: str  # how a screen names it
    adapter: type[Provider]  # its webhook adapter's class
    # The top-level key of its JSON envelope: which gateway a recorded body came from.
    envelope_key: str
    # How long a message must have been quiet before its status API is asked about it (µs).
    reconcile_quiet_us: int
    # Its webhook credential's setting in core.credentials.GATEWAY_CREDENTIALS (found in
    # `Credentials.tokens`); None for the seeds, whose credentials are Credentials' own fields.
    credential: str | None

    def provider(self, credentials: Credentials) -> Provider:
        """Its webhook adapter (verify + parse), with the credential it checks requests by."""

    def status_api(self) -> type[GatewayApi] | None:
        """Its status-API client, None if it has none. Imported on demand: the client loads
        aiohttp, which the listener does not need."""

    def simulate(self, planner: SimPlanner, start: float) -> None:
        """Its simulator profile: plan one send (with its recipients' truth) from `start`."""

    def sandbox(self) -> type[GatewaySandbox] | None:
        """Its status API as the sandbox serves it, None if it has none. Imported on demand,
        like `status_api`."""

    def resign(self, body: bytes, credentials: Credentials, url: str) -> Resigned:
        """How a post of `body` to `url` as this gateway is authenticated, from the poster's
        credentials (the forwarder's `--forward-basic-auth` / `--forward-secret` and the
        gateways' tokens, the simulator's `--basic-auth` / `--yebolink-secret` / ...): the
        gateway takes the one its own posts carry, and signs over the URL if its posts do."""

    def post_body(self, payload: str) -> bytes:
        """The bytes of a post of a stored payload (the JSON text of `Event.payload`, or a
        planned body as JSON): as this gateway posts it, a form for a gateway that posts forms,
        `QUERY_MARK` + a query for a request that came as a GET (sent as one: `outgoing`)."""


def credentials_of(gateway: Gateway) -> tuple[str, ...]:
    """Every webhook credential setting a gateway takes: its `credential`, and the others it
    takes instead (`also_credentials`: Sinch's Basic auth beside its HMAC secret), any one of
    which makes its route safe on a public bind."""
    main = () if gateway.credential is None else (gateway.credential,)
    return main + tuple(getattr(gateway, "also_credentials", ()))


class BasicAuth:
    """HTTP Basic auth as a gateway's webhooks carry it (Lisoloo's, Infobip's), checked on the
    raw header bytes in constant time: both halves are always compared, so timing does not tell
    which one was wrong."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._user = user.encode()
        self._password = password.encode()

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise `Rejected(401, "unauthorized", ...)` unless the request carries these
        credentials (the listener then adds `WWW-Authenticate`)."""
        header = headers.get("Authorization")
        if header is None:
            raise Rejected(401, "unauthorized", "missing Basic auth (Authorization header)")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise Rejected(401, "unauthorized", f"Authorization scheme is not Basic: {scheme!r}")
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(401, "unauthorized", "Basic auth token is not base64") from None
        user, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        if not (sep and user_ok and password_ok):
            raise Rejected(401, "unauthorized", "wrong Basic auth username or password")


def signature_header(headers: Mapping[str, str], name: str) -> str:
    """The signature a gateway's request carries in header `name`; without it, 401."""
    given = headers.get(name)
    if given is None:
        raise Rejected(401, "missing_signature", f"missing {name} header")
    return given


# --- lenient field types: a wrong type becomes None instead of failing the whole event -------


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value[:MAX_FIELD]
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) <= _INT64:
        return str(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        value = float(value) if abs(value) <= _INT64 else math.inf
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def number(value: Any) -> float | None:
    """A value read as the lenient `Number` reads it (a JSON number or a numeric string; else
    None): for a fast path that keeps a field as it came, to read it where it is used."""
    return _number(value)


def _integer(value: Any) -> int | None:
    # An integer is kept exactly: through a float, those just under 2**63 rounded up past the
    # bound and were dropped, where the fast path (FastInt) keeps them.
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) <= _INT64 else None
    number = _number(value)
    if number is None or not number.is_integer() or abs(number) > _INT64:
        return None
    return int(number)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


_DATETIME = TypeAdapter(datetime)
# The shape gateways send (RFC 3339 with a zone), which the standard library reads the same way
# pydantic does, ten times faster; anything else goes to pydantic.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


def _time(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str) and _RFC3339.fullmatch(value):
            return to_us(datetime.fromisoformat(value))
        return to_us(_DATETIME.validate_python(value))
    except (ValidationError, OverflowError, ValueError):
        return None


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = pydantic_core.to_json(value, inf_nan_mode="null").decode()
    except (pydantic_core.PydanticSerializationError, ValueError):
        return None
    return text if len(text) <= 2048 else text[:2047] + "…"


def mapped_state(table: Mapping[str, State], status: str | None) -> State:
    """Our state for a gateway's status word by its table (lower-case keys): case and
    surrounding blanks do not matter; absent or not in the table is `unknown`, stored and
    acknowledged (a status of tomorrow is never dropped)."""
    return table.get(status.strip().lower(), State.UNKNOWN) if status else State.UNKNOWN


def absent_if_blank(value: str | None) -> str | None:
    """The one rule for identifiers from a webhook (event id, message id, recipient): empty or
    all whitespace means absent. An absent event id is derived from the body, an absent message
    id is resolved from the recipient, and an event with no recipient is message-level; so a
    blank id never becomes a message or recipient of its own, and the answer, the store and
    every counter name the same thing."""
    if value is None or not value.strip():
        return None
    return value


Text = Annotated[str | None, BeforeValidator(_text)]
# An identifier: lenient like Text, and blank is absent.
Identifier = Annotated[str | None, BeforeValidator(_text), AfterValidator(absent_if_blank)]
Number = Annotated[float | None, BeforeValidator(_number)]
Integer = Annotated[int | None, BeforeValidator(_integer)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Time = Annotated[int | None, BeforeValidator(_time)]
JsonText = Annotated[str | None, BeforeValidator(json_text)]


# --- the fast path: the same fields as plain types, so pydantic-core validates a well-formed
# body without calling back into Python. Each admits only values the lenient types above would
# have kept as they are, so an adapter may try it first and fall back to the lenient model when
# it fails: the result is the same either way (datetimes still need `us()`, ids `absent_if_blank`).

FastText = Annotated[str, StringConstraints(max_length=MAX_FIELD)] | None
FastInt = Annotated[int, Field(ge=-_INT64, le=_INT64)] | None
# Strict floats take JSON integers as they are; the lenient type turns integers past 64 bits
# into None, hence the bound, open at 2**63: integers just below it round up to it as floats,
# and go to the lenient type, which keeps them.
FastFloat = Annotated[float, Field(gt=-(2.0**63), lt=2.0**63, allow_inf_nan=False)] | None
FastTime = datetime | None


def us(value: int | datetime | None) -> int | None:
    """A time from either path, as microseconds since the epoch."""
    if value is None or type(value) is int:
        return value
    return to_us(value)  # type: ignore[arg-type]


def strict_time(value: Any) -> int | None:
    """An envelope timestamp: absent is fine, present but unreadable is a malformed envelope."""
    if value is None:
        return None
    us = _time(value)
    if us is None:
        raise ValueError("timestamp is not an ISO 8601 date-time")
    return us


EnvelopeTime = Annotated[int | None, BeforeValidator(strict_time)]


# --- shared steps ------------------------------------------------------------------------------


def parse_object(body: bytes) -> dict[str, Any]:
    """Parse a body that must be one JSON object (used to detect the gateway)."""
    try:
        obj = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise malformed(f"body is not valid JSON: {exc}", "malformed_json") from exc
    if not isinstance(obj, dict):
        raise malformed("body is JSON but not an object", "unknown_envelope")
    return obj


def reject_non_json_numbers(body: bytes) -> None:
    """NaN and Infinity are not JSON, but the fast validator accepts them; check the rare body
    that contains those letters with the strict parser."""
    if b"NaN" in body or b"Infinity" in body:
        parse_object(body)


def validation_detail(exc: ValidationError, tags: Collection[str] = ()) -> Rejected:
    """A 400 that names the first problem. `tags` are discriminated-union tags, which pydantic
    puts in the error location but which are not fields of the body."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if str(p) not in tags)
    if first["type"] == "json_invalid":
        return malformed(f"body is not valid JSON: {first['msg']}", "malformed_json")
    if first["type"] in ("model_type", "model_attributes_type") and not where:
        return malformed("body is JSON but not an object", "unknown_envelope")
    return malformed(
        f"invalid envelope field {where or 'body'}: {first['msg']}", "invalid_envelope"
    )


def derived_id(*parts: str) -> str:
    """A stable event id for events that carry none: the same parts always give the same id.
    It is `str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))` (tests/test_small_parts.py holds
    the two equal), written from the SHA-1 directly: building the UUID object cost more than the
    hash, on every callback of a gateway that sends no event id (Twilio, Vonage)."""
    h = hashlib.sha1(_ID_PREFIX + "\x1f".join(parts).encode()).hexdigest()
    # RFC 4122: version 5 in the high nibble of octet 6, the variant (10xx) in that of octet 8.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_ID_PREFIX = _ID_NAMESPACE.bytes
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def decode_payload(body: bytes) -> str:
    # Validation already proved the body is UTF-8 JSON.
    return body.decode("utf-8")


# --- form bodies -------------------------------------------------------------------------------


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, as the standard
    library's `parse_qsl` reads it strictly: a field without `=` (or an empty one) is a
    malformed body, not a field named after it; UTF-8 strictly (Twilio sends UTF-8; anything
    else would be stored as guesses); at most MAX_FORM_FIELDS. Raises `Rejected(400)`.

    The split on `&` and `=` is done here and only the fields that are percent- or
    plus-encoded are decoded (Twilio's: two or three in twenty): `parse_qsl`
    decodes every name and value, which made it most of a callback's CPU.
    tests/test_small_parts.py checks the two agree on every body."""
    try:
        text = body.decode("utf-8")  # percent-encoded ASCII as sent, raw UTF-8 as some send
        if not text:
            return []
        if text.count("&") >= MAX_FORM_FIELDS:
            raise ValueError("Max number of fields exceeded")
        fields = []
        for piece in text.split("&"):
            name, sep, value = piece.partition("=")
            if not sep:
                raise ValueError(f"bad query field: {piece!r}")
            if "%" in name or "+" in name:
                name = _unquote(name)
            if "%" in value or "+" in value:
                value = _unquote(value)
            fields.append((name, value))
        return fields
    except ValueError as exc:  # UnicodeDecodeError is one
        raise malformed(f"body is not a URL-encoded form: {exc}", "malformed_form") from None


def _unquote(text: str) -> str:
    """`unquote_plus(text, errors="strict")`, at half its cost: the bytes in one go, then one
    strict UTF-8 decode (a raw non-ASCII character can never complete a percent-encoded
    sequence, so the two read every text alike; the property test holds them to it)."""
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")


def form_payload(fields: list[tuple[str, str]]) -> str:
    """A form as the JSON object the store keeps as an event's payload (every export, screen and
    campaign rule reads payloads as JSON): the fields in the order they came, a field sent
    more than once as the list of its values."""
    obj: dict[str, str | list[str]] = {}
    for name, value in fields:
        seen = obj.get(name)
        if seen is None:
            obj[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            obj[name] = [seen, value]
    # The values are strictly decoded UTF-8 (no lone surrogates): pydantic-core writes them as
    # json.dumps(ensure_ascii=False) does, several times faster.
    return pydantic_core.to_json(obj).decode()


def form_body(payload: str) -> bytes:
    """A payload kept by `form_payload` as the form it came as (for forwards and replays: the
    same fields in the same order; the percent-encoding may differ, which no signature covers,
    since signatures are over the decoded fields)."""
    obj = json.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError("a form's payload is a JSON object")
    pairs = [
        (str(name), str(v))
        for name, value in obj.items()
        for v in (value if isinstance(value, list) else [value])
    ]
    return urlencode(pairs).encode("ascii")
