"""Command line: `smswatch` (live monitor) and its subcommands, as the README documents them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

import click

from smswatch import __version__
from smswatch import config as settings
from smswatch.campaigns.rule import DEFAULT_KEYS, own_name
from smswatch.config import Credentials, parse_basic_auth
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.forward.config import ForwardConfig
    from smswatch.live.engine import EngineConfig
    from smswatch.reconcile.config import ApiConfig

# Heavy modules (aiohttp, pydantic, textual) are imported inside the commands that need them,
# so `inspect`, `export` and `stats` start quickly.

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
SUBCOMMANDS = ["serve", "attach", "simulate", "replay", "inspect", "export", "stats"]


# --- shared options ---------------------------------------------------------------------------


class FiniteRange(click.FloatRange):
    """A float in a range, and a number at all: NaN passes every comparison with the bounds,
    and infinity passes an open one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class SettingsError(click.ClickException):
    """A bad setting from the config file or the environment: named as the user wrote it
    (the file and key, or the variable), not as a flag they never typed."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"smswatch: {self.format_message()}", err=True)


def settings_error(exc: click.BadParameter) -> SettingsError | None:
    """The error to show for a bad value that came from the environment or the config file;
    None for one typed on the command line."""
    from click.core import ParameterSource

    ctx, param = exc.ctx, exc.param
    if ctx is None or param is None or param.name is None:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.ENVIRONMENT:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
        where = next((name for name in names if name in os.environ), "the environment")
    elif source is ParameterSource.DEFAULT_MAP:
        where = f"{ctx.meta.get('config_file', 'the config file')}: {param.name}"
    else:
        return None
    return SettingsError(f"{where}: {exc.message}")


@contextlib.contextmanager
def named_settings_errors() -> Iterator[None]:
    try:
        yield
    except click.BadParameter as exc:
        named = settings_error(exc)
        if named is None:
            raise
        raise named from None


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    from click.core import ParameterSource

    from smswatch.paths import default_config_file

    try:
        loaded = settings.load(value)
    except settings.ConfigError as exc:
        from_env = ctx.get_parameter_source("config") is ParameterSource.ENVIRONMENT
        raise SettingsError(f"SMSWATCH_CONFIG: {exc}" if from_env else str(exc)) from None
    ctx.meta["settings"] = loaded
    ctx.meta["config_file"] = value or default_config_file()
    name = "smswatch" if ctx.parent is None else (ctx.info_name or "")
    ctx.default_map = settings.default_map(loaded, name, SUBCOMMANDS if ctx.parent is None else [])
    return value


def config_option(f: F) -> F:
    return click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SMSWATCH_CONFIG",
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML config file (default: ~/.config/smswatch/config.toml if it exists).",
    )(f)


def _basic_auth(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, str] | None:
    if not value:
        return None
    try:
        return parse_basic_auth(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def credential_options(f: F) -> F:
    f = click.option(
        "--yebolink-secret",
        envvar="SMSWATCH_YEBOLINK_SECRET",
        metavar="SECRET",
        help="YeboLink webhook secret; X-YeboLink-Signature is verified with it.",
    )(f)
    return click.option(
        "--basic-auth",
        envvar="SMSWATCH_BASIC_AUTH",
        metavar="USER:PASS",
        callback=_basic_auth,
        help="Lisoloo webhook Basic auth credentials.",
    )(f)


def _db(ctx: click.Context, param: click.Parameter, value: Any) -> str | Path:
    from smswatch.store.location import as_db, check_url, describe

    db = as_db(value)
    if isinstance(db, str):
        try:
            check_url(db)
        except ValueError as exc:
            raise click.BadParameter(f"{describe(db)} is not a database URL: {exc}") from None
    elif db.is_dir():
        raise click.BadParameter(f"{db} is a directory, not a database file")
    return db


def db_option(f: F) -> F:
    return click.option(
        "--db",
        envvar="SMSWATCH_DB",
        default="smswatch.db",
        show_default=True,
        metavar="PATH|URL",
        callback=_db,
        help="SQLite database file, or a postgresql://USER:PW@HOST/DB URL shared by several "
        "instances.",
    )(f)


FORWARD_OPTIONS = [
    click.option(
        "--forward-to",
        "forward_to",
        multiple=True,
        envvar="SMSWATCH_FORWARD_TO",
        metavar="[GATEWAY=]URL",
        help="POST every stored event on to your app, byte for byte, durably (repeatable; "
        "GATEWAY=URL for one gateway's events only).",
    ),
    click.option(
        "--forward-basic-auth",
        envvar="SMSWATCH_FORWARD_BASIC_AUTH",
        metavar="USER:PASS",
        callback=_basic_auth,
        help="Basic auth on Lisoloo forwards (default: --basic-auth).",
    ),
    click.option(
        "--forward-secret",
        envvar="SMSWATCH_FORWARD_SECRET",
        metavar="SECRET",
        help="Signs YeboLink forwards' X-YeboLink-Signature (default: --yebolink-secret).",
    ),
    click.option(
        "--forward-timeout",
        type=FiniteRange(0.1),
        default=10.0,
        show_default=True,
        help="Seconds the app has to answer a forward.",
    ),
    click.option(
        "--forward-concurrency",
        type=click.IntRange(1, 256),
        default=8,
        show_default=True,
        help="Forwards in flight to one app at most.",
    ),
    click.option(
        "--forward-max-attempts",
        type=click.IntRange(1),
        default=25,
        show_default=True,
        help="Attempts before a forward is marked failed (backoff doubles from 1 s to 5 min).",
    ),
    click.option(
        "--forward-polled",
        is_flag=True,
        envvar="SMSWATCH_FORWARD_POLLED",
        help="Forward the status APIs' answers too (poll.status, poll.message: not the "
        "gateway's webhooks, marked X-Smswatch-Polled: 1).",
    ),
    click.option(
        "--forward-retry-4xx",
        is_flag=True,
        help="Retry 4xx answers too (by default only 408, 425, 429, 5xx and no answer are).",
    ),
]


def forward_config(opts: dict[str, Any]) -> ForwardConfig | None:
    from smswatch.forward.config import ForwardConfig, ForwardConfigError, parse_targets

    if not opts.get("forward_to"):
        return None
    try:
        targets = parse_targets(list(opts["forward_to"]), bool(opts.get("forward_polled")))
    except ForwardConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return ForwardConfig(
        targets=targets,
        basic_auth=opts.get("forward_basic_auth") or opts.get("basic_auth"),
        secret=opts.get("forward_secret") or opts.get("yebolink_secret") or None,
        timeout=opts["forward_timeout"],
        concurrency=opts["forward_concurrency"],
        max_attempts=opts["forward_max_attempts"],
        retry_4xx=opts["forward_retry_4xx"],
    )


# The gateways' status APIs, polled to reconcile (issue 14). Keys come best from the environment
# or the config file: a flag's value shows in `ps` to every user of the machine. No option shows
# a default, so a key from the config file never appears in --help.
GATEWAY_API_OPTIONS = [
    click.option(
        "--lisoloo-app-key",
        envvar="SMSWATCH_LISOLOO_APP_KEY",
        metavar="KEY",
        help="Lisoloo API key (sk_test_… or sk_live_…): poll GET /status to reconcile. "
        "Prefer SMSWATCH_LISOLOO_APP_KEY (a flag shows in ps). Needs --lisoloo-api-url.",
    ),
    click.option(
        "--lisoloo-api-url",
        envvar="SMSWATCH_LISOLOO_API_URL",
        metavar="BASE",
        help="Lisoloo API base URL (scheme and host, from the Lisoloo dashboard: it differs "
        "between sandbox and production).",
    ),
    click.option(
        "--yebolink-api-key",
        envvar="SMSWATCH_YEBOLINK_API_KEY",
        metavar="KEY",
        help="YeboLink API key (ybk_…): look messages up to reconcile. Prefer "
        "SMSWATCH_YEBOLINK_API_KEY (a flag shows in ps).",
    ),
    click.option(
        "--yebolink-api-url",
        envvar="SMSWATCH_YEBOLINK_API_URL",
        metavar="BASE",
        help="YeboLink API base URL (default: https://api.yebolink.com).",
    ),
]


def gateway_api_config(opts: dict[str, Any]) -> ApiConfig | None:
    """The status APIs' settings; None without a key (nothing is polled). A bad URL, or a
    Lisoloo key without its URL, is a usage error now."""
    from smswatch.reconcile.config import ApiConfig, ApiConfigError

    def text(name: str) -> str | None:
        value = opts.get(name)
        return str(value) if value not in (None, "") else None

    try:
        return ApiConfig.from_settings(
            lisoloo_app_key=text("lisoloo_app_key"),
            lisoloo_api_url=text("lisoloo_api_url"),
            yebolink_api_key=text("yebolink_api_key"),
            yebolink_api_url=text("yebolink_api_url"),
        )
    except ApiConfigError as exc:
        raise click.UsageError(str(exc)) from None


def listener_options(f: F) -> F:
    options = [
        click.option(
            "--host",
            envvar="SMSWATCH_HOST",
            default="127.0.0.1",
            show_default=True,
            help="Address to listen on.",
        ),
        click.option(
            "--port",
            envvar="SMSWATCH_PORT",
            type=click.IntRange(0, 65535),
            default=8787,
            show_default=True,
            help="Webhook port (0 picks a free one).",
        ),
        db_option,
        credential_options,
        click.option(
            "--insecure",
            is_flag=True,
            help="Accept unauthenticated webhooks on a non-loopback address.",
        ),
        click.option(
            "--durability",
            type=click.Choice(["full", "normal"]),
            default="full",
            show_default=True,
            help="full: fsync every commit (survives power loss); normal: survives a crash of "
            "smswatch, may lose the last commits on power loss.",
        ),
        click.option(
            "--checkpoint-interval",
            type=FiniteRange(0.01, 60),
            default=1.0,
            show_default=True,
            help="Seconds between writes of the folded state (the event log itself is "
            "committed before every answer): longer costs less CPU, screens may lag by one.",
        ),
        click.option(
            "--max-body",
            type=click.IntRange(1024),
            default=1024 * 1024,
            show_default=True,
            help="Largest webhook body in bytes (larger: 413).",
        ),
        click.option(
            "--max-db-mb",
            type=click.IntRange(1),
            default=None,
            help="Cap the database size; at the cap webhooks get 503 until it is raised.",
        ),
        click.option(
            "--read-timeout",
            type=FiniteRange(0.1),
            default=10.0,
            show_default=True,
            help="Seconds a client may take to send a body (else 408).",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            envvar="SMSWATCH_TLS_CERT",
            default=None,
            metavar="FILE",
            help="Serve HTTPS with this PEM certificate (chain first); needs --tls-key.",
        ),
        click.option(
            "--tls-key",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            envvar="SMSWATCH_TLS_KEY",
            default=None,
            metavar="FILE",
            help="The PEM private key of --tls-cert.",
        ),
        *FORWARD_OPTIONS,
        *GATEWAY_API_OPTIONS,
        click.option(
            "--campaign",
            envvar="SMSWATCH_CAMPAIGN",
            default=None,
            metavar="NAME",
            help="Put every message first seen while this runs in campaign NAME (a sender's "
            "metadata campaign wins).",
        ),
        click.option(
            "--campaign-keys",
            envvar="SMSWATCH_CAMPAIGN_KEYS",
            default=",".join(DEFAULT_KEYS),
            show_default=True,
            metavar="KEYS",
            help="Comma-separated metadata keys (YeboLink) that name a message's campaign, "
            "first found wins.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def tls_files(opts: dict[str, Any]) -> tuple[Path | None, Path | None]:
    """--tls-cert and --tls-key: both or neither, and usable, or a usage error now rather than
    a failed start later (a bad file would read as a port that cannot be bound)."""
    cert, key = opts.get("tls_cert"), opts.get("tls_key")
    if (cert is None) != (key is None):
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise click.UsageError(
            f"{given} needs {missing} too: HTTPS takes a certificate and its key"
        )
    if cert is not None and key is not None:
        from smswatch.ingest.http import TLSError, tls_context

        try:
            tls_context(cert, key)
        except TLSError as exc:
            raise click.UsageError(str(exc)) from None
    return cert, key


def feed_options(default_port: int | None) -> Callable[[F], F]:
    """The WebSocket feed for `smswatch attach` (on by default for serve, opt-in for the TUI)."""

    def decorate(f: F) -> F:
        options = [
            click.option(
                "--feed-host",
                envvar="SMSWATCH_FEED_HOST",
                default="127.0.0.1",
                show_default=True,
                help="Address of the viewers' feed; it exposes everything, so keep it private.",
            ),
            click.option(
                "--feed-port",
                envvar="SMSWATCH_FEED_PORT",
                type=click.IntRange(0, 65535),
                default=default_port,
                show_default=True,
                help="Port of the viewers' feed"
                + (" (off unless given)." if default_port is None else "."),
            ),
            click.option(
                "--feed-token",
                envvar="SMSWATCH_FEED_TOKEN",
                default=None,
                help="Token viewers must present (default: one made once and kept beside "
                "the database).",
            ),
        ]
        if default_port is not None:
            options.append(
                click.option("--no-feed", is_flag=True, help="Do not serve the viewers' feed.")
            )
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def loaded_settings() -> dict[str, Any]:
    """The config file's settings, as `--config` loaded them for this command."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("settings", {}) if ctx is not None else {}


