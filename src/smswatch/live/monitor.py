"""`smswatch` (and `--demo`): start the engine on its thread, then the monitor."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from smswatch.config import Credentials
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.devtools.demo import DemoTraffic
from smswatch.live.datasource import LocalSource
from smswatch.live.engine import CannotListen, EngineConfig
from smswatch.live.thread import EngineThread
from smswatch.runtime import tune_gc
from smswatch.store.errors import CannotOpen, DatabaseInUse
from smswatch.store.location import describe
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.terminal import GONE_EXIT_CODE, quiet_dead_terminal
from smswatch.words import plural


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As the listener binds (asyncio sets SO_REUSEADDR on POSIX): connections of a run
        # that just ended linger in TIME_WAIT and must not push the demo onto a random port.
        if sys.platform != "win32":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def demo_config(
    config: EngineConfig, api_url: str, keys: Any, port_given: bool = False
) -> tuple[EngineConfig, Path]:
    """A throwaway database, real credentials (so auth shows as verified), a free port, and
    keys for the sandbox's status APIs (a short quiet time, so reconciling shows soon). Only
    the default port gives way to a free one: a port asked for (`port_given`) is kept, busy or
    not, and a busy one fails to bind like any other."""
    from smswatch.gateways.plivo.sim import AUTH_ID as PLIVO_AUTH_ID
    from smswatch.gateways.sinch.sim import SERVICE_PLAN_ID as SINCH_PLAN
    from smswatch.gateways.telnyx.keys import new_pair as new_telnyx_pair
    from smswatch.gateways.twilio.sim import ACCOUNT_SID
    from smswatch.gateways.vonage.sim import API_KEY as VONAGE_API_KEY
    from smswatch.reconcile.config import ApiConfig, ApiKey

    workdir = Path(tempfile.mkdtemp(prefix="smswatch-demo-"))
    # Every gateway's webhook credential is made up for the run, so each shows as verified
    # (settings, like Vonage's signature method, keep their defaults). Twilio's auth token
    # also opens its API: the sandbox's, if any.
    token = keys.twilio_auth_token or secrets.token_urlsafe(24)
    # Plivo's, like Twilio's, signs its callbacks and opens its Message API.
    plivo_token = keys.plivo_auth_token or secrets.token_urlsafe(24)
    # Vonage's signature secret signs its receipts and JWTs; its API secret is another one.
    vonage_secret = keys.vonage_api_secret or secrets.token_urlsafe(24)
    tokens = {
        c.key: ("demo:" if c.basic_auth else "") + secrets.token_urlsafe(24)
        for c in GATEWAY_CREDENTIALS
        if c.secret
    }
    # Telnyx's is a public key, not any text: a pair, its private half signing the traffic.
    telnyx_signing, telnyx_public = new_telnyx_pair()
    tokens |= {"telnyx_public_key": telnyx_public, "telnyx_signing_key": telnyx_signing}
    credentials = Credentials(
        ("demo", secrets.token_urlsafe(12)),
        secrets.token_urlsafe(24),
        tokens | {"twilio_auth_token": token, "plivo_auth_token": plivo_token},
    )
    port = config.port if port_given or port_free(config.host, config.port) else 0
    api = ApiConfig(
        lisoloo_key=ApiKey(keys.lisoloo_app_key, "--lisoloo-app-key"),
        lisoloo_url=api_url,
        yebolink_key=ApiKey(keys.yebolink_api_key, "--yebolink-api-key"),
        yebolink_url=api_url,
        twilio_key=ApiKey(token, "--twilio-auth-token"),
        twilio_account_sid=ACCOUNT_SID,
        twilio_url=api_url,
        vonage_key=ApiKey(vonage_secret, "--vonage-api-secret"),
        vonage_account_id=VONAGE_API_KEY,
        vonage_url=api_url,
        infobip_key=ApiKey(keys.infobip_api_key or secrets.token_urlsafe(24), "--infobip-api-key"),
        infobip_url=api_url,
        telnyx_key=ApiKey(keys.telnyx_api_key or secrets.token_hex(16), "--telnyx-api-key"),
        telnyx_url=api_url,
        plivo_key=ApiKey(plivo_token, "--plivo-auth-token"),
        plivo_auth_id=PLIVO_AUTH_ID,
        plivo_url=api_url,
        sinch_key=ApiKey(keys.sinch_api_token or secrets.token_hex(16), "--sinch-api-token"),
        sinch_service_plan_id=SINCH_PLAN,
        sinch_url=api_url,
    )
    return (
        replace(
            config,
            db_path=workdir / "demo.db",
            credentials=credentials,
            port=port,
            gateway_api=api,
            reconcile_quiet={
                "lisoloo": 30,
                "yebolink": 30,
                "twilio": 30,
                "vonage": 30,
                "infobip": 30,
                "telnyx": 30,
                "plivo": 30,
                "sinch": 30,
            },
        ),
        workdir,
    )


def watch_instead(config: EngineConfig, exc: DatabaseInUse) -> str:
    """How a second terminal watches a SQLite database that another smswatch writes: through
    that one's feed (one process writes a SQLite file, and this monitor would be a writer)."""
    from smswatch.feed.server import token_path

    if config.listen or isinstance(config.db_path, str):
        return ""
    token_file = token_path(Path(config.db_path))
    token = f'"$(cat {token_file})"' if token_file.is_file() else "TOKEN (the one it was given)"
    if exc.feed is None:
        return (
            ". It serves no feed to watch it through: start it with --feed-port PORT, then "
            f"run here: smswatch attach ws://127.0.0.1:PORT --token {token}"
        )
    return f". To watch it from here: smswatch attach {exc.feed} --token {token}"


