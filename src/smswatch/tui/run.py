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
from smswatch.datasource import LocalSource
from smswatch.demo import DemoTraffic
from smswatch.engine import EngineConfig
from smswatch.engine_thread import EngineThread
from smswatch.runtime import tune_gc
from smswatch.store.location import describe
from smswatch.store.writer import CannotOpen
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


def demo_config(config: EngineConfig, api_url: str, keys: Any) -> tuple[EngineConfig, Path]:
    """A throwaway database, real credentials (so auth shows as verified), a free port, and
    keys for the sandbox's status APIs (a short quiet time, so reconciling shows soon)."""
    from smswatch.reconcile.config import ApiConfig, ApiKey

    workdir = Path(tempfile.mkdtemp(prefix="smswatch-demo-"))
    credentials = Credentials(("demo", secrets.token_urlsafe(12)), secrets.token_urlsafe(24))
    port = config.port if port_free(config.host, config.port) else 0
    api = ApiConfig(
        lisoloo_key=ApiKey(keys.lisoloo_app_key, "--lisoloo-app-key"),
        lisoloo_url=api_url,
        yebolink_key=ApiKey(keys.yebolink_api_key, "--yebolink-api-key"),
        yebolink_url=api_url,
    )
    return (
        replace(
            config,
            db_path=workdir / "demo.db",
            credentials=credentials,
            port=port,
            gateway_api=api,
            reconcile_quiet={"lisoloo": 30, "yebolink": 30},
        ),
        workdir,
    )


def run_monitor(
    config: EngineConfig, *, demo: bool, theme: str | None, settings: dict[str, Any]
) -> int:
    workdir = None
    sandbox = None
    if demo:
        from smswatch.sandbox import SandboxAPI, SandboxKeys

        keys = SandboxKeys(
            lisoloo_app_key="sk_test_" + secrets.token_urlsafe(24),
            yebolink_api_key="ybk_" + secrets.token_hex(16),
        )
        sandbox = SandboxAPI(keys=keys)
        config, workdir = demo_config(config, sandbox.start_background(), keys)
    tune_gc()
    engine = EngineThread(config)
    try:
        engine.start()
    except CannotOpen as exc:
        print(f"smswatch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"smswatch: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}. "
            "Is another smswatch running? Pick another port with --port.",
            file=sys.stderr,
        )
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