def engine_config(opts: dict[str, Any]) -> EngineConfig:
    from smswatch.live.engine import EngineConfig

    feed_port = None if opts.get("no_feed") else opts.get("feed_port")
    tls_cert, tls_key = tls_files(opts)
    return EngineConfig(
        db_path=opts["db"],
        host=opts["host"],
        port=opts["port"],
        credentials=Credentials(opts["basic_auth"], opts["yebolink_secret"] or None),
        insecure=opts["insecure"],
        durability=opts["durability"],
        checkpoint_interval=opts["checkpoint_interval"],
        max_body=opts["max_body"],
        read_timeout=opts["read_timeout"],
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_db_bytes=opts["max_db_mb"] * 1024 * 1024 if opts["max_db_mb"] else None,
        feed_host=opts.get("feed_host", "127.0.0.1"),
        feed_port=feed_port,
        feed_token=opts.get("feed_token") or None,
        forward=forward_config(opts),
        campaign=run_campaign(opts.get("campaign")),
        campaign_keys=campaign_keys(opts.get("campaign_keys")),
        gateway_api=gateway_api_config(opts),
        stuck_deadlines=settings.stuck_deadlines(loaded_settings()),
    )


def run_campaign(value: str | None) -> str | None:
    try:
        return own_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--campaign'") from None


