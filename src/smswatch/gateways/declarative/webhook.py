"""The webhook adapter of a gateway described in a file: its verifier, by name, and a parser that
reads each field of a report where the description says it is.

Parsing policy, as the built-ins': a body that is not the described format, a batch path that
is no list, or a report without its status (a path that never matches) is refused with a 400
and quarantined; inside a report, a field of an unexpected type is absent, not an error, and a
status word the table does not know is stored as `unknown` and acknowledged. Every normalized
field is bounded as base's types bound it.

Identity: the event id at `report.event_id` when present (dedupe key NAME|ID; an id from
outside the report, a `^.` path, is the post's, so NAME|ID|RECIPIENT); else, when the
report has a message id, the `report.dedupe` fields' values (NAME|v1|v2..., absent ones left
out) and an id derived from that key; else the digest of the report's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import pydantic_core

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways import verifiers
from smswatch.gateways.base import (
    FORM,
    JSON,
    QUERY_FORM_JSON,
    QUERY_MARK,
    AuthMode,
    Batch,
    BodyFormat,
    RefusedPart,
    _flag,
    _integer,
    _number,
    _text,
    _time,
    absent_if_blank,
    body_digest,
    derived_id,
    form_payload,
    malformed,
    mapped_state,
    parse_form,
    parse_object,
)
from smswatch.gateways.declarative.spec import MAX_BATCH, GatewaySpec, Path_
from smswatch.timefmt import to_us

BODY_FORMATS: dict[str, BodyFormat] = {"json": JSON, "form": FORM, "query": QUERY_FORM_JSON}
# How a stored query or form of a `query` gateway came, kept in its payload so that a forward
# or a replay sends it the same way (as Vonage's adapter keeps it).
VIA = "smswatch:via"
_MISSING = object()


def lookup(root: Any, item: Any, path: Path_) -> Any:
    """The value at `path` in a report (`item`), or in the body (`root`) for a `^` path;
    `_MISSING` when any step is absent or of the wrong kind. Bounded by the path's length."""
    value = root if path[0] == "^" else item
    for part in path[1:] if path[0] == "^" else path:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and len(part) < 7:
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


class Fields:
    """One report's fields by the spec's paths: a JSON object, or a form's or query's fields
    (each path names one field, its first value)."""

    def __init__(self, spec: GatewaySpec, root: Any, item: Any, flat: bool = False) -> None:
        self.spec = spec
        self.root = root
        self.item = item
        # A form's or a query's fields: a path is one field's name, dots and all.
        self.flat = flat

    def at(self, path: Path_) -> Any:
        if self.flat:
            return self.item.get(".".join(path), _MISSING)
        return lookup(self.root, self.item, path)

    def raw(self, name: str) -> Any:
        return self.found(name)[0]

    def found(self, name: str) -> tuple[Any, Path_ | None]:
        """The first present value of a field, and the path it was at."""
        for path in self.spec.paths.get(name, ()):
            value = self.at(path)
            if value is not _MISSING and value is not None:
                return value, path
        return None, None

    def text(self, name: str) -> str | None:
        return absent_if_blank(_text(self.raw(name)))


def _flat(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)  # a repeated field: its first value
    return fields


