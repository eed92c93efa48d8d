"""Every option of the command line, declared once: the listener flags the monitor and `serve`
share, --config and --db that every command takes, the gateways' credentials, the feed, and the
senders' flags of `simulate` and `replay`."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from smswatch import config as settings
from smswatch.campaigns.rule import DEFAULT_KEYS
from smswatch.cli.errors import SettingsError
from smswatch.config import parse_basic_auth
from smswatch.core.credentials import GATEWAY_CREDENTIALS

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The subcommands whose table of the config file holds their defaults.
SUBCOMMANDS = ["serve", "attach", "simulate", "replay", "inspect", "export", "stats", "gateways"]


class FiniteRange(click.FloatRange):
    """A float in a range, and a number at all: NaN passes every comparison with the bounds,
    and infinity passes an open one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


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


def _user_pass(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A gateway's Basic auth credential, checked at start but kept as the text it was given
    (the gateways' credentials are settings' strings)."""
    if value:
        _basic_auth(_ctx, _param, value)
    return value


def gateway_credential_options(f: F, api_only: bool = False) -> F:
    """The credentials of the gateways beyond the seeds, each as GATEWAY_CREDENTIALS
    (core/credentials.py) declares it. `api_only`: those a status API takes too (`reconcile`'s:
    Twilio's API takes its webhook token)."""
    for credential in reversed(GATEWAY_CREDENTIALS):
        if api_only and not credential.opens_api:
            continue
        f = click.option(
            credential.flag,
            credential.key,
            envvar=credential.envvar,
            metavar=credential.metavar,
            # A setting of a few values (a signature method): a bad one is refused at start.
            type=click.Choice(credential.choices) if credential.choices else None,
            callback=_user_pass if credential.basic_auth else None,
            default=credential.default,
            show_default=credential.default is not None,
            help=f"{credential.help} One of {'|'.join(credential.choices)}."
            if credential.choices
            else credential.help,
        )(f)
    return f


def credential_options(f: F) -> F:
    f = gateway_credential_options(f)
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
    click.option(
        "--twilio-account-sid",
        envvar="SMSWATCH_TWILIO_ACCOUNT_SID",
        metavar="AC…",
        help="Twilio account SID: with --twilio-auth-token, look messages up (GET "
        "/2010-04-01/Accounts/SID/Messages/ID.json) to reconcile.",
    ),
    click.option(
        "--twilio-api-url",
        envvar="SMSWATCH_TWILIO_API_URL",
        metavar="BASE",
        help="Twilio API base URL (default: https://api.twilio.com).",
    ),
    click.option(
        "--vonage-api-key",
        envvar="SMSWATCH_VONAGE_API_KEY",
        metavar="KEY",
        help="Vonage API key (the account id, 8 characters): with --vonage-api-secret, look "
        "messages up in the Reports API (GET /v2/reports/records) to reconcile.",
    ),
    click.option(
        "--vonage-api-secret",
        envvar="SMSWATCH_VONAGE_API_SECRET",
        metavar="SECRET",
        help="Vonage API secret (not the signature secret). Prefer SMSWATCH_VONAGE_API_SECRET "
        "(a flag shows in ps).",
    ),
    click.option(
        "--vonage-api-url",
        envvar="SMSWATCH_VONAGE_API_URL",
        metavar="BASE",
        help="Vonage Reports API base URL (default: https://api.nexmo.com).",
    ),
    click.option(
        "--infobip-api-key",
        envvar="SMSWATCH_INFOBIP_API_KEY",
        metavar="KEY",
        help="Infobip API key: with --infobip-api-url, look messages up in the delivery "
        "reports and logs (GET /sms/3/reports, /sms/3/logs) to reconcile. Prefer "
        "SMSWATCH_INFOBIP_API_KEY (a flag shows in ps).",
    ),
    click.option(
        "--infobip-api-url",
        envvar="SMSWATCH_INFOBIP_API_URL",
        metavar="BASE",
        help="Infobip API base URL: the account's own (https://XXXXX.api.infobip.com, on the "
        "Infobip portal's home page).",
    ),
    click.option(
        "--telnyx-api-key",
        envvar="SMSWATCH_TELNYX_API_KEY",
        metavar="KEY",
        help="Telnyx API key (KEY…, not the webhooks' public key): look messages up (GET "
        "/v2/messages/ID) to reconcile. Prefer SMSWATCH_TELNYX_API_KEY (a flag shows in ps).",
    ),
    click.option(
        "--telnyx-api-url",
        envvar="SMSWATCH_TELNYX_API_URL",
        metavar="BASE",
        help="Telnyx API base URL (default: https://api.telnyx.com).",
    ),
    click.option(
        "--plivo-auth-id",
        envvar="SMSWATCH_PLIVO_AUTH_ID",
        metavar="MA…",
        help="Plivo Auth ID: with --plivo-auth-token, look messages up (GET "
        "/v1/Account/ID/Message/UUID/) to reconcile.",
    ),
    click.option(
        "--plivo-api-url",
        envvar="SMSWATCH_PLIVO_API_URL",
        metavar="BASE",
        help="Plivo API base URL (default: https://api.plivo.com).",
    ),
    click.option(
        "--sinch-service-plan-id",
        envvar="SMSWATCH_SINCH_SERVICE_PLAN_ID",
        metavar="ID",
        help="Sinch service plan id (dashboard: SMS → APIs): with --sinch-api-token, read "
        "batches' delivery reports to reconcile.",
    ),
    click.option(
        "--sinch-api-token",
        envvar="SMSWATCH_SINCH_API_TOKEN",
        metavar="TOKEN",
        help="Sinch API token of the service plan (a Bearer token, not the webhook secret). "
        "Prefer SMSWATCH_SINCH_API_TOKEN (a flag shows in ps).",
    ),
    click.option(
        "--sinch-api-url",
        envvar="SMSWATCH_SINCH_API_URL",
        metavar="BASE",
        help="Sinch SMS API base URL of the plan's region (default: https://us.sms.api.sinch.com; "
        "eu., au., br., ca.).",
    ),
]


def gateway_file_option(f: F) -> F:
    """--gateway-file: a gateway described in TOML (docs/gateways.md, "Your own gateway")."""
    return click.option(
        "--gateway-file",
        "gateway_files",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="SMSWATCH_GATEWAY_FILES",
        metavar="FILE.toml",
        help="A gateway of your own, described in TOML: its route, body, fields, status table "
        "and verifier (repeatable; docs/gateways.md). A bad file is refused at start.",
    )(f)


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
        gateway_file_option,
        click.option(
            "--insecure",
            is_flag=True,
            help="Accept unauthenticated webhooks on a non-loopback address.",
        ),
        click.option(
            "--public-url",
            envvar="SMSWATCH_PUBLIC_URL",
            metavar="URL",
            help="The base URL the gateways call, behind a tunnel or proxy (https://HOST[:PORT]"
            "[/PREFIX]): signatures over the URL (Twilio) are checked as PUBLIC_URL/webhooks/…, "
            "and the status bar shows these URLs.",
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


def json_option(help: str = "Machine-readable output (docs/json.md).") -> Callable[[F], F]:
    """--json of the read commands (each says where its shape is documented)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def theme_option(help: str) -> Callable[[F], F]:
    """--theme of the commands with screens: the monitor and `attach`."""
    return click.option("--theme", envvar="SMSWATCH_THEME", default=None, help=help)


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