def campaign_keys(value: str | list[str] | None) -> tuple[str, ...]:
    """`--campaign-keys a,b` (or a TOML list): the keys, in order; empty turns metadata
    grouping off."""
    if value is None:
        return DEFAULT_KEYS
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(k.strip() for k in parts if k.strip())


def print_json(value: Any) -> None:
    """JSON on stdout. On a terminal every non-ASCII character is escaped: the same value to a
    JSON reader, but webhook text can neither hide (zero-width) nor act (C1 controls)."""
    click.echo(json.dumps(value, ensure_ascii=sys.stdout.isatty(), indent=2))


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"smswatch: {message}", err=True)
    sys.exit(code)


async def one_message(reader: Any, text: str, db: str | Path) -> str:
    """The message id `text` names, whole or as a unique prefix; else exits saying that no
    message matches, or that several do (read commands: inspect, export, reconcile)."""
    from smswatch.sanitize import safe
    from smswatch.store import describe

    found = await reader.message_ids_starting(text, 3)
    if len(found) == 1:
        return str(found[0])
    if not found:
        fail(f"no message {text!r} in {describe(db)} (try `smswatch stats` or `smswatch export`)")
    shown = ", ".join(safe(m, 40) for m in found[:2]) + (", …" if len(found) > 2 else "")
    fail(f"{text!r} starts more than one message id ({shown}): give more of it")


