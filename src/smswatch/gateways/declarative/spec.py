"""A gateway described in a TOML file (`--gateway-file`), read and checked once at start.

The format (every key is documented in docs/gateways.md, "Your own gateway"):

    name = "acme"                   # its provider name and route, /webhooks/acme
    title = "Acme SMS"              # how screens name it (default: the name)
    body = "json"                   # json | form | query (a GET's query, a form or JSON)

    [report]                        # where each field of one report is
    batch = "results"               # a list of reports (absent: the body is one report)
    message_id = "messageId"        # a dotted path, or a list of them (the first present wins)
    status = "status.name"          # required: a report without it is refused (400)
    ...

    [status]                        # the gateway's status words onto our states
    DELIVRD = "delivered"

    [verify]                        # one of the verifiers, by name, with its parameters
    method = "hmac"
    secret_env = "ACME_SECRET"

A file is hostile input until checked: it is read only up to MAX_FILE bytes, its nesting, its
paths' lengths and counts and its table's size are capped, and every key is known. A problem is
refused with the file, the line and the reason (`SpecError`), before anything listens.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smswatch.core.domain import State
from smswatch.gateways.verifiers import DIGESTS, ENCODINGS

MAX_FILE = 64 * 1024  # bytes: a description is a page, not a data set
MAX_PATH = 200  # characters of one path
MAX_SEGMENTS = 16  # parts of one dotted path
MAX_ALTERNATIVES = 8  # paths of one field
MAX_STATUSES = 256  # rows of the status table
MAX_STATUS_WORD = 128
MAX_DEPTH = 3  # the format's own: a table of tables at most ([verify], [status])

NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A field's name in a form or a query is taken as it is, dots and brackets included.
_SEGMENT = re.compile(r"[^.\s]{1,128}")
BODIES = ("json", "form", "query")
TIME_FORMATS = ("iso", "unix", "unix_ms")
# The fields of one report a path can name (the Event's and MessageInfo's that a webhook says).
FIELDS = (
    "message_id",
    "recipient",
    "status",
    "time",
    "error_code",
    "error_message",
    "event_id",
    "carrier",
    "group",
    "cost",
    "currency",
    "total_recipients",
    "total_messages",
    "retryable",
)
DEDUPE_FIELDS = ("message_id", "recipient", "status", "time", "error_code")
METHODS = ("none", "url-token", "basic-auth", "hmac", "ed25519", "jwt-hs256")
# Each verifier's parameters: name -> required. `secret` / `secret_env` are one parameter.
_PARAMS: dict[str, dict[str, bool]] = {
    "none": {},
    "url-token": {"param": False, "secret": True},
    "basic-auth": {"user": True, "secret": True},
    "hmac": {
        "header": True,
        "over": False,
        "digest": False,
        "encoding": False,
        "prefix": False,
        "secret": True,
    },
    "ed25519": {
        "header": True,
        "public_key": True,
        "timestamp_header": False,
        "separator": False,
        "tolerance_s": False,
    },
    "jwt-hs256": {
        "header": False,
        "issuer": False,
        "url_claim": False,
        "body_claim": False,
        "leeway_s": False,
        "secret": True,
    },
}
_SECRETS = ("secret", "public_key")  # parameters that may come from the environment (`_env`)
_TOP = {"name", "title", "body", "console", "report", "status", "verify"}
_REPORT = {*FIELDS, "batch", "time_format", "dedupe", "required", "errors_only_when_failed"}
_REPORT |= {"recipients_per_message", "channel"}
MAX_BATCH = 1000  # reports in one post


class SpecError(ValueError):
    """A gateway file that cannot be used: `str()` is `FILE:LINE: reason`."""


Path_ = tuple[str, ...]  # one dotted path, split; a leading "^" means the body's root


@dataclass(frozen=True)
class Verify:
    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    # The parameters that were read from the environment, by parameter (for the listing:
    # where the secret comes from, never what it is).
    from_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewaySpec:
    """One gateway from a file, checked: everything its adapter needs, as plain values."""

    name: str
    title: str
    body: str  # json | form | query
    paths: dict[str, tuple[Path_, ...]]  # a field -> its alternatives, in order
    statuses: dict[str, State]  # lower-case status word -> our state
    verify: Verify
    source: Path | None = None
    batch: Path_ | None = None
    time_format: str = "iso"
    dedupe: tuple[str, ...] = ("message_id", "recipient", "status", "time")
    required: tuple[Path_, ...] = ()
    errors_only_when_failed: bool = False
    recipients_per_message: int | None = None
    channel: str | None = "sms"
    console: str | None = None  # what to set in the gateway's console, for `smswatch gateways`


def load_file(path: Path) -> GatewaySpec:
    """Read and check one gateway file. Raises SpecError naming the file and the line."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE:
        raise SpecError(f"{path}:1: over {MAX_FILE // 1024} KiB: no gateway needs that much")
    return loads(raw, path)


