"""Campaigns in the live monitor under Pilot, with webhooks posted over real HTTP: the panel,
the campaign screen and its drill-down to the raw JSON, the run's campaign from the palette,
and the do-not-send list from the keyboard."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smswatch.tui.screens.campaign import CampaignNameScreen, CampaignScreen
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.message import MessageScreen
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.campaigns import CampaignsTable
from tests.test_tui import dashboard, plain, until
from tests.tui_support import T0, Env, iso, lisoloo_event

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)  # exports land here


def bulk_send(
    env: Env, name: str, n: int, at: int = T0, fail: int = 0, first: int = 0
) -> list[str]:
    """A YeboLink bulk send: one message per recipient, all with the same metadata."""
    ids = []
    for i in range(first, first + n):
        mid = f"00000000-0000-4000-8000-{i:012d}"
        base = {
            "message_id": mid,
            "channel": "sms",
            "recipient": f"+2687600{i:04d}",
            "metadata": {"campaign": name, "user_id": str(i)},
        }
        assert (
            env.yebolink(
                {
                    "event": "message.queued",
                    "timestamp": iso(at),
                    "data": {**base, "status": "queued", "credits_used": 1},
                }
            )
            == 200
        )
        final = "failed" if i - first < fail else "delivered"
        extra = {"error_code": "30006", "error_message": "Landline"} if i - first < fail else {}
        assert (
            env.yebolink(
                {
                    "event": f"message.{final}",
                    "timestamp": iso(at + 3_000_000),
                    "data": {**base, "status": final, **extra},
                }
            )
            == 200
        )
        ids.append(mid)
    return ids


def exported(where: Path) -> list[Path]:
    return list(where.glob("smswatch-suppression-*.csv"))


def campaigns_table(app: Any) -> CampaignsTable:
    return app.screen.query_one(CampaignsTable)


async def test_a_bulk_send_is_one_row_and_drills_down_to_the_raw_json(env: Env) -> None:
    bulk_send(env, "black-friday", 40, fail=3)
    async with dashboard(env, data=False) as (app, pilot):
        await until(pilot, lambda: len(campaigns_table(app).rows) == 1)
        row = campaigns_table(app).rows[0]
        assert (row.name, row.messages, row.recipients) == ("black-friday", 40, 40)
        await pilot.press("c")
        assert app.focused is campaigns_table(app)
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, CampaignScreen) and app.screen.view is not None
        )
        screen = app.screen
        assert screen.view.summary.counts  # the funnel, from the store
        header = plain(screen.query_one("#campaign-header"))
        assert "black-friday" in screen.query_one("#campaign-header").border_title
        assert "92.5%" in header  # 37 of 40 delivered
        assert "done" in header  # ETA: every recipient final
        failures = screen.query_one("#campaign-failures")
        assert [g.error_code for g, _ in failures.rows] == ["30006"]
        messages = screen.query_one("#campaign-messages")
        await until(pilot, lambda: len(messages.rows) == 40)
        messages.focus()
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, MessageScreen) and app.screen.detail is not None
        )
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, RecipientScreen) and app.screen.detail is not None
        )
        assert '"campaign"' in str(app.screen.detail.events[0].payload)  # the raw JSON
        for expected in (MessageScreen, CampaignScreen, DashboardScreen):
            await pilot.press("escape")
            await until(pilot, lambda e=expected: isinstance(app.screen, e))


async def test_palette_starts_and_ends_the_runs_campaign(env: Env, tmp_path: Path) -> None:
    async with dashboard(env, data=False) as (app, pilot):
        app.ask_campaign_name()
        await until(pilot, lambda: isinstance(app.screen, CampaignNameScreen))
        await pilot.press(*"spring-promo", "enter")
        await until(pilot, lambda: app.source.run_campaign() == "spring-promo")
        body = lisoloo_event(1, "sms.queued", "a1a1a1a1a1a1a1a1a1a1a1a1", T0, total_recipients=2)
        assert env.lisoloo(body) == 200
        await until(
            pilot, lambda: [r.name for r in campaigns_table(app).rows] == ["spring-promo"], 10
        )
        assert "new messages join spring-promo" in campaigns_table(app).border_subtitle
        app.start_campaign(None)
        await until(pilot, lambda: app.source.run_campaign() is None)
        body = lisoloo_event(
            2, "sms.queued", "b2b2b2b2b2b2b2b2b2b2b2b2", T0 + 1, total_recipients=1
        )
        assert env.lisoloo(body) == 200
        await until(pilot, lambda: len(campaigns_table(app).rows) == 2, 10)
    # Stored: the tag lives in the log's file, the second message has none (a burst).
    with sqlite3.connect(tmp_path / "tui.db") as db:
        assert db.execute("SELECT message_id, campaign, source FROM campaigns").fetchall() == [
            ("a1a1a1a1a1a1a1a1a1a1a1a1", "spring-promo", "run")
        ]


async def test_the_do_not_send_list_from_the_campaign_screen(env: Env, tmp_path: Path) -> None:
    bulk_send(env, "clinic-recall", 6, fail=2)
    async with dashboard(env, data=False) as (app, pilot):
        await until(pilot, lambda: len(campaigns_table(app).rows) == 1)
        app.open_campaign("clinic-recall")
        await until(
            pilot, lambda: isinstance(app.screen, CampaignScreen) and app.screen.view is not None
        )
        await pilot.press("x")
        await until(pilot, lambda: exported(tmp_path) != [])
    [path] = exported(tmp_path)
    rows = list(csv.DictReader(io.StringIO(await asyncio.to_thread(path.read_text))))
    assert sorted(r["recipient"] for r in rows) == ["+26876000000", "+26876000001"]
    assert {r["error_code"] for r in rows} == {"30006"}
    assert {r["campaign"] for r in rows} == {"clinic-recall"}


async def test_a_campaign_named_like_markup_is_drawn_as_it_is(env: Env) -> None:
    """Campaign names come from the sender's metadata: drawn literally in the panel, the
    screen's title and the palette, never taken as markup (a stray "[/]" used to end the app)."""
    for n, name in enumerate(("[/]", "[@click=app.quit]x")):
        bulk_send(env, name, 2, first=10 * n)
    async with dashboard(env, data=False) as (app, pilot):
        await until(pilot, lambda: len(campaigns_table(app).rows) == 2)
        for name in ("[/]", "[@click=app.quit]x"):
            app.open_campaign(name)
            await until(
                pilot,
                lambda: isinstance(app.screen, CampaignScreen) and app.screen.view is not None,
            )
            title = app.screen.query_one("#campaign-header").border_title
            assert name in str(title)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert app.is_running
