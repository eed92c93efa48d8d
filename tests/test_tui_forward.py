"""Forwarding in the monitor (`--forward-to`), end to end: a real engine forwarding over real HTTP
(its forwarder a child process, its outbox real SQLite) to a real app that fails and recovers,
watched through the TUI under Pilot, locally and from an `attach` viewer over the feed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from rich.console import Console

from smswatch.config import Credentials
from smswatch.core.forwarding import Target
from smswatch.feed.client import RemoteSource
from smswatch.forward.config import ForwardConfig
from smswatch.live.engine import Engine, EngineConfig
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.commands import RESEND_FAILED, SmsWatchCommands
from smswatch.tui.screens.dashboard import DashboardScreen
from smswatch.tui.screens.help import HelpScreen
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.alerts import AlertsPanel
from smswatch.tui.widgets.timeline import Timeline
from tests.conftest import Client, running
from tests.test_forward import App
from tests.tui_support import BASIC, SECRET, Env, campaign, lisoloo_event

pytestmark = pytest.mark.timeout(120)

MID = "65a1b2c3d4e5f60718293a4b"
FAILED_RECIPIENT = "+243810000004"  # processing, sent, failed (with hostile text)
CAMPAIGN_EVENTS = 23  # what tui_support.campaign posts
# The app's answer when it fails: markup, an escape sequence and a bidi override, to be drawn
# literally (its shape must survive: a JSON excerpt first, as apps answer).
HOSTILE = '{"error": "database is locked"} [bold]boom[/] \x1b[2J\u202eevil'


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


@dataclass
class FlakyApp(App):
    """The team's app: answers `failing` (500 with HOSTILE, or any status) until told not to."""

    failing: int | None = 500
    first_failure_at: float | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("X-Smswatch-Event-Id", "")
        self.received[event_id].append({"body": body, "headers": dict(request.headers)})
        if self.failing is not None:
            self.answers.append(self.failing)
            if self.first_failure_at is None:
                self.first_failure_at = time.monotonic()
            return web.Response(status=self.failing, text=HOSTILE)
        self.answers.append(200)
        return web.json_response({"ok": True})

    @property
    def url_with_password(self) -> str:
        return f"http://hook:topsecret@127.0.0.1:{self.port}/hooks/sms"


def forward_to(url: str, **kw: Any) -> ForwardConfig:
    # No Basic auth of our own on Lisoloo forwards: the URL's credentials are the app's.
    values: dict[str, Any] = dict(
        targets=(Target(url),),
        secret=SECRET,
        timeout=2.0,
        base_delay=0.05,
        max_delay=0.3,
        max_attempts=1000,
    )
    values.update(kw)
    return ForwardConfig(**values)


@pytest.fixture
async def flaky() -> AsyncIterator[FlakyApp]:
    server = await FlakyApp().start()
    yield server
    await server.stop()


