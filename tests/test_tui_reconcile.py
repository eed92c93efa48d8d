"""Reconciliation in the live monitor under Pilot: webhooks the gateways gave up on (the
sandbox's --drop-rate) raise the missing-webhooks alert, and a message's screen shows the
gateway's counts beside the webhooks'; `p` polls a message on demand."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smswatch.devtools.sandbox import SandboxAPI
from smswatch.devtools.simulate import Sender, SimConfig
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.datasource import LocalSource
from smswatch.live.engine import EngineConfig
from smswatch.live.thread import EngineThread
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.message import MessageScreen
from smswatch.tui.widgets.alerts import AlertsPanel
from tests.test_reconcile import LISOLOO_KEY, YEBOLINK_KEY, both_keys, plans
from tests.test_tui import plain, until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


async def test_the_missing_webhooks_alert_and_the_gateways_counts(tmp_path: Path) -> None:
    planned = plans(0.05)
    truth = [t for p in planned for t in p.truth]
    sandbox = SandboxAPI(keys=SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY))
    for p in planned:
        sandbox.add_plan(p)
    url = sandbox.start_background()
    api = both_keys(url)
    config = EngineConfig(
        db_path=tmp_path / "r.db",
        port=0,
        gateway_api=api,
        reconcile_quiet={"lisoloo": 3, "yebolink": 3},
        reconcile_every=0.5,
        hub_tick=0.05,
    )
    engine = EngineThread(config).start()
    try:
        app = SmsWatchApp(LocalSource(engine), theme="dark", remember_theme=False)
        async with app.run_test(size=(160, 45), notifications=True) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            for p in planned:
                sender = Sender(SimConfig(url=engine.engine.listener.base_url, concurrency=16))
                await sender.run(p.deliveries)
            dropped = Counter(t.message_id for t in truth if t.provider == "lisoloo" and t.dropped)
            expected = sum(dropped.values()) + sum(
                1 for t in truth if t.provider == "yebolink" and t.dropped
            )

            def alert() -> Any:
                rows = app.screen.query_one(AlertsPanel).rows
                return next((a for a in rows if a.kind == "reconcile"), None)

            await until(pilot, lambda: alert() is not None and alert().count == expected, 90)
            assert "recovered by polling" in alert().detail
            # The status bar shows the polling itself, queue and calls, whatever is missing.
            polling = plain(app.screen.query_one("#reconciling"))
            assert polling.startswith("Polling") and "Lisoloo" in polling and "YeboLink" in polling
            assert " call" in polling
            # The message with the most missing reports: the gateway's counts beside ours.
            mid, missing = dropped.most_common(1)[0]
            app.open_message(mid)
            await until(pilot, lambda: isinstance(app.screen, MessageScreen) and app.screen.detail)
            header = plain(app.screen.query_one("#message-header"))
            assert "gateway:" in header and "webhooks:" in header
            reports = "report" if missing == 1 else "reports"
            assert f"→ {missing} delivery {reports} missing" in header
            # On demand: the same answer again stores nothing new.
            await pilot.press("p")
            await until(pilot, lambda: any("Polled" in (n.title or "") for n in app._notifications))
    finally:
        engine.stop()
        sandbox.stop_background()
