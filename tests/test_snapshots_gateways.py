"""Snapshot tests of the live monitor with the gateways beyond the seeds: Twilio's and Africa's
Talking's forms and Vonage's receipts posted over HTTP to a real engine with a frozen clock, one
Vonage recipient left `unconfirmed` (its `unknown`) beside delivered and failed ones.
Update after looking at the report: `pytest tests/test_snapshots_gateways.py --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from smswatch.core.domain import State
from smswatch.live.datasource import LocalSource
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.message import MessageScreen
from tests.test_snapshots import _utc  # noqa: F401  (autouse: the snapshots' times in UTC)
from tests.tui_support import T0, Env

NOW = T0 + 90_000_000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
UNCONFIRMED = "0B00000012345678"  # the Vonage message whose recipient Vonage gave up on


def twilio(env: Env, sid: str, status: str, to: str, **extra: str) -> None:
    fields = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status), ("To", to)]
    fields += [("MessagingServiceSid", "MG" + "7" * 32), ("MessageSid", sid)]
    fields += [("AccountSid", "AC" + "3" * 32), ("From", "+14155550100"), *extra.items()]
    assert env.post("/webhooks/twilio", urlencode(fields), FORM) == 200


def africastalking(env: Env, mid: str, status: str, phone: str, **extra: str) -> None:
    fields = {"id": mid, "status": status, "phoneNumber": phone, "networkCode": "63902", **extra}
    assert env.post("/webhooks/africastalking", urlencode(fields), FORM) == 200


def vonage(env: Env, mid: str, status: str, msisdn: str, scts: str, err: str = "0") -> None:
    receipt = {
        "msisdn": msisdn,
        "to": "SMSWATCH",
        "network-code": "26201",
        "messageId": mid,
        "price": "0.03330000",
        "status": status,
        "scts": scts,
        "err-code": err,
        "api-key": "abcd1234",
        "client-ref": "spring-sale",
        "message-timestamp": "2026-11-23 02:11:40",
    }
    assert env.post("/webhooks/vonage", receipt) == 200


def traffic(env: Env) -> None:
    twilio(env, "SM" + "a1" * 16, "sent", "+14155550111")
    twilio(env, "SM" + "a1" * 16, "delivered", "+14155550111", RawDlrDoneDate="2611230212")
    twilio(env, "SM" + "b2" * 16, "sent", "+14155550122")
    twilio(env, "SM" + "b2" * 16, "undelivered", "+14155550122", ErrorCode="30003")
    africastalking(env, "ATXid_" + "c3" * 16, "Success", "+254711000001")
    africastalking(
        env, "ATXid_" + "d4" * 16, "Failed", "+254711000002", failureReason="UserInBlackList"
    )
    vonage(env, UNCONFIRMED, "buffered", "447700900001", "2611230211")
    vonage(env, UNCONFIRMED, "unknown", "447700900001", "2611230212", err="1")
    vonage(env, "0B00000012345679", "delivered", "447700900002", "2611230212")
    vonage(env, "0B0000001234567A", "rejected", "447700900003", "2611230212", err="9")


@pytest.fixture
def make_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SmsWatchApp]]:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    env = Env(tmp_path, clock=lambda: T0)
    traffic(env)
    port = str(env.thread.engine.listener.port)

    def make() -> SmsWatchApp:
        source = LocalSource(env.thread)
        gateways = [replace(g, url=g.url.replace(port, "8787")) for g in source.info.gateways]
        source.info = replace(source.info, db_path="gateways.db", gateways=gateways)
        return SmsWatchApp(source, theme="dark", clock=lambda: NOW, remember_theme=False)

    yield make
    env.stop()


async def settled(pilot: Any) -> None:
    app = pilot.app
    for _ in range(200):
        counters = app.model.counters
        if (
            isinstance(app.screen, DashboardScreen)
            and counters.events == 10
            and counters.funnel[State.UNCONFIRMED] == 1
            and app.model.failures
            and app.model.stuck is not None
            and app.model.campaigns
        ):
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


def test_dashboard_with_the_new_gateways_and_an_unconfirmed_recipient(
    snap_compare, make_app
) -> None:
    assert snap_compare(make_app(), terminal_size=(160, 45), run_before=settled)


def test_message_screen_of_an_unconfirmed_recipient(snap_compare, make_app) -> None:
    async def run_before(pilot: Any) -> None:
        await settled(pilot)
        pilot.app.open_message(UNCONFIRMED)
        for _ in range(200):
            screen = pilot.app.screen
            if isinstance(screen, MessageScreen) and screen.detail is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=(140, 36), run_before=run_before)


async def test_the_unconfirmed_column_appears_where_some_row_has_one(make_app) -> None:
    """Campaigns and messages tables give unconfirmed a column of its own once a row needs it,
    and not before: a filter that leaves only outcomes takes it away again."""
    from smswatch.tui.screens.dashboard import MessagesTable
    from smswatch.tui.widgets.campaigns import CampaignsTable

    def titles(table: Any) -> list[str]:
        return [table.columns[i].title for i, _ in table.layout_columns(table.size.width)]

    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot)
        assert "unconf" in titles(app.screen.query_one(CampaignsTable))
        messages = app.screen.query_one(MessagesTable)
        assert "unconf" not in titles(messages)  # nothing in flight
        for query, shown in (("0B000000123456", True), ("0B0000001234567A", False)):
            await pilot.press("slash", *query, "enter")
            for _ in range(100):
                if messages.rows and ("unconf" in titles(messages)) == shown:
                    break
                await pilot.pause(0.05)
            assert messages.rows and ("unconf" in titles(messages)) == shown, query
            await pilot.press("escape")