def handles_store_errors(f: F) -> F:
    """Read commands: a missing or foreign database is a one-line error, not a traceback."""
    from smswatch.store import NoDatabase
    from smswatch.store.errors import CannotOpen

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (NoDatabase, CannotOpen) as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


# --- smswatch (the live monitor) --------------------------------------------------------------


class Commands(click.Group):
    """`smswatch`'s subcommands, with the command groups that live in modules of their own
    (one module per group as commands multiply) imported only when one is asked
    for: they start no slower, and they import this module's options without a circle."""

    GROUPS: ClassVar[dict[str, str]] = {
        "forward": "smswatch.cli.forward",
        "campaign": "smswatch.cli.campaign",
        "report": "smswatch.cli.report",
        "reconcile": "smswatch.cli.reconcile",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.GROUPS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.GROUPS:
            command: click.Command = getattr(importlib.import_module(self.GROUPS[name]), name)
            # Click would look the group's defaults up under its name in this command's
            # defaults, where `campaign` is the monitor's --campaign from the config file (a
            # string): each command inside loads the file itself (--config).
            if "default_map" not in command.context_settings:
                command.context_settings = {**command.context_settings, "default_map": {}}
            return command
        return super().get_command(ctx, name)

    # A bad value from the environment or the config file is named as such, here and in every
    # subcommand (they are parsed inside invoke).
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with named_settings_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with named_settings_errors():
            return super().invoke(ctx)

    # Options typed before the subcommand (`smswatch --port 9811 serve`) go to it when it has
    # the same option, and are refused when it does not: never quietly dropped.
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["smswatch.args"] = list(args)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        given = ctx.meta.pop("smswatch.args", [])
        before = given[: len(given) - len(args)]
        if command is None or not before:
            return name, command, rest
        # A group (`campaign list`): the options go to the command inside it.
        path, target, at = [name], command, 0
        if isinstance(command, click.Group) and rest:
            inner = command.get_command(ctx, rest[0])
            if inner is not None:
                path, target, at = [name, rest[0]], inner, 1
        for tokens in self.option_tokens(before):
            option = tokens[0].partition("=")[0]
            if not any(option in (*p.opts, *p.secondary_opts) for p in target.params):
                where = " ".join(str(part) for part in path)
                raise click.UsageError(
                    f"{option} is not an option of `smswatch {where}` "
                    f"(see `smswatch {where} --help`)",
                    ctx,
                )
        return name, command, [*rest[:at], *before, *rest[at:]]

    def option_tokens(self, tokens: list[str]) -> Iterator[list[str]]:
        """The group's own options as typed, one list of tokens per option."""
        takes_value = {
            opt: not (isinstance(p, click.Option) and (p.is_flag or p.count))
            for p in self.params
            for opt in (*p.opts, *p.secondary_opts)
        }
        i = 0
        while i < len(tokens):
            token = tokens[i]
            n = 2 if "=" not in token and takes_value.get(token, False) else 1
            yield tokens[i : i + n]
            i += n


@click.group(cls=Commands, invoke_without_command=True, context_settings=CONTEXT)
@config_option
@listener_options
@feed_options(default_port=None)
@click.option(
    "--demo",
    is_flag=True,
    help="Also run simulated campaigns against the monitor, with a temporary database.",
)
@click.option(
    "--theme",
    envvar="SMSWATCH_THEME",
    default=None,
    help="Theme name (dark, light, high-contrast, or one of yours).",
)
@click.option(
    "--no-listen",
    is_flag=True,
    help="Watch the database without taking webhooks here (e.g. a PostgreSQL database that "
    "serve instances share; a SQLite file that another smswatch writes is watched with "
    "`smswatch attach` to its feed).",
)
@click.version_option(__version__, prog_name="smswatch")
@click.pass_context
def main(ctx: click.Context, demo: bool, theme: str | None, no_listen: bool, **opts: Any) -> None:
    """smswatch: watch SMS delivery webhooks live in the terminal.

    Without a subcommand it runs the webhook listener and the live monitor in one process.
    Point your gateway's webhook URL at the address it shows.
    """
    if ctx.invoked_subcommand is not None:
        return
    from smswatch.live.engine import BindRefused
    from smswatch.live.monitor import run_monitor

    if no_listen and demo:
        fail("--demo sends its traffic to the monitor's own listener: drop --no-listen", 2)
    config = engine_config(opts)
    if no_listen:
        config = replace(config, listen=False)
    # Only the default port may give way to a free one in the demo: a port asked for is kept.
    port_given = ctx.get_parameter_source("port") is not click.core.ParameterSource.DEFAULT
    try:
        code = run_monitor(
            config, demo=demo, theme=theme, settings=loaded_settings(), port_given=port_given
        )
    except BindRefused as exc:
        fail(str(exc), 2)
    sys.exit(code)


# --- serve ------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@config_option
@listener_options
@feed_options(default_port=8788)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for log shippers.",
)
@click.option(
    "--summary-interval",
    type=FiniteRange(0.5),
    default=5.0,
    show_default=True,
    help="Seconds between summary lines while events arrive.",
)
@click.option(
    "--metrics-host",
    envvar="SMSWATCH_METRICS_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address of the Prometheus metrics; they have no auth, so keep it private.",
)
@click.option(
    "--metrics-port",
    envvar="SMSWATCH_METRICS_PORT",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics at /metrics on this port (off unless given; 0 picks a free "
    "one). Never the webhook port.",
)
def serve(
    log_format: str,
    summary_interval: float,
    metrics_host: str,
    metrics_port: int | None,
    **opts: Any,
) -> None:
    """Run the webhook listener and store without a UI.

    Prints the URL to paste into each gateway, then a summary line every few seconds.
    Every 200 it answers means the event is committed to the database. Viewers watch it live
    with `smswatch attach` through the feed (port 8788, loopback, token required).
    """
    from smswatch import loops
    from smswatch.live import serve as headless
    from smswatch.live.engine import BindRefused, Engine

    if metrics_port:  # 0 is a free port of its own
        if metrics_port == opts["port"]:
            raise click.UsageError(
                "--metrics-port must differ from --port: metrics never share the webhook port"
            )
        if not opts.get("no_feed") and metrics_port == opts.get("feed_port"):
            raise click.UsageError("--metrics-port must differ from --feed-port")
    metrics_at = (metrics_host, metrics_port) if metrics_port is not None else None
    try:
        engine = Engine(engine_config(opts))
    except BindRefused as exc:
        fail(str(exc), 2)
    with asyncio.Runner(loop_factory=loops.new_event_loop) as runner:  # uvloop where installed
        code = runner.run(headless.run(engine, log_format, summary_interval, metrics_at=metrics_at))
    sys.exit(code)


# --- attach -----------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@config_option
@click.argument("feed_url", metavar="[URL]", default="ws://127.0.0.1:8788")
@click.option(
    # Named as the setting, so a config file's feed_token reaches attach too; and the URL
    # argument is not the senders' `url` setting.
    "--token",
    "feed_token",
    envvar="SMSWATCH_FEED_TOKEN",
    default=None,
    help="The feed token `serve` printed (or SMSWATCH_FEED_TOKEN).",
)
@click.option("--theme", envvar="SMSWATCH_THEME", default=None, help="Theme name.")
@click.pass_context
def attach(ctx: click.Context, feed_url: str, feed_token: str | None, theme: str | None) -> None:
    """Watch a running `smswatch serve` from anywhere: the same screens, read-only.

    URL is the feed's address (ws://HOST:PORT). Reconnects by itself, and says so plainly
    while it is not connected.
    """
    from smswatch.feed.client import RemoteSource
    from smswatch.tui.app import SmsWatchApp
    from smswatch.tui.terminal import quiet_dead_terminal

    if not feed_url.startswith(("ws://", "wss://")):
        fail(f"{feed_url!r} is not a feed address (ws://HOST:PORT)", 2)
    if not feed_token:
        fail(
            "a feed token is needed: --token (serve prints it), SMSWATCH_FEED_TOKEN or "
            "feed_token in the config file",
            2,
        )
    app = SmsWatchApp(RemoteSource(feed_url, feed_token), theme=theme, settings=loaded_settings())
    code = app.run() or 0
    if app.gone_reason is not None:
        quiet_dead_terminal()
    sys.exit(code)


# --- simulate ---------------------------------------------------------------------------------


def interrupted(title: str, result: Any, source: str | None) -> None:
    """After Ctrl-C: what was acknowledged (stored for good), and where to go on from."""
    unsure = f", {result.in_flight} in flight (stored or not)" if result.in_flight else ""
    click.echo(
        f"{title}: interrupted: {result.acked} acknowledged of "
        f"{plural(result.planned, 'delivery', 'deliveries')}"
        f"{unsure}, {result.rejected} rejected, {result.dropped} given up",
        err=True,
    )
    if source is None or not result.open_lines:
        return
    first = min(result.open_lines)
    again = (
        f"`tail -n +{first} {shlex.quote(source)} | smswatch replay - …` with the same options"
        if source != "<stdin>"
        else f"replay the input from line {first} on"
    )
    click.echo(
        f"{title}: every line before line {first} was acknowledged; to go on: {again} "
        "(replaying all of it again is safe too: what is stored is answered as a duplicate)",
        err=True,
    )


def sender_options(f: F) -> F:
    options = [
        click.option(
            "--url",
            envvar="SMSWATCH_URL",
            default="http://127.0.0.1:8787",
            show_default=True,
            help="smswatch listener (root URL, /webhooks, or a gateway's webhook URL).",
        ),
        credential_options,
        click.option(
            "--rate",
            type=FiniteRange(0.1),
            default=500.0,
            show_default=True,
            help="At most this many requests per second.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 512),
            default=16,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(1),
            default=8,
            show_default=True,
            help="Tries per event on 5xx or connection failure before giving up.",
        ),
        click.option(
            "--acked",
            type=click.File("w"),
            default=None,
            help="Write one JSON line per event that got a 2xx (to check that nothing "
            "acknowledged was lost).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run_sender(
    deliveries: list[Any],
    config: Any,
    acked: Any,
    quiet: bool,
    title: str,
    source: str | None = None,
) -> Any:
    """Send and report. `source`: the replayed file's name, for where to resume after Ctrl-C."""
    from smswatch.devtools.simulate import Result, Unreachable
    from smswatch.progress import send_with_progress

    result = Result()
    try:
        asyncio.run(send_with_progress(deliveries, config, acked, quiet, title, result))
    except Unreachable as exc:
        fail(
            f"{title}: {exc}. Is smswatch running there? Start it (`smswatch` or "
            "`smswatch serve`), or point --url at it."
        )
    except KeyboardInterrupt:
        interrupted(title, result, source)
        sys.exit(130)
    line = (
        f"{title}: {result.acked} acknowledged ({result.acked_duplicate} as duplicates) of "
        f"{plural(result.planned, 'delivery', 'deliveries')}, {result.retried} retried, "
        f"{result.rejected} rejected, "
        f"{result.dropped} given up"
    )
    click.echo(line, err=True)
    if result.first_errors:
        settled = "all retried until answered" if result.ok else "some were not accepted"
        click.echo(f"first problems seen ({settled}):", err=True)
    for detail in result.first_errors:
        click.echo(f"  {detail}", err=True)
    return result


@main.command(context_settings=CONTEXT)
@config_option
@sender_options
@click.option(
    "--provider",
    type=click.Choice(["lisoloo", "yebolink", "mixed"]),
    default="lisoloo",
    show_default=True,
    help="Gateway to imitate (mixed: alternate per message).",
)
@click.option(
    "--messages",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Messages (Lisoloo) or bulk sends (YeboLink) to run.",
)
@click.option(
    "--recipients",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="Recipients per message or bulk send.",
)
@click.option(
    "--fail-rate",
    type=FiniteRange(0, 1),
    default=0.08,
    show_default=True,
    help="Share of recipients that fail.",
)
@click.option(
    "--duplicate-rate",
    type=FiniteRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of events sent twice (same event id), as gateway retries do.",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed: the same seed plans the same campaign."
)
@click.option(
    "--speed",
    type=FiniteRange(0.01),
    default=1.0,
    show_default=True,
    help="Divide realistic delays (seconds to minutes) by this.",
)
@click.option(
    "--spread",
    type=FiniteRange(0),
    default=0.0,
    show_default=True,
    help="Spread message starts over this many seconds (before --speed).",
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the expected final state of every recipient as JSON lines.",
)
@click.option(
    "--drop-rate",
    type=FiniteRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of recipients whose final webhook the gateway gave up on: never sent, known "
    "only to its status API (--truth marks them dropped).",
)
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the gateways' status APIs (a sandbox answering from this run's truth) on "
    "127.0.0.1:PORT, 0 for any free port; the URL is printed on stdout.",
)
@click.option(
    "--api-linger",
    type=FiniteRange(0),
    default=60.0,
    show_default=True,
    help="Keep the sandbox API up this many seconds after the last recipient settled.",
)
@click.option(
    "--lisoloo-app-key",
    envvar="SMSWATCH_LISOLOO_APP_KEY",
    metavar="KEY",
    default=None,
    help="The app-key the sandbox's Lisoloo status API accepts (default: any non-empty key; "
    "SMSWATCH_LISOLOO_APP_KEY keeps it out of ps).",
)
@click.option(
    "--yebolink-api-key",
    envvar="SMSWATCH_YEBOLINK_API_KEY",
    metavar="KEY",
    default=None,
    help="The X-API-Key the sandbox's YeboLink messages API accepts (default: any non-empty "
    "key; SMSWATCH_YEBOLINK_API_KEY keeps it out of ps).",
)
@click.option(
    "--api-lisoloo-limit",
    type=click.IntRange(1),
    default=120,
    show_default=True,
    help="Sandbox: Lisoloo GET /status calls per key per rolling minute (Lisoloo's own).",
)
@click.option(
    "--api-yebolink-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: YeboLink GET /messages calls per key per rolling minute (not published; "
    "a guess).",
)
@click.option(
    "--api-429-burst",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Sandbox fault: after each API's first 3 calls, its next N get 429 with Retry-After.",
)
def simulate(**opts: Any) -> None:
    """Send a realistic simulated campaign to a running smswatch over HTTP.

    Out-of-order arrival, duplicate retries, failures with realistic codes, and the right Basic
    auth / signatures (from --basic-auth / --yebolink-secret or SMSWATCH_* variables). With
    --api-port, a sandbox of the gateways' status APIs answers from the same truth, as of now
    (GET /_sandbox/stats counts the calls). Exit status 1 if any event was rejected or given up.
    """
    from smswatch.devtools.simulate import SimConfig, plan_campaign, write_truth

    config = SimConfig(
        url=opts["url"],
        provider=opts["provider"],
        messages=opts["messages"],
        recipients=opts["recipients"],
        rate=opts["rate"],
        fail_rate=opts["fail_rate"],
        duplicate_rate=opts["duplicate_rate"],
        seed=opts["seed"],
        speed=opts["speed"],
        spread=opts["spread"],
        concurrency=opts["concurrency"],
        max_attempts=opts["max_attempts"],
        basic_auth=opts["basic_auth"],
        yebolink_secret=opts["yebolink_secret"] or None,
        drop_rate=opts["drop_rate"],
    )
    plan = plan_campaign(config)
    if opts["truth"]:
        write_truth(plan.truth, opts["truth"])
    if plan.dropped_events:
        click.echo(
            f"simulate: {plural(plan.dropped_events, 'webhook')} dropped by the gateway "
            "(--drop-rate), never sent",
            err=True,
        )
    if opts["api_port"] is None:
        result = run_sender(plan.deliveries, config, opts["acked"], opts["quiet"], "simulate")
        sys.exit(0 if result.ok else 1)

    from smswatch.devtools.sandbox import SandboxAPI, SandboxLimits
    from smswatch.gateways.sandboxing import SandboxKeys

    sandbox = SandboxAPI(
        plan.ledger,
        keys=SandboxKeys(opts["lisoloo_app_key"] or None, opts["yebolink_api_key"] or None),
        limits=SandboxLimits(
            lisoloo_per_window=opts["api_lisoloo_limit"],
            yebolink_per_window=opts["api_yebolink_limit"],
            burst_429=opts["api_429_burst"],
        ),
    )
    try:
        url = sandbox.start_background("127.0.0.1", opts["api_port"])
    except OSError as exc:
        fail(f"cannot serve the sandbox API on port {opts['api_port']}: {exc}", 2)
    # On stdout, alone on its line, for scripts and tests that asked for port 0.
    click.echo(f"sandbox API: {url}")
    try:
        result = run_sender(plan.deliveries, config, opts["acked"], opts["quiet"], "simulate")
        if opts["api_linger"]:
            click.echo(
                f"sandbox API: up for {opts['api_linger']:g} s after the last recipient "
                "settled (Ctrl-C ends it)",
                err=True,
            )
        sandbox.linger(opts["api_linger"])
        click.echo(sandbox.summary(), err=True)
    finally:
        sandbox.stop_background()
    sys.exit(0 if result.ok else 1)


