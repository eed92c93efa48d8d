"""Settings from a TOML file, `SMSWATCH_*` environment variables and flags.

Precedence, highest first: command-line flag, environment variable, config file, built-in
default. The file is flat TOML whose keys are the fields of `smswatch.settings.Settings` (the
long option names, with dashes or underscores: `port = 8787`, `basic_auth = "ops:secret"`,
`db = "campaign.db"`); click applies it as each command's `default_map`, so every command reads
the keys it has. A `[stuck]` table sets the stuck-recipient deadlines in seconds per state.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.domain import State
from smswatch.paths import default_config_file

TABLES = {"stuck"}
# Keys that share a name with an option of other commands that means something else
# (`export --campaign` selects one): applied only to these commands.
ONLY_FOR = {"campaign": {"smswatch", "serve"}}

# How long a recipient may sit in a state before the TUI calls it stuck (seconds).
DEFAULT_STUCK = {State.QUEUED: 300, State.PROCESSING: 300, State.SENT: 900}


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    """What the gateways authenticate with: Lisoloo Basic auth, the YeboLink HMAC secret, and
    the other gateways' credentials by setting (`tokens`, keys of GATEWAY_CREDENTIALS)."""

    basic_auth: tuple[str, str] | None = None
    yebolink_secret: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether any webhook is authenticated (a setting such as a signature method alone
        authenticates nothing)."""
        secrets = (v for k, v in self.tokens.items() if k in SECRET_SETTINGS)
        return bool(self.basic_auth or self.yebolink_secret or any(secrets))

    def token(self, key: str) -> str | None:
        """The credential of setting `key`, None unless set (an empty value is unset)."""
        return self.tokens.get(key) or None

    def in_url(self, gateway: str, url: str, shown: bool = False) -> str:
        """`url` as `gateway` is to call it: with the credential it carries in the query
        (GatewayCredential.query, Africa's Talking's `?token=`), when that is set; else `url`.
        `shown`: for a screen or a log, the value elided (`token=…`), never the secret. A URL
        that already carries the parameter (a `--url` pasted whole) is left as it is."""
        for c in GATEWAY_CREDENTIALS:
            value = self.token(c.key)
            if c.gateway != gateway or c.query is None or value is None:
                continue
            parts = urlsplit(url)
            if any(name == c.query for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
                return url
            given = f"{c.query}=" + ("…" if shown else quote(value, safe=""))
            query = f"{parts.query}&{given}" if parts.query else given
            return urlunsplit(parts._replace(query=query))
        return url


SECRET_SETTINGS = frozenset(c.key for c in GATEWAY_CREDENTIALS if c.secret)


def tokens_from(values: Mapping[str, Any]) -> dict[str, str]:
    """The gateways' credentials among parsed options or settings, by setting."""
    return {c.key: str(values[c.key]) for c in GATEWAY_CREDENTIALS if values.get(c.key)}


def parse_public_url(value: str) -> str:
    """`--public-url`: the base URL the gateways call (scheme, host, port, optional path prefix),
    without a trailing slash. Kept as written otherwise: a gateway that signs the URL signs it
    as its console holds it, so even the host's case must stay. Raises ValueError."""
    text = value.strip()
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError("it must be a URL without spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError(f"{text!r} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("it must be an http(s) URL with a host, like https://hooks.example.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError("it must not contain credentials (user:password@)")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("it is a base URL: no ?query or #fragment (the request's are added)")
    return text.rstrip("/")


def parse_basic_auth(value: str) -> tuple[str, str]:
    """`USER:PASS` from the command line or config, split on the first colon."""
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise ValueError("basic auth must be USER:PASS")
    return user, password


def load(path: Path | None) -> dict[str, Any]:
    """Read a config file; with no path, the user's default file if it exists. Every key and
    value is checked against `smswatch.settings.Settings`: an error names the file and key."""
    explicit = path is not None
    path = path or default_config_file()
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    spelled = {key.replace("-", "_"): key for key in raw}
    settings = {key.replace("-", "_"): value for key, value in raw.items()}
    check(path, settings, spelled)
    if isinstance(settings.get("gateway_files"), str | list):
        files = settings["gateway_files"]
        settings["gateway_files"] = [
            str(path.parent / Path(str(f)).expanduser())
            for f in ([files] if isinstance(files, str) else files)
        ]
    try:
        stuck_deadlines(settings)  # validate early
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return settings


def check(path: Path, settings: dict[str, Any], spelled: dict[str, str]) -> None:
    from pydantic import ValidationError

    from smswatch.settings import Settings

    try:
        Settings.model_validate(settings)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        key = spelled.get(name, name)
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(Settings.model_fields))
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {known})") from None
        problem = error["msg"][:1].lower() + error["msg"][1:]
        # A credential's value stays off the screen, even a mistyped one.
        secret = any(word in name for word in ("auth", "secret", "key", "token"))
        got = "" if secret else f" (got {error['input']!r})"
        raise ConfigError(f"{path}: {key}: {problem}{got}") from None


def stuck_deadlines(settings: dict[str, Any]) -> dict[State, int]:
    """Per-state stuck deadlines in microseconds, from the `[stuck]` table over the defaults."""
    table = settings.get("stuck", {})
    if not isinstance(table, dict):
        raise ConfigError("[stuck] must be a table of state = seconds")
    deadlines = dict(DEFAULT_STUCK)
    for key, seconds in table.items():
        try:
            state = State(key)
        except ValueError:
            raise ConfigError(f"[stuck] {key!r} is not a state") from None
        if state not in DEFAULT_STUCK or not isinstance(seconds, int | float) or seconds <= 0:
            raise ConfigError(
                f"[stuck] {key} must be a positive number of seconds for queued, processing or sent"
            )
        deadlines[state] = seconds
    return {s: int(v * 1_000_000) for s, v in deadlines.items()}


def default_map(settings: dict[str, Any], command: str, subcommands: list[str]) -> dict[str, Any]:
    """Click's default_map: the flat settings for the command (the monitor is "smswatch") and
    for each subcommand, less the keys another command's option of the same name does not mean."""

    def flat(name: str) -> dict[str, Any]:
        return {
            k: v for k, v in settings.items() if k not in TABLES and name in ONLY_FOR.get(k, {name})
        }

    return {**flat(command), **{name: flat(name) for name in subcommands}}
