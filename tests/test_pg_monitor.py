"""A monitor on one instance of a shared PostgreSQL database shows what another instance received:
over real HTTP into instance A, on the screen of a monitor that takes no webhooks itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from smswatch.core.domain import State
from smswatch.live.datasource import LocalSource
from smswatch.live.engine import EngineConfig
from smswatch.live.thread import EngineThread
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.screens.dashboard import DashboardScreen, MessagesTable
from smswatch.tui.screens.message import MessageScreen, RecipientsTable
from tests.test_tui import log_lines, until
from tests.tui_support import Env, lisoloo_event

MID = "7e57a1b2c3d4e5f60718293a"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


async def test_a_webhook_to_instance_a_is_on_instance_bs_monitor_within_a_second(
    pg_url: str, tmp_path: Path
) -> None:
    a = Env(tmp_path, db=pg_url)  # takes the webhooks
    watcher = EngineThread(EngineConfig(db_path=pg_url, port=0, listen=False)).start()
    try:
        app = SmsWatchApp(LocalSource(watcher), theme="dark", remember_theme=False)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            assert (
                await a.alisoloo(
                    lisoloo_event(1, "sms.queued", MID, 1_795_400_000_000_000, total_recipients=2)
                )
                == 200
            )
            assert (
                await a.alisoloo(
                    lisoloo_event(
                        2,
                        "sms.sent",
                        MID,
                        1_795_400_001_000_000,
                        recipient_phone="+243810000001",
                        carrier="vodacom_drc",
                    )
                )
                == 200
            )
            await until(
                pilot,
                lambda: any("+243810000001" in line and "sent" in line for line in log_lines(app)),
                within=30,  # a ceiling, not a speed: how fast it comes is benchmarks' to say
            )
            table = app.screen.query_one(MessagesTable)
            await until(
                pilot,
                lambda: any(m.message_id == MID and m.count(State.SENT) == 1 for m in table.rows),
            )
            assert app.model.counters.events == 2
            # Drilling in reads the shared database.
            table.focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, MessageScreen))
            recipients = app.screen.query_one(RecipientsTable)
            await until(pilot, lambda: len(recipients.rows) == 1)
            await a.alisoloo(
                lisoloo_event(
                    3, "sms.delivered", MID, 1_795_400_005_000_000, recipient_phone="+243810000001"
                )
            )
            await until(
                pilot, lambda: recipients.rows and recipients.rows[0].state == State.DELIVERED
            )
            await asyncio.sleep(0)
    finally:
        watcher.stop()
        a.stop()