# --- replay -----------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@sender_options
@click.option(
    "--speed",
    type=FiniteRange(0),
    default=1.0,
    show_default=True,
    help="Replay this many times faster than recorded (0: as fast as --rate allows).",
)
def replay(file: Any, speed: float, **opts: Any) -> None:
    """Post recorded webhook traffic (JSON lines: export output or bare bodies) again.

    Timing follows each line's received_at. Exit status 1 if any event was rejected or given up.
    Polled events in an export are left out: to copy a database, use `smswatch import`.
    """
    from smswatch.devtools.replay import ReplayError, load_webhooks
    from smswatch.devtools.simulate import SimConfig

    try:
        deliveries, polled = load_webhooks(file, speed)
    except ReplayError as exc:
        fail(str(exc), 2)
    if polled:
        click.echo(
            f"replay: {plural(polled, 'polled event')} left out: made from a gateway's status "
            "API, not webhooks (`smswatch import` copies a database whole)",
            err=True,
        )
    config = SimConfig(
        url=opts["url"],
        rate=opts["rate"],
        concurrency=opts["concurrency"],
        max_attempts=opts["max_attempts"],
        basic_auth=opts["basic_auth"],
        yebolink_secret=opts["yebolink_secret"] or None,
    )
    name = getattr(file, "name", None)
    result = run_sender(deliveries, config, opts["acked"], opts["quiet"], "replay", str(name))
    sys.exit(0 if result.ok else 1)


