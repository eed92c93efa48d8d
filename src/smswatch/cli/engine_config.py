"""What the listener options make: the EngineConfig of the monitor and `serve`, with its forwarding,
status API, TLS and campaign parts (each a usage error now rather than a failed start later)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from smswatch import config as settings
from smswatch.campaigns.rule import DEFAULT_KEYS, own_name
from smswatch.cli.options import loaded_settings
from smswatch.config import Credentials, parse_public_url, tokens_from

if TYPE_CHECKING:
    from smswatch.forward.config import ForwardConfig
    from smswatch.live.engine import EngineConfig
    from smswatch.reconcile.config import ApiConfig


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
        # A gateway that signs with its account's token (Twilio) signs forwards with it too:
        # the app checks them with the same token.
        tokens=tokens_from(opts),
        timeout=opts["forward_timeout"],
        concurrency=opts["forward_concurrency"],
        max_attempts=opts["forward_max_attempts"],
        retry_4xx=opts["forward_retry_4xx"],
    )


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
            twilio_account_sid=text("twilio_account_sid"),
            twilio_auth_token=text("twilio_auth_token"),
            twilio_api_url=text("twilio_api_url"),
            vonage_api_key=text("vonage_api_key"),
            vonage_api_secret=text("vonage_api_secret"),
            vonage_api_url=text("vonage_api_url"),
            infobip_api_key=text("infobip_api_key"),
            infobip_api_url=text("infobip_api_url"),
            telnyx_api_key=text("telnyx_api_key"),
            telnyx_api_url=text("telnyx_api_url"),
            plivo_auth_id=text("plivo_auth_id"),
            plivo_auth_token=text("plivo_auth_token"),
            plivo_api_url=text("plivo_api_url"),
            sinch_service_plan_id=text("sinch_service_plan_id"),
            sinch_api_token=text("sinch_api_token"),
            sinch_api_url=text("sinch_api_url"),
        )
    except ApiConfigError as exc:
        raise click.UsageError(str(exc)) from None


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


def checked_credentials(opts: dict[str, Any]) -> Credentials:
    """The webhooks' credentials, each gateway's adapter made from them once, so that one that
    cannot be (a Telnyx key that is not a key) is a usage error now, not a failed start or
    every webhook refused later."""
    from smswatch import gateways

    credentials = Credentials(
        opts.get("basic_auth"), opts.get("yebolink_secret") or None, tokens_from(opts)
    )
    try:
        gateways.build(credentials)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return credentials


def install_gateway_files(values: Any) -> None:
    """The gateways of --gateway-file (or `gateway_files`), checked and registered beside the
    built-ins before anything is built from the registry: a bad file stops the start with
    its line and the reason."""
    if not values:
        return
    from smswatch.gateways.declarative import SpecError, install

    paths = [Path(values)] if isinstance(values, str | Path) else [Path(v) for v in values]
    try:
        install(paths)
    except SpecError as exc:
        # A BadParameter of the option, so that one from SMSWATCH_GATEWAY_FILES or the config
        # file is named as such (cli/errors.py).
        ctx = click.get_current_context(silent=True)
        params = ctx.command.params if ctx is not None else []
        param = next((p for p in params if p.name == "gateway_files"), None)
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def engine_config(opts: dict[str, Any]) -> EngineConfig:
    from smswatch.live.engine import EngineConfig

    install_gateway_files(opts.get("gateway_files"))
    feed_port = None if opts.get("no_feed") else opts.get("feed_port")
    tls_cert, tls_key = tls_files(opts)
    return EngineConfig(
        db_path=opts["db"],
        host=opts["host"],
        port=opts["port"],
        credentials=checked_credentials(opts),
        insecure=opts["insecure"],
        public_url=public_url(opts.get("public_url")),
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


def public_url(value: str | None) -> str | None:
    """--public-url, checked once the command is known (as --forward-to is): a bad URL is a
    usage error now, not signatures that never match later."""
    if not value:
        return None
    try:
        return parse_public_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--public-url'") from None


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