def run_monitor(
    config: EngineConfig,
    *,
    demo: bool,
    theme: str | None,
    settings: dict[str, Any],
    port_given: bool = False,
) -> int:
    workdir = None
    sandbox = None
    asked_port = config.port
    if demo:
        from smswatch.devtools.sandbox import SandboxAPI
        from smswatch.gateways.sandboxing import SandboxKeys

        keys = SandboxKeys(
            lisoloo_app_key="sk_test_" + secrets.token_urlsafe(24),
            yebolink_api_key="ybk_" + secrets.token_hex(16),
            twilio_auth_token=secrets.token_hex(16),
            vonage_api_secret=secrets.token_hex(16),
            infobip_api_key=secrets.token_hex(16),
            telnyx_api_key="KEY" + secrets.token_hex(16),
            plivo_auth_token=secrets.token_hex(16),
            sinch_api_token=secrets.token_hex(16),
        )
        sandbox = SandboxAPI(keys=keys)
        config, workdir = demo_config(config, sandbox.start_background(), keys, port_given)
    tune_gc()
    engine = EngineThread(config)
    try:
        engine.start()
    except (CannotOpen, CannotListen, OSError) as exc:
        hint = watch_instead(config, exc) if isinstance(exc, DatabaseInUse) else ""
        problem = f"cannot start: {exc}" if isinstance(exc, OSError) else str(exc)
        print(f"smswatch: {problem}{hint}", file=sys.stderr)
        if sandbox is not None:
            sandbox.stop_background()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        return 2
    traffic = None
    if demo:
        traffic = DemoTraffic(
            engine.engine.listener.base_url,
            config.credentials,
            campaigns=engine.engine.campaigns,
            sandbox=sandbox,
        ).start()
    source = LocalSource(engine)
    app = SmsWatchApp(source, theme=theme, settings=settings)
    if demo and config.port != asked_port:
        app.notices.append(
            f"port {asked_port} is in use: the demo listens on {engine.engine.listener.base_url}"
        )
    try:
        code = app.run()
    finally:
        if app.gone_reason is not None:
            quiet_dead_terminal()
        # The app closes its reader when it unmounts; an exit cut short (the terminal gone
        # under load) may not get that far. Closed here, before the engine, the writer's close
        # is the last one and checkpoints the log's WAL away; a reader closing last does not.
        with contextlib.suppress(Exception):
            asyncio.run(source.close())
        if traffic is not None:
            traffic.stop()
        # Lets the commits in flight finish, then closes the database.
        engine.stop()
        if sandbox is not None:
            sandbox.stop_background()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    if app.gone_reason is not None:
        return code or GONE_EXIT_CODE
    print(
        f"smswatch: {plural(engine.engine.hub.events, 'event')} in {describe(config.db_path)}"
        if not demo
        else "smswatch: demo over"
    )
    return code or 0