# --- inspect / export / stats -----------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@config_option
@click.argument("message_id")
@db_option
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (shape in docs/json.md)."
)
@handles_store_errors
def inspect(message_id: str, db: Path, as_json: bool) -> None:
    """Show one message: totals, cost, latency and every recipient with its timeline.

    MESSAGE_ID may be a unique prefix of the id.
    """
    from smswatch.exports.console import console, message_view
    from smswatch.exports.records import message_record
    from smswatch.store import open_reader

    async def work() -> Any:
        async with await open_reader(db, current=True) as reader:
            found = await one_message(reader, message_id, db)
            msg = await reader.message(found)
            assert msg is not None
            recipients = await reader.recipients(found)
            if as_json:
                return message_record(msg, recipients, await reader.message_events(found))
            return message_view(msg, recipients, await reader.latency(found))

    result = asyncio.run(work())
    if as_json:
        print_json(result)
    else:
        console().print(result)


@main.command(context_settings=CONTEXT)
@config_option
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Events' format (the suppression list is always CSV).",
)
@click.option(
    "--message",
    "message_id",
    default=None,
    help="Only this message's events (its id, or a unique prefix of it).",
)
@click.option(
    "--suppression",
    is_flag=True,
    help="Instead of events: the numbers never to text again (failures about the number: "
    "landline, unknown, invalid, unsubscribed, blocked), one CSV row per number.",
)
@click.option(
    "--campaign",
    default=None,
    metavar="NAME",
    help="With --suppression: only this campaign's numbers (a name or a burst from "
    "`smswatch campaign list`).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="-",
    help="Output file (default: stdout).",
)
@handles_store_errors
def export(
    db: Path, fmt: str, message_id: str | None, suppression: bool, campaign: str | None, out: Path
) -> None:
    """Write every stored event, one per line, in storage order (each unique event once).

    With --suppression, write the do-not-send list instead: one CSV row per number whose
    failure the error catalogue says is about the number itself, with its latest such failure.
    """
    try:
        if suppression:
            export_suppression(db, fmt, message_id, campaign, out)
        else:
            export_events(db, fmt, message_id, campaign, out)
    except OSError as exc:  # a missing directory, a full disk: one line, not a traceback
        fail(f"cannot write {out}: {exc.strerror or exc}")