async def until(pilot: Any, condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def plain(renderable: Any) -> str:
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def forwarding_line(app: SmsWatchApp) -> str:
    widget = app.screen.query_one("#forwarding")
    return plain(widget.content) if widget.display else ""  # type: ignore[attr-defined]


def alerts(app: SmsWatchApp, kind: str) -> list[Any]:
    return [a for a in app.screen.query_one(AlertsPanel).rows if a.kind == kind]


def timeline_text(app: SmsWatchApp) -> list[str]:
    return [plain(block.content) for block in app.screen.query_one(Timeline).blocks]  # type: ignore[attr-defined]


def help_text(app: SmsWatchApp) -> str:
    return plain(app.screen.query_one("#help-body").content)  # type: ignore[attr-defined]


def toasts(app: SmsWatchApp) -> list[Any]:
    return list(app._notifications)


@contextlib.asynccontextmanager
async def monitor(env: Env) -> AsyncIterator[tuple[SmsWatchApp, Any]]:
    app = env.app()
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        yield app, pilot


async def test_the_monitor_shows_the_backlog_and_a_failing_app_then_its_recovery(
    tmp_path: Path, flaky: FlakyApp
) -> None:
    env = Env(tmp_path, forward=forward_to(flaky.url_with_password))
    try:
        async with monitor(env) as (app, pilot):
            # The line is there as soon as the engine reports its target (nothing sent yet).
            await until(pilot, lambda: "backlog 0" in forwarding_line(app))
            line = forwarding_line(app)
            assert "http://hook:***@127.0.0.1" in line and "topsecret" not in line
            assert "not tried yet" in line
            await asyncio.to_thread(campaign, env)
            # The app answers 500: an alert with the status and the start of its answer,
            # and the whole campaign waiting in the backlog.
            await until(pilot, lambda: bool(alerts(app, "forward")), within=30)
            assert flaky.first_failure_at is not None  # shown because the app did fail
            [alert] = alerts(app, "forward")
            assert alert.title == "forward failing: 500" and alert.severity == "error"
            # Untrusted: drawn literally, no escape sequence or bidi override left in it.
            assert alert.detail.startswith('{"error": "database is locked"} [bold]boom[/] ␛[2J')
            assert "\\u202e" in alert.detail
            for text in (alert.title, alert.detail, alert.target):
                assert "\x1b" not in text and "\u202e" not in text and "topsecret" not in text
            await until(pilot, lambda: f"backlog {CAMPAIGN_EVENTS}" in forwarding_line(app))
            line = forwarding_line(app)
            assert "app 500" in line and "FAILING for" in line
            # Opening the alert shows the whole answer, as plain text.
            panel = app.screen.query_one(AlertsPanel)
            panel.focus()
            panel.cursor = panel.rows.index(alerts(app, "forward")[0])
            await pilot.press("enter")
            await until(pilot, lambda: any(t.title == "Forwarding failing" for t in toasts(app)))
            [toast] = [t for t in toasts(app) if t.title == "Forwarding failing"]
            assert not toast.markup and "[bold]boom[/]" in toast.message
            assert "\x1b" not in toast.message and "topsecret" not in toast.message
            # Nothing on screen shows the password.
            assert "topsecret" not in app.export_screenshot()

            # The app recovers: the backlog drains and the alert goes.
            flaky.failing = None
            await until(pilot, lambda: not alerts(app, "forward"))
            await until(pilot, lambda: "backlog 0" in forwarding_line(app))
            assert "app 200" in forwarding_line(app) and "FAILING" not in forwarding_line(app)
            stored = await asyncio.to_thread(stored_ids, env)
            assert len(stored) == CAMPAIGN_EVENTS
            assert flaky.delivered() >= stored
            for requests in flaky.received.values():
                assert requests[-1]["headers"]["Authorization"].startswith("Basic ")
    finally:
        env.stop()


def stored_ids(env: Env) -> set[str]:
    db = env.thread.engine.config.db_path
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {r[0] for r in conn.execute("SELECT event_id FROM events")}


async def test_resend_from_the_timeline_and_the_palette_reach_the_app(
    tmp_path: Path, flaky: FlakyApp
) -> None:
    # 422 is final (a 4xx is not retried): every forward ends `failed`.
    flaky.failing = 422
    env = Env(tmp_path, forward=forward_to(flaky.url))
    try:
        async with monitor(env) as (app, pilot):
            await asyncio.to_thread(campaign, env)

            def failed() -> int:
                fw = app.model.counters.forwarding
                return fw[0].failed if fw else 0

            await until(pilot, lambda: failed() == CAMPAIGN_EVENTS)
            assert {a.title for a in alerts(app, "forward")} == {"forward failing: 422"}

            app.open_recipient(MID, FAILED_RECIPIENT)
            await until(
                pilot,
                lambda: isinstance(app.screen, RecipientScreen) and app.screen.forwards is not None,
            )
            screen = app.screen
            assert isinstance(screen, RecipientScreen) and screen.detail is not None
            events = screen.detail.events
            assert [e.event_type for e in events] == ["sms.processing", "sms.sent", "sms.failed"]
            timeline = screen.query_one(Timeline)
            await until(pilot, lambda: timeline.selected == 0)  # the first that failed
            blocks = timeline_text(app)
            assert "failed" in blocks[0] and "422" in blocks[0]
            assert '{"error": "database is locked"} [bold]boom[/] ␛[2J' in blocks[0]
            assert "s" in screen.active_bindings  # in the footer

            # The app is back; `s` on the second event sends it, and only it, again.
            flaky.failing = None
            await pilot.press("down")
            assert timeline.selected == 1
            counts = {e.event_id: len(flaky.received[e.event_id]) for e in events}
            assert set(counts.values()) == {1}  # a final answer: one attempt each
            await pilot.press("s")
            chosen = events[1].event_id
            await until(pilot, lambda: len(flaky.received[chosen]) == counts[chosen] + 1)
            await until(
                pilot,
                lambda: any("queued to be sent to the app again" in t.message for t in toasts(app)),
            )
            await until(pilot, lambda: "delivered" in timeline_text(app)[1])
            assert "200" in timeline_text(app)[1]
            assert timeline.selected == 1  # the reload kept the reader's place
            assert {
                e.event_id: len(flaky.received[e.event_id]) for e in events if e.event_id != chosen
            } == {e.event_id: counts[e.event_id] for e in events if e.event_id != chosen}
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))

            # The palette's command sends every other failed forward again.
            await until(pilot, lambda: failed() == CAMPAIGN_EVENTS - 1)
            await pilot.press("ctrl+p")
            await pilot.press(*"re-send every")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(
                pilot,
                lambda: any(
                    t.message.startswith(f"{CAMPAIGN_EVENTS - 1} failed forwards queued")
                    for t in toasts(app)
                ),
            )
            await until(
                pilot,
                lambda: (
                    app.model.counters.forwarding[0].delivered == CAMPAIGN_EVENTS
                    and not alerts(app, "forward")
                ),
            )
            stored = await asyncio.to_thread(stored_ids, env)
            # Each sent twice: once failed, once again (by `s` or the palette), no more.
            assert {eid: len(flaky.received[eid]) for eid in stored} == dict.fromkeys(stored, 2)
            # The help lists the key where it can act.
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert "re-send the selected event" in help_text(app)
    finally:
        env.stop()