def loads(raw: bytes, path: Path | None = None) -> GatewaySpec:
    """A gateway description's bytes, checked (`path` names it in errors)."""
    where = str(path) if path is not None else "<gateway file>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where}:1: not UTF-8 text ({exc.reason})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_in_message(str(exc))
        raise SpecError(f"{where}:{line}: not TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{where}:1: nested too deeply to be a gateway description") from None
    return _Reader(where, text, path).spec(doc)


def _line_in_message(message: str) -> int:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else 1


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class _Reader:
    def __init__(self, where: str, text: str, path: Path | None) -> None:
        self.where = where
        self.lines = text.splitlines()
        self.path = path

    def line(self, table: str | None, key: str | None = None) -> int:
        """The line of `key` in `[table]` (None: the top), as well as a plain scan can say:
        the table's header for a key not written, 1 for the top."""
        current: str | None = None
        header_line = 1
        for n, line in enumerate(self.lines, 1):
            stripped = line.strip()
            head = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]\s*(#.*)?", stripped)
            if head:
                current = head.group(1).strip("\"' ")
                if current == table:
                    header_line = n
                continue
            if current != table or key is None:
                continue
            found = re.match(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""", line)
            if found and next(g for g in found.groups() if g is not None) == key:
                return n
        if table is None:
            return 1
        return header_line

    def fail(self, table: str | None, key: str | None, reason: str) -> SpecError:
        named = ".".join(p for p in (table, key) if p)
        return SpecError(
            f"{self.where}:{self.line(table, key)}: {named + ': ' if named else ''}{reason}"
        )

    def spec(self, doc: dict[str, Any]) -> GatewaySpec:
        if _depth(doc) > MAX_DEPTH:
            raise SpecError(f"{self.where}:1: nested deeper than a gateway description is")
        for key in doc:
            if key not in _TOP:
                known = ", ".join(sorted(_TOP))
                raise self.fail(None, key, f"unknown key (known: {known})")
        name = doc.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise self.fail(
                None,
                "name",
                "required: lower-case letters, digits and _ (32 at most), a letter first; it "
                "is the route /webhooks/NAME",
            )
        title = self.text(None, "title", doc.get("title", name), 64)
        body = doc.get("body", "json")
        if body not in BODIES:
            raise self.fail(None, "body", f"must be one of {', '.join(BODIES)}")
        console = doc.get("console")
        if console is not None:
            console = self.text(None, "console", console, 500)
        report = self.table(doc, "report")
        statuses = self.statuses(self.table(doc, "status"))
        verify = self.verify(self.table(doc, "verify"), body)
        return self.report(report, name, title, body, statuses, verify, console)

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(None, key, "must be a table")
        return value

    def text(self, table: str | None, key: str, value: Any, most: int) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > most:
            raise self.fail(table, key, f"must be a text of 1 to {most} characters")
        if not value.isprintable():
            raise self.fail(table, key, "must not hold control characters")
        return value

    def paths(self, key: str, value: Any, body: str) -> tuple[Path_, ...]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or len(values) > MAX_ALTERNATIVES:
            raise self.fail(
                "report", key, f"must be a path or a list of 1 to {MAX_ALTERNATIVES} paths"
            )
        return tuple(self.path_of(key, v, body) for v in values)

    def path_of(self, key: str, value: Any, body: str) -> Path_:
        if not isinstance(value, str) or not value or len(value) > MAX_PATH:
            raise self.fail("report", key, f"a path is a text of 1 to {MAX_PATH} characters")
        if not value.isprintable():
            raise self.fail("report", key, "a path must not hold control characters")
        if body == "form":
            return (value,)  # a form's field, named as it is
        root = value.startswith("^.")
        parts = value[2:].split(".") if root else value.split(".")
        if len(parts) > MAX_SEGMENTS or not all(_SEGMENT.fullmatch(p) for p in parts):
            raise self.fail(
                "report",
                key,
                f"{value!r} is not a dotted path of 1 to {MAX_SEGMENTS} parts (a.b.0.c)",
            )
        return ("^", *parts) if root else tuple(parts)

    def statuses(self, table: dict[str, Any]) -> dict[str, State]:
        if not table:
            raise self.fail("status", None, "required: the gateway's status words onto ours")
        if len(table) > MAX_STATUSES:
            raise self.fail("status", None, f"{len(table)} rows; {MAX_STATUSES} at most")
        states = ", ".join(s.value for s in State if s is not State.UNKNOWN)
        out: dict[str, State] = {}
        for word, ours in table.items():
            if len(word) > MAX_STATUS_WORD or not word.strip():
                raise self.fail("status", word, f"a status word is 1 to {MAX_STATUS_WORD} chars")
            try:
                state = State(ours) if isinstance(ours, str) else None
            except ValueError:
                state = None
            if state is None or state is State.UNKNOWN:
                raise self.fail("status", word, f"must be one of our states: {states}")
            folded = word.strip().lower()
            if folded in out:
                raise self.fail("status", word, "written twice (status words match in any case)")
            out[folded] = state
        return out

    def secret(self, table: dict[str, Any], param: str) -> tuple[str | None, str | None]:
        """A parameter given as itself or as `<param>_env`, the environment variable holding
        it: (value, the variable's name)."""
        env_key = f"{param}_env"
        if param in table and env_key in table:
            raise self.fail("verify", env_key, f"give {param} or {env_key}, not both")
        if env_key in table:
            var = table[env_key]
            if not isinstance(var, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", var):
                raise self.fail("verify", env_key, "must be an environment variable's name")
            value = os.environ.get(var)
            if not value:
                raise self.fail("verify", env_key, f"the environment variable {var} is not set")
            return value, var
        if param in table:
            return self.text("verify", param, table[param], 4096), None
        return None, None

    def verify(self, table: dict[str, Any], body: str) -> Verify:
        method = table.get("method", "none")
        if method not in METHODS:
            raise self.fail("verify", "method", f"must be one of {', '.join(METHODS)}")
        allowed = _PARAMS[method]
        names = {"method", *allowed}
        names |= {f"{p}_env" for p in allowed if p in _SECRETS}
        for key in table:
            if key not in names:
                known = ", ".join(sorted(names - {"method"})) or "none"
                raise self.fail("verify", key, f"not a parameter of {method} (its: {known})")
        params: dict[str, Any] = {}
        from_env: dict[str, str] = {}
        for param, required in allowed.items():
            if param in _SECRETS:
                value, var = self.secret(table, param)
                if var is not None:
                    from_env[param] = var
            else:
                value = table.get(param)
            if value is None:
                if required:
                    extra = f" (or {param}_env)" if param in _SECRETS else ""
                    raise self.fail("verify", None, f"{method} needs {param}{extra}")
                continue
            params[param] = self.param(method, param, value)
        if method == "hmac" and params.get("over", "body") not in ("body", "url-and-params"):
            raise self.fail("verify", "over", "must be body or url-and-params")
        if method == "ed25519":
            from smswatch.gateways.verifiers import Ed25519Check

            try:
                Ed25519Check(params["public_key"], params["header"])
            except ValueError as exc:
                raise self.fail("verify", "public_key", str(exc)) from None
        return Verify(method, params, from_env)

    def param(self, method: str, param: str, value: Any) -> Any:
        if param in ("tolerance_s", "leeway_s"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise self.fail("verify", param, "must be a number of seconds, 0 or more")
            if value > 86_400:
                raise self.fail("verify", param, "must be a day or less")
            return float(value)
        if param == "digest" and value not in DIGESTS:
            raise self.fail("verify", param, f"must be one of {', '.join(DIGESTS)}")
        if param == "encoding" and value not in ENCODINGS:
            raise self.fail("verify", param, f"must be one of {', '.join(ENCODINGS)}")
        if param in ("header", "timestamp_header") and not (
            isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}", value)
        ):
            raise self.fail("verify", param, "must be an HTTP header's name")
        if param in ("separator", "prefix") and isinstance(value, str) and len(value) <= 32:
            return value  # may be blank
        if param in ("url_claim", "body_claim") and value is False:
            return None  # that claim is not checked
        return self.text("verify", param, value, 4096)

    def report(
        self,
        table: dict[str, Any],
        name: str,
        title: str,
        body: str,
        statuses: dict[str, State],
        verify: Verify,
        console: str | None,
    ) -> GatewaySpec:
        for key in table:
            if key not in _REPORT:
                known = ", ".join(sorted(_REPORT))
                raise self.fail("report", key, f"unknown key (known: {known})")
        if "status" not in table:
            raise self.fail("report", None, "needs status: where a report's status is")
        paths = {k: self.paths(k, table[k], body) for k in FIELDS if k in table}
        batch = None
        if "batch" in table:
            if body == "form":
                raise self.fail("report", "batch", "a form carries one report, not a batch")
            batch = self.path_of("batch", table["batch"], body)
            if batch[0] == "^":
                raise self.fail("report", "batch", "is a path from the body's root already")
        elif any(p[0] == "^" for ps in paths.values() for p in ps):
            raise self.fail("report", None, "^. paths are for batches (report.batch)")
        time_format = table.get("time_format", "iso")
        if not isinstance(time_format, str) or not (
            time_format in TIME_FORMATS or ("%" in time_format and len(time_format) <= 64)
        ):
            raise self.fail(
                "report",
                "time_format",
                "must be iso, unix, unix_ms or a strptime format (%Y-%m-%d %H:%M:%S)",
            )
        dedupe = table.get("dedupe", ["message_id", "recipient", "status", "time"])
        if (
            not isinstance(dedupe, list)
            or not dedupe
            or any(d not in DEDUPE_FIELDS for d in dedupe)
            or len(set(dedupe)) != len(dedupe)
        ):
            raise self.fail(
                "report", "dedupe", f"must be a list of fields of {', '.join(DEDUPE_FIELDS)}"
            )
        required_raw = table.get("required", [])
        if not isinstance(required_raw, list) or len(required_raw) > MAX_ALTERNATIVES:
            raise self.fail("report", "required", f"must be a list of {MAX_ALTERNATIVES} paths")
        required = tuple(self.path_of("required", p, body) for p in required_raw)
        only_failed = table.get("errors_only_when_failed", False)
        if not isinstance(only_failed, bool):
            raise self.fail("report", "errors_only_when_failed", "must be true or false")
        per_message = table.get("recipients_per_message")
        if per_message is not None and (
            isinstance(per_message, bool) or not isinstance(per_message, int) or per_message < 1
        ):
            raise self.fail("report", "recipients_per_message", "must be a whole number, 1 up")
        channel = table.get("channel", "sms")
        channel = self.text("report", "channel", channel, 32)
        return GatewaySpec(
            name=name,
            title=title,
            body=body,
            paths=paths,
            statuses=statuses,
            verify=verify,
            source=self.path,
            batch=batch,
            time_format=time_format,
            dedupe=tuple(dedupe),
            required=required,
            errors_only_when_failed=only_failed,
            recipients_per_message=per_message,
            channel=channel,
            console=console,
        )