def export_events(
    db: Path, fmt: str, message_id: str | None, campaign: str | None, out: Path
) -> None:
    if campaign is not None:
        raise click.UsageError("--campaign selects a suppression list: add --suppression")
    from smswatch.exports.records import write_csv, write_jsonl
    from smswatch.store import open_reader

    async def resolve(text: str) -> str:
        async with await open_reader(db, current=True) as reader:
            return await one_message(reader, text, db)

    async def work(stream: Any, terminal: bool = False) -> int:
        async with await open_reader(db) as reader:
            events = reader.iter_events(wanted)
            return await (
                write_jsonl(events, stream, terminal, reader)
                if fmt == "jsonl"
                else write_csv(events, stream, terminal)
            )

    # A unique prefix, as `inspect` takes; resolved before the output file is made.
    wanted = None if message_id is None else asyncio.run(resolve(message_id))
    if str(out) == "-":
        count = asyncio.run(work(sys.stdout, sys.stdout.isatty()))
    else:
        with open(out, "w", encoding="utf-8", newline="") as stream:
            count = asyncio.run(work(stream))
        click.echo(f"exported {plural(count, 'event')} to {out}", err=True)


def export_suppression(
    db: Path, fmt: str, message_id: str | None, campaign: str | None, out: Path
) -> None:
    """`export --suppression`: the list is numbers, not events, so the event options that
    cannot apply are refused rather than quietly ignored."""
    from click.core import ParameterSource

    from smswatch.exports.suppression import suppression_list, write_csv, write_suppression
    from smswatch.store import describe, open_reader

    if message_id is not None:
        raise click.UsageError("--message selects events; --suppression lists numbers")
    # Only a --format typed (or set in the environment) for this run is refused: a config
    # file's export format is for the event export.
    source = click.get_current_context().get_parameter_source("fmt")
    if fmt != "csv" and source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        raise click.UsageError("the suppression list is CSV: drop --format or use --format csv")

    async def work() -> int | None:
        async with await open_reader(db, current=True) as reader:
            sel = None
            if campaign is not None:
                found = await reader.campaign(campaign)
                if found is None:
                    return None
                sel = found.selector
            if str(out) != "-":
                return await write_suppression(reader, sel, out)
            entries = await suppression_list(reader, sel)
        return write_csv(entries, sys.stdout, for_terminal=sys.stdout.isatty())

    count = asyncio.run(work())
    if count is None:
        # describe(): a postgresql:// URL's password must not reach the screen.
        fail(f"no campaign {campaign!r} in {describe(db)} (see `smswatch campaign list`)")
    if str(out) != "-":
        click.echo(f"exported {plural(count, 'number')} to {out}", err=True)