class DeclaredProvider:
    """The adapter of one described gateway. A class per gateway (`adapter_class`) carries its
    name, title and body format as the Provider protocol's class attributes."""

    name: ClassVar[str]
    title: ClassVar[str]
    body_format: ClassVar[BodyFormat]
    checks_url: ClassVar[bool]
    spec: ClassVar[GatewaySpec]

    def __init__(self) -> None:
        spec = self.spec
        params = spec.verify.params
        method = spec.verify.method
        self._check: Any = None
        if method == "url-token":
            self._token = params["secret"].encode("utf-8", "surrogateescape")
        elif method == "basic-auth":
            self._check = verifiers.BasicAuth(params["user"], params["secret"])
        elif method == "hmac":
            self._check = verifiers.HmacCheck(
                params["secret"],
                params["header"],
                params.get("digest", "sha256"),
                params.get("encoding", "hex"),
                params.get("prefix", ""),
            )
        elif method == "ed25519":
            self._check = verifiers.Ed25519Check(
                params["public_key"],
                params["header"],
                params.get("timestamp_header"),
                params.get("separator", "|"),
                params.get("tolerance_s", 300.0),
            )
        elif method == "jwt-hs256":
            self._check = verifiers.JwtCheck(
                params["secret"],
                params.get("header", "MessageBird-Signature-JWT"),
                params.get("issuer", "MessageBird"),
                params.get("url_claim", "url_hash"),
                params.get("body_claim", "payload_hash"),
                params.get("leeway_s", 1.0),
            )

    # --- verification ----------------------------------------------------------------------

    def auth_mode(self) -> AuthMode:
        return AuthMode(self.spec.verify.method != "none", describe_verify(self.spec))

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        method = self.spec.verify.method
        if method == "none":
            return
        if method == "url-token":
            param = self.spec.verify.params.get("param", "token")
            verifiers.check_query_token(url, param, self._token)
        elif method == "basic-auth":
            self._check.check(headers)
        elif method == "hmac":
            if self.spec.verify.params.get("over", "body") == "body":
                self._check.check(headers.get(self._check.header), [body], "the body")
            else:
                from smswatch.gateways.twilio.webhook import url_variants

                tail = verifiers.sorted_params(self.signed_pairs(body)).encode()
                urls = url_variants(url or "")
                messages = [u.encode("utf-8", "surrogateescape") + tail for u in urls]
                self._check.check(
                    headers.get(self._check.header), messages, "the URL and its parameters"
                )
        elif method == "ed25519":
            self._check.check(headers, b"" if body.startswith(QUERY_MARK) else body)
        elif method == "jwt-hs256":
            # The URL exactly as called, as MessageBird's RequestValidator hashes it.
            raw = b"" if body.startswith(QUERY_MARK) else body
            self._check.check(headers, raw, [url or ""])

    def signed_pairs(self, body: bytes) -> list[tuple[str, str]]:
        """The parameters an HMAC over the URL covers after it: a POSTed form's fields (a GET's
        are in the URL already, and a JSON body has none)."""
        if body.startswith(QUERY_MARK) or body.lstrip()[:1] in (b"{", b"["):
            return []
        return parse_form(body)

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return False  # a gateway from a file is reached at its own route only

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return False

    # --- parsing -----------------------------------------------------------------------------

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        spec = self.spec
        root: Any
        if spec.body == "form" or (
            spec.body == "query" and (body.startswith(QUERY_MARK) or not _json_like(body))
        ):
            via = "query" if body.startswith(QUERY_MARK) else "form"
            pairs = parse_form(body[1:] if via == "query" else body)
            if via == "query" and spec.verify.method == "url-token":
                # The shared secret rode in the query: it is no field, and never stored.
                param = spec.verify.params.get("param", "token")
                pairs = [(k, v) for k, v in pairs if k != param]
            root = _flat(pairs)
            extra = [(VIA, via)] if spec.body == "query" else []
            payload = form_payload([*pairs, *extra])
            return [self.event(root, root, payload, body, received_at, flat=True)]
        root = parse_object(body) if spec.batch is None else _json_value(body)
        if spec.batch is None:
            return [self.event(root, root, body.decode("utf-8"), body, received_at)]
        reports = lookup(root, root, spec.batch)
        shown = ".".join(spec.batch)
        if not isinstance(reports, list):
            raise malformed(f"the body has no list of reports at {shown}", "invalid_envelope")
        if not reports:
            raise malformed(f"the batch has no reports ({shown} is empty)", "invalid_envelope")
        if len(reports) > MAX_BATCH:
            raise malformed(
                f"the batch has {len(reports)} reports; {MAX_BATCH} at most", "invalid_envelope"
            )
        events: list[Event] = []
        refused: list[RefusedPart] = []
        for index, item in enumerate(reports):
            part = pydantic_core.to_json(item).decode()
            try:
                if not isinstance(item, dict):
                    raise malformed("a report is a JSON object", "malformed_report")
                events.append(self.event(root, item, part, part.encode(), received_at))
            except Rejected as exc:
                why = Rejected(400, "malformed_report", f"{shown}[{index}]: {exc.detail}")
                refused.append(RefusedPart(why, part.encode()))
        if not events:
            first = refused[0].rejected
            raise malformed(
                f"no report of the batch is valid ({len(refused)} refused; {first.detail})",
                "invalid_envelope",
            )
        return Batch(events, tuple(refused))

    def event(
        self, root: Any, item: Any, payload: str, raw: bytes, received_at: int, flat: bool = False
    ) -> Event:
        spec = self.spec
        f = Fields(spec, root, item, flat)
        for path in spec.required:
            if f.at(path) in (_MISSING, None):
                raise malformed(
                    f"not a {spec.title} report: it has no {'.'.join(path)}", "unknown_envelope"
                )
        status_value = f.raw("status")
        status = _text(status_value)
        if status is None or not status.strip():
            where = " or ".join(".".join(p) for p in spec.paths["status"])
            raise malformed(f"not a {spec.title} report: no status at {where}", "invalid_envelope")
        status = status[:128]
        state = mapped_state(spec.statuses, status)
        message_id = f.text("message_id")
        recipient = f.text("recipient")
        time_raw = f.raw("time")
        occurred = read_time(time_raw, spec.time_format)
        given, id_path = f.found("event_id")
        given_id = absent_if_blank(_text(given))
        values = {
            "message_id": message_id,
            "recipient": recipient,
            "status": status,
            # As written; a time written as a float (no text of ours) by its microseconds.
            "time": (_text(time_raw) or str(occurred)) if occurred is not None else None,
            "error_code": f.text("error_code"),
        }
        if given_id and id_path is not None and id_path[0] == "^":
            # The post's id, shared by every report of the batch (Telnyx's `data.id` over its
            # `to[]`): each recipient's event is that id and the recipient.
            key = f"{self.name}|{given_id}|{recipient or ''}"
            event_id = derived_id(key)
        elif given_id:
            event_id, key = given_id, f"{self.name}|{given_id}"
        elif message_id is not None:
            key = "|".join([self.name, *(v for d in spec.dedupe if (v := values[d]) is not None)])
            event_id = derived_id(key)
        else:
            digest = body_digest(raw)
            event_id, key = derived_id(self.name, digest), f"{self.name}|sha256:{digest}"
        failed = state is State.FAILED
        errors = failed or not spec.errors_only_when_failed
        return Event(
            provider=self.name,
            event_id=event_id,
            dedupe_key=key,
            event_type=status,
            state=state,
            message_id=message_id,
            recipient=recipient,
            occurred_at=received_at if occurred is None else occurred,
            received_at=received_at,
            payload=payload,
            time_estimated=occurred is None,
            carrier=f.text("carrier"),
            error_code=values["error_code"] if errors else None,
            error_message=f.text("error_message") if errors else None,
            retryable=_flag(f.raw("retryable")) if errors else None,
            message_info=self.message_info(f),
        )

    def message_info(self, f: Fields) -> MessageInfo | None:
        spec = self.spec
        total = _integer(f.raw("total_recipients"))
        messages = _integer(f.raw("total_messages"))
        cost = _number(f.raw("cost"))
        currency = f.text("currency")
        group = f.text("group")
        per_message = spec.recipients_per_message
        if total is None and per_message is not None:
            total = per_message
        if all(v is None for v in (total, messages, cost, currency, group)):
            return None
        return MessageInfo(
            total_recipients=total,
            total_messages=messages,
            total_cost=cost,
            currency=currency,
            channel=spec.channel,
            group=group,
        )


