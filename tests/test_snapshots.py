"""Snapshot tests of the live monitor (sync `snap_compare`: frozen clocks, pinned theme, UTC).

The data is real: a fixed campaign is posted over HTTP to a real engine whose clock is frozen,
so every receive time is the same on every run. The random port and temporary path shown in the
status bar are replaced with fixed ones before the app starts.
Update after looking at the report: `pytest tests/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smswatch.live.datasource import LocalSource
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.screens.campaign import CampaignScreen
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.lists import RejectionsScreen
from smswatch.tui.screens.message import MessageScreen
from smswatch.tui.screens.recipient import RecipientScreen
from tests.tui_support import T0, Env, campaign

MID = "65a1b2c3d4e5f60718293a4b"
NOW = T0 + 90_000_000  # the app's frozen clock: 90 s after the last webhook
SETTINGS = {"stuck": {"processing": 120, "sent": 120}}


@pytest.fixture(scope="module", autouse=True)
def _utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def make_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SmsWatchApp]]:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    env = Env(tmp_path, clock=lambda: T0)
    campaign(env)
    stale = {
        "event": "message.delivered",
        "timestamp": "2026-11-22T23:30:00Z",
        "data": {"message_id": "stale", "recipient": "+26876000009"},
    }
    assert env.yebolink(stale, secret="an-old-rotated-secret") == 401
    env.wait_quarantined(1)
    port = str(env.thread.engine.listener.port)

    def make(theme: str = "dark") -> SmsWatchApp:
        source = LocalSource(env.thread)
        gateways = [replace(g, url=g.url.replace(port, "8787")) for g in source.info.gateways]
        source.info = replace(source.info, db_path="campaign.db", gateways=gateways)
        return SmsWatchApp(
            source, theme=theme, settings=SETTINGS, clock=lambda: NOW, remember_theme=False
        )

    yield make
    env.stop()


async def settled(pilot: Any) -> None:
    """Wait until the dashboard has its first data and its alert queries have answered."""
    app = pilot.app
    for _ in range(200):
        if (
            isinstance(app.screen, DashboardScreen)
            and app.model.failures
            and app.model.stuck is not None
            and len(app.model.campaigns) == 2
        ):
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


def opened(
    screen_type: type, ready: Callable[[Any], bool], action: Callable[[SmsWatchApp], None]
) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        await settled(pilot)
        action(pilot.app)
        for _ in range(200):
            if isinstance(pilot.app.screen, screen_type) and ready(pilot.app.screen):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    return run_before


def test_dashboard(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(160, 45), run_before=settled)


def test_dashboard_80x24(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=settled)


def test_dashboard_light_theme(snap_compare, make_app) -> None:
    assert snap_compare(make_app("light"), terminal_size=(120, 36), run_before=settled)


def test_alerts_with_a_bad_signature_rejection(snap_compare, make_app) -> None:
    run_before = opened(
        RejectionsScreen,
        lambda s: any(t.rows for t in s.query("#rejections")),
        lambda a: a.open_rejections("bad_signature"),
    )
    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)


def test_message_screen(snap_compare, make_app) -> None:
    run_before = opened(
        MessageScreen, lambda s: s.detail is not None, lambda a: a.open_message(MID)
    )
    assert snap_compare(make_app(), terminal_size=(140, 36), run_before=run_before)


def test_recipient_timeline(snap_compare, make_app) -> None:
    run_before = opened(
        RecipientScreen,
        lambda s: s.detail is not None and bool(s.query(".event")),
        lambda a: a.open_recipient(MID, "+243810000004"),
    )
    assert snap_compare(make_app(), terminal_size=(120, 45), run_before=run_before)


def test_help(snap_compare, make_app) -> None:
    assert snap_compare(
        make_app(), terminal_size=(120, 40), run_before=settled, press=["question_mark"]
    )


def test_campaign_screen(snap_compare, make_app) -> None:
    """The Lisoloo send as a burst: progress, latency per stage, cost, carriers (one of them
    hostile text), failures with the catalogue's advice, a stuck recipient, a conflict."""
    run_before = opened(
        CampaignScreen,
        lambda s: s.view is not None,
        lambda a: a.open_campaign(a.model.campaigns[-1].name),
    )
    assert snap_compare(make_app(), terminal_size=(160, 45), run_before=run_before)


def test_campaign_screen_yebolink_metadata(snap_compare, make_app) -> None:
    run_before = opened(
        CampaignScreen,
        lambda s: s.view is not None,
        lambda a: a.open_campaign("black-friday"),
    )
    assert snap_compare(make_app("light"), terminal_size=(120, 40), run_before=run_before)


# --- small terminals (issue 19): every screen at 80x24 and 100x30 -----------------------------


def test_dashboard_100x30(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=settled)


def open_message() -> Callable[[Any], Any]:
    return opened(MessageScreen, lambda s: s.detail is not None, lambda a: a.open_message(MID))


def open_recipient() -> Callable[[Any], Any]:
    return opened(
        RecipientScreen,
        lambda s: s.detail is not None and bool(s.query(".event")),
        lambda a: a.open_recipient(MID, "+243810000004"),
    )


def open_campaign() -> Callable[[Any], Any]:
    return opened(
        CampaignScreen,
        lambda s: s.view is not None,
        lambda a: a.open_campaign(a.model.campaigns[-1].name),
    )


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
def test_message_screen_small(snap_compare, make_app, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=open_message())


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
def test_recipient_timeline_small(snap_compare, make_app, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=open_recipient())


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
def test_campaign_screen_small(snap_compare, make_app, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=open_campaign())


def test_help_80x24(snap_compare, make_app) -> None:
    assert snap_compare(
        make_app(), terminal_size=(80, 24), run_before=settled, press=["question_mark"]
    )
