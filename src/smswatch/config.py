"""Settings from a TOML file, `SMSWATCH_*` environment variables and flags.

Precedence, highest first: command-line flag, environment variable, config file, built-in
default. The file is flat TOML whose keys are the long option names with dashes or underscores
(`port = 8787`, `basic_auth = "ops:secret"`, `yebolink_secret = "…"`, `db = "campaign.db"`,
`tls_cert = "/etc/smswatch/cert.pem"`);
click applies it as each command's `default_map`, so every command reads the keys it has.
A `[stuck]` table sets the stuck-recipient deadlines in seconds per state.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smswatch.domain import State
from smswatch.paths import default_config_file

# Keys a config file may set (option names, underscores), and the tables.
KNOWN_KEYS = {
    "host",
    "port",
    "db",
    "durability",
    "checkpoint_interval",
    "basic_auth",
    "yebolink_secret",
    "insecure",
    "max_body",
    "max_db_mb",
    "read_timeout",
    "tls_cert",
    "tls_key",
    "log_format",
    "summary_interval",
    "theme",
    "url",
    "feed_host",
    "feed_port",
    "feed_token",
    "metrics_host",
    "metrics_port",
    "forward_to",
    "forward_basic_auth",
    "forward_secret",
    "forward_timeout",
    "forward_concurrency",
    "forward_max_attempts",
    "forward_retry_4xx",
    "forward_polled",
    "campaign",
    "campaign_keys",
    "lisoloo_app_key",
    "lisoloo_api_url",
    "yebolink_api_key",
    "yebolink_api_url",
}
TABLES = {"stuck"}

# How long a recipient may sit in a state before the TUI calls it stuck (seconds).
DEFAULT_STUCK = {State.QUEUED: 300, State.PROCESSING: 300, State.SENT: 900}


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    """What the gateways authenticate with: Lisoloo Basic auth, the YeboLink HMAC secret."""

    basic_auth: tuple[str, str] | None = None
    yebolink_secret: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.basic_auth or self.yebolink_secret)


def parse_basic_auth(value: str) -> tuple[str, str]:
    """`USER:PASS` from the command line or config, split on the first colon."""
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise ValueError("basic auth must be USER:PASS")
    return user, password


def load(path: Path | None) -> dict[str, Any]:
    """Read a config file; with no path, the user's default file if it exists."""
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
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in KNOWN_KEYS | TABLES:
            known = ", ".join(sorted(KNOWN_KEYS | TABLES))
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {known})")
        settings[name] = value
    stuck_deadlines(settings)  # validate early
    return settings


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


def default_map(settings: dict[str, Any], commands: list[str]) -> dict[str, Any]:
    """Click's default_map: the flat settings for the group and for each subcommand."""
    flat = {k: v for k, v in settings.items() if k not in TABLES}
    return {**flat, **{name: dict(flat) for name in commands}}