def _json_like(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def _json_value(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise malformed(f"body is not valid JSON: {exc}", "malformed_json") from None


def read_time(value: Any, time_format: str) -> int | None:
    """A report's time in microseconds by the spec's format; None when absent or unreadable
    (the receive time is then used, marked estimated)."""
    if value is None or isinstance(value, bool):
        return None
    if time_format == "iso":
        return _time(value)
    if time_format in ("unix", "unix_ms"):
        number = _number(value)
        if number is None:
            return None
        seconds = number / 1000 if time_format == "unix_ms" else number
        if not math.isfinite(seconds) or not 0 <= seconds < 253_402_300_800:  # year 10000
            return None
        return round(seconds * 1_000_000)
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        at = datetime.strptime(value, time_format)
    except ValueError:
        return None
    return to_us(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def describe_verify(spec: GatewaySpec) -> str:
    """How a described gateway's requests are checked, in a few words (the status bar's, the
    banner's, `smswatch gateways`')."""
    params = spec.verify.params
    method = spec.verify.method
    if method == "none":
        return "no verification (its file says none)"
    if method == "url-token":
        return f"token in the URL (?{params.get('param', 'token')}=)"
    if method == "basic-auth":
        return f"Basic auth (user {params['user']})"
    if method == "hmac":
        digest = params.get("digest", "sha256").upper().replace("SHA", "SHA-")
        over = "the URL and parameters" if params.get("over") == "url-and-params" else "the body"
        return f"HMAC-{digest} of {over} ({params['header']})"
    if method == "ed25519":
        return f"Ed25519 signature ({params['header']})"
    return f"JWT HS256 ({params.get('header', 'MessageBird-Signature-JWT')})"


def adapter_class(spec: GatewaySpec) -> type[DeclaredProvider]:
    """The adapter class of one described gateway."""
    return type(
        f"Declared_{spec.name}",
        (DeclaredProvider,),
        {
            "name": spec.name,
            "title": spec.title,
            "body_format": BODY_FORMATS[spec.body],
            # Its check needs the URL called: a token in it, a signature over it.
            "checks_url": spec.verify.method in ("url-token", "jwt-hs256")
            or spec.verify.params.get("over") == "url-and-params",
            "spec": spec,
        },
    )