@main.command("import", context_settings=CONTEXT)
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@db_option
@handles_store_errors
def import_(file: Any, db: str | Path) -> None:
    """Store the events of an `export` file (JSON lines) in --db, as they were stored.

    Each event keeps its ids, event and receive times, and polled mark, and each message its
    campaign: the new database shows the same figures as the one exported (a copy, a restore,
    or a move from SQLite to PostgreSQL). Events already in --db are not stored twice. Works
    while smswatch runs on a PostgreSQL database; a SQLite file must not be in use.
    """
    from smswatch.exports.restore import BadExport, import_events
    from smswatch.store import describe
    from smswatch.store.errors import CannotOpen, DatabaseInUse

    try:
        done = asyncio.run(import_events(db, file))
    except DatabaseInUse:
        fail(f"another smswatch is writing {describe(db)}: stop it, or import into another file")
    except CannotOpen as exc:
        fail(str(exc))
    except BadExport as exc:
        before = ""
        if exc.done is not None and exc.done.events:
            before = f" ({plural(exc.done.events, 'event')} before it imported: run it again "
            before += "once the file is fixed, nothing is stored twice)"
        fail(f"{file.name}: {exc}{before}", 2)
    polled = f", {done.polled:,} of them polled" if done.polled else ""
    old = done.events - done.stored
    already = f"; {plural(old, 'was', 'were')} there already" if old else ""
    click.echo(
        f"imported {plural(done.stored, 'event')} into {describe(db)} "
        f"(of {done.events:,} read{polled}){already}",
        err=True,
    )


@main.command(context_settings=CONTEXT)
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--campaign", default=None, metavar="NAME", help="Only this campaign's messages.")
@handles_store_errors
def stats(db: Path, as_json: bool, campaign: str | None) -> None:
    """Totals: events, messages, recipients per state, delivery rate, latency, failures by code."""
    from smswatch.exports.console import console, stats_view
    from smswatch.exports.stats import NoCampaign, gather, stats_record

    try:
        data = asyncio.run(gather(db, campaign))
    except NoCampaign as exc:
        fail(str(exc))
    if as_json:
        print_json(stats_record(*data))
    else:
        console().print(stats_view(*data))


if __name__ == "__main__":
    main()