async def test_an_attach_viewer_sees_the_forwarding_read_only(
    tmp_path: Path, flaky: FlakyApp, session: Any
) -> None:
    token = "forward-feed-token"
    config = EngineConfig(
        db_path=tmp_path / "serve.db",
        port=0,
        credentials=Credentials(BASIC, SECRET),
        hub_tick=0.05,
        feed_port=0,
        feed_token=token,
        forward=forward_to(flaky.url_with_password),
    )
    flaky.failing = None
    async with running(Engine(config)) as engine:
        assert engine.feed is not None
        client = Client(session, engine.listener.base_url)
        auth = (BASIC[0], BASIC[1])
        recipient = "+243810000077"
        for n, kind in enumerate(("sms.processing", "sms.sent"), start=1):
            body = lisoloo_event(n, kind, MID, 1_795_400_000_000_000 + n, recipient_phone=recipient)
            assert (await client.lisoloo(json.dumps(body), auth))[0] == 200
        viewer = SmsWatchApp(
            RemoteSource(engine.feed.url, token, backoff=(0.2, 0.5)),
            theme="dark",
            remember_theme=False,
        )
        async with viewer.run_test(size=(160, 45), notifications=True) as pilot:
            await until(
                pilot, lambda: viewer.connected and isinstance(viewer.screen, DashboardScreen)
            )
            await until(
                pilot,
                lambda: (
                    "backlog 0" in forwarding_line(viewer) and "app 200" in forwarding_line(viewer)
                ),
            )
            assert "http://hook:***@127.0.0.1" in forwarding_line(viewer)
            # Nothing on the wire carried the password either.
            assert "topsecret" not in viewer.model.counters.forwarding[0].target
            # Read-only: no re-send command in the palette.
            titles = [c[0] for c in SmsWatchCommands(viewer.screen)._commands()]
            assert RESEND_FAILED not in titles and not viewer.can_resend

            viewer.open_recipient(MID, recipient)
            await until(
                pilot,
                lambda: (
                    isinstance(viewer.screen, RecipientScreen)
                    and viewer.screen.forwards is not None
                    and len(viewer.screen.query_one(Timeline).blocks) == 2
                ),
            )
            blocks = timeline_text(viewer)
            for block in blocks:
                assert "forward http://hook:***@127.0.0.1" in block
                assert "delivered" in block and "200" in block
                assert "topsecret" not in block
            # …and no re-send key: absent from the footer, and pressing it does nothing.
            assert "s" not in viewer.screen.active_bindings
            before = sum(len(r) for r in flaky.received.values())
            await pilot.press("s")
            await pilot.pause(0.5)
            assert sum(len(r) for r in flaky.received.values()) == before
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(viewer.screen, HelpScreen))
            assert "re-send" not in help_text(viewer) and "Forward" in help_text(viewer)


def test_an_app_that_fails_now_and_then_is_not_called_failing() -> None:
    from smswatch.core.forwarding import Attempt, TargetStatus
    from smswatch.tui.alert_rules import failing

    last = Attempt(1, "http://app/", 10, 503, "busy", 2)

    def status(failed_attempts: int) -> TargetStatus:
        return TargetStatus("http://app/", 1, 0, 50, 5, last, 9, (), failed_attempts)

    assert not failing(status(1))  # one 503 among deliveries
    assert not failing(status(2))
    assert failing(status(3))  # three in a row since the last delivery: the app is failing
