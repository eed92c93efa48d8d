"""The live monitor under Pilot: each key flow, with webhooks posted over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Input

from smswatch.core.domain import State
from smswatch.tui.app import SmsWatchApp, UpdateArrived
from smswatch.tui.screens.dashboard import DashboardScreen, MessagesTable
from smswatch.tui.screens.help import HelpScreen
from smswatch.tui.screens.lists import RejectionsScreen, StuckScreen
from smswatch.tui.screens.message import MessageScreen, RecipientsTable
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.alerts import AlertsPanel
from smswatch.tui.widgets.campaigns import CampaignsTable
from smswatch.tui.widgets.transitions import TransitionLog
from tests.tui_support import Env, campaign, lisoloo_event

MID = "65a1b2c3d4e5f60718293a4b"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.stop()


async def until(pilot, condition: Callable[[], bool], within: float = 8.0) -> None:
    """Let the app run until `condition()` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


@contextlib.asynccontextmanager
async def dashboard(
    env: Env, size: tuple[int, int] = (160, 45), *, data: bool = True, **app_options: Any
) -> AsyncIterator[tuple[SmsWatchApp, Any]]:
    """The app on its dashboard, optionally over the fixed campaign."""
    if data:
        campaign(env)
    app = env.app(**app_options)
    async with app.run_test(size=size, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        yield app, pilot


async def open_alert(pilot: Any, alerts: AlertsPanel, alert: Any) -> None:
    alerts.focus()
    alerts.cursor = alerts.rows.index(alert)
    await pilot.press("enter")


def log_lines(app: SmsWatchApp) -> list[str]:
    log = app.screen.query_one(TransitionLog)
    return [log._entry_text(e, 200).plain for e in log.shown]


def plain(widget) -> str:
    """The text a Static shows, as plain characters."""
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.export_text()


def table_lines(table) -> list[str]:
    return [" ".join(c.plain for c in table.cells(row)) for row in table.rows]


async def test_a_webhook_over_http_appears_on_the_dashboard_and_in_the_message_screen(
    env: Env,
) -> None:
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        status = await env.alisoloo(
            lisoloo_event(1, "sms.queued", MID, 1_795_400_000_000_000, total_recipients=2)
        )
        assert status == 200
        await env.alisoloo(
            lisoloo_event(
                2,
                "sms.sent",
                MID,
                1_795_400_001_000_000,
                recipient_phone="+243810000001",
                carrier="vodacom_drc",
            )
        )
        table = app.screen.query_one(MessagesTable)
        await until(
            pilot, lambda: any(m.message_id == MID and m.count(State.SENT) == 1 for m in table.rows)
        )
        await until(
            pilot,
            lambda: any("+243810000001" in line and "sent" in line for line in log_lines(app)),
        )
        assert app.model.counters.events == 2
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MessageScreen))
        recipients = app.screen.query_one(RecipientsTable)
        await until(pilot, lambda: len(recipients.rows) == 1)
        # A later webhook reaches the open message screen too.
        await env.alisoloo(
            lisoloo_event(
                3, "sms.delivered", MID, 1_795_400_005_000_000, recipient_phone="+243810000001"
            )
        )
        await until(pilot, lambda: recipients.rows and recipients.rows[0].state == State.DELIVERED)
        assert app.screen.detail.message.count(State.QUEUED) == 1  # announced, not named yet
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, RecipientScreen) and app.screen.detail is not None
        )
        assert [e.event_type for e in app.screen.detail.events] == ["sms.sent", "sms.delivered"]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MessageScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


async def test_filter_by_error_code_and_phone_then_escape_clears(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        table = app.screen.query_one(MessagesTable)
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("slash")
        await pilot.press(*"30006")
        await until(pilot, lambda: [m.provider for m in table.rows] == ["yebolink"])
        assert all("30006" in line for line in log_lines(app))
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.screen.query_one("#filter").display
        await pilot.press("escape")
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("slash", *"+24381000000", "4")
        await until(pilot, lambda: [m.message_id for m in table.rows] == [MID])
        await pilot.press("escape")
        await until(
            pilot, lambda: len(table.rows) == 2 and not app.screen.query_one("#filter").display
        )


async def test_filter_matches_within_any_field_whatever_the_case(env: Env) -> None:
    """One rule for the in-flight table, the campaigns panel and the transitions: the text
    typed anywhere in a field, in any case; a typed `%` or `_` is literal."""
    ymid = "550e8400-e29b-41d4-a716-446655440000"
    async with dashboard(env, (160, 45)) as (app, pilot):
        table = app.screen.query_one(MessagesTable)
        campaigns = app.screen.query_one(CampaignsTable)
        await until(pilot, lambda: len(table.rows) == 2 and len(campaigns.rows) == 2)
        box = app.screen.query_one("#filter", Input)
        for typed, messages, gateways in (
            ("AIRTEL", [MID], set()),  # a carrier, airtel_drc
            ("vodacom", [MID], set()),
            ("yebo", [ymid], {"yebolink"}),  # a gateway
            ("LisoL", [MID], {"lisoloo"}),
            ("2438100000", [MID], set()),  # a phone number, within
            ("a1b2c3", [MID], set()),  # a message id, within
            ("vodacom%drc", [], set()),  # a wildcard taken literally
            ("airtel_", [MID], set()),
            ("airtel_x", [], set()),
        ):
            await pilot.press("slash")
            box.value = typed
            await pilot.press("enter")
            await until(pilot, lambda m=messages: [r.message_id for r in table.rows] == m)
            await until(
                pilot, lambda g=gateways: {p for c in campaigns.rows for p in c.providers} == g
            )
            log = app.screen.query_one(TransitionLog)
            assert {e.message_id for e in log.shown} == set(messages), typed
            await pilot.press("escape")
            await until(pilot, lambda: len(table.rows) == 2)


async def test_failures_only(env: Env) -> None:
    campaign(env)
    env.lisoloo(
        lisoloo_event(
            99, "sms.sent", "aaaaaaaaaaaaaaaaaaaaaaaa", 1_795_400_000_000_000, recipient_phone="+1"
        )
    )
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        table = app.screen.query_one(MessagesTable)
        await until(pilot, lambda: len(table.rows) == 3)
        await pilot.press("f")
        await until(pilot, lambda: len(table.rows) == 2)
        assert all(m.has_failures for m in table.rows)
        assert all("failed" in line for line in log_lines(app))
        await pilot.press("f")
        await until(pilot, lambda: len(table.rows) == 3)


async def test_pause_freezes_the_scroll_but_not_the_counters(env: Env) -> None:
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        await env.alisoloo(
            lisoloo_event(1, "sms.sent", MID, 1_795_400_000_000_000, recipient_phone="+1")
        )
        await until(pilot, lambda: len(log_lines(app)) == 1)
        await pilot.press("space")
        assert app.paused
        await env.alisoloo(
            lisoloo_event(2, "sms.sent", MID, 1_795_400_000_000_000, recipient_phone="+2")
        )
        await until(pilot, lambda: app.model.counters.events == 2)
        log = app.screen.query_one(TransitionLog)
        assert len(log_lines(app)) == 1
        assert log.waiting_total == 1
        status = plain(app.screen.query_one("#pulse"))
        assert "2 events" in status and "PAUSED" in status
        await pilot.press("space")
        await until(pilot, lambda: len(log_lines(app)) == 2)


async def test_mask_hides_phone_numbers_everywhere(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        assert any("+243810000001" in line for line in log_lines(app))
        await pilot.press("m")
        assert app.masked
        lines = log_lines(app)
        assert not any("+243810000001" in line for line in lines)
        assert any("+243•••••••01" in line for line in lines)
        app.open_message(MID)
        await until(
            pilot, lambda: isinstance(app.screen, MessageScreen) and app.screen.detail is not None
        )
        table = app.screen.query_one(RecipientsTable)
        assert all("•" in line.split()[0] for line in table_lines(table))
        app.open_recipient(MID, "+243810000001")
        await until(
            pilot, lambda: isinstance(app.screen, RecipientScreen) and app.screen.detail is not None
        )
        await pilot.pause()
        shown = "".join(plain(s) for s in app.screen.query(".event"))
        assert "+243810000001" not in shown
        assert "+243•••••••01" in shown


async def test_theme_cycles_and_is_remembered(env: Env, tmp_path: Path) -> None:
    async with dashboard(env, (120, 40), data=False, remember_theme=True) as (app, pilot):
        assert app.theme == "dark"
        await pilot.press("t")
        assert app.theme == "light"
        await pilot.press("t")
        assert app.theme == "high-contrast"
        await pilot.press("t")
        assert app.theme == "dark"
        await pilot.press("t")
    assert '"theme": "light"' in (tmp_path / "config" / "state.json").read_text()
    again = env.app(theme=None)
    assert again.theme == "light"


async def test_user_theme_files_are_loaded_and_bad_ones_reported(env: Env, tmp_path: Path) -> None:
    themes = tmp_path / "config" / "themes"
    themes.mkdir(parents=True)
    (themes / "sunset.toml").write_text(
        'primary = "#ff8800"\ndark = true\n[states]\ndelivered = "#00aa00"\n'
    )
    (themes / "broken.toml").write_text('primary = "not-a-colour"\n')
    async with dashboard(env, (120, 40), data=False, theme="sunset") as (app, _):
        assert app.theme == "sunset"
        assert app.palette.state(State.DELIVERED) == "#00aa00"
        assert "sunset" in app.theme_names()
        assert any("broken.toml" in p for p in app.theme_problems)


async def test_help_opens_and_closes(env: Env) -> None:
    async with dashboard(env, (100, 30), data=False) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


def bound_classes() -> list[type]:
    """The app and every screen and widget class of the TUI with bindings of its own, found by
    importing the package (a new screen is found too). Modal prompts say their keys themselves."""
    import importlib
    import inspect

    from textual.dom import DOMNode
    from textual.screen import ModalScreen

    import smswatch.tui

    found: list[type] = [SmsWatchApp]
    root = Path(smswatch.tui.__file__).parent
    for path in sorted(root.rglob("*.py")):  # screens/ has no __init__: walk the files
        name = ".".join(("smswatch", "tui", *path.relative_to(root).with_suffix("").parts))
        module = importlib.import_module(name.removesuffix(".__init__"))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, DOMNode)
                and cls.__module__ == module.__name__
                and "BINDINGS" in vars(cls)
                and not issubclass(cls, ModalScreen)
            ):
                found.append(cls)
    return found


async def test_help_lists_every_binding_of_every_screen(env: Env) -> None:
    from textual.binding import Binding
    from textual.keys import format_key

    from smswatch.tui.screens.help import CONDITIONAL, EXPLAIN

    classes = bound_classes()
    assert {DashboardScreen, MessageScreen, RecipientScreen, SmsWatchApp} <= set(classes)
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        lines = plain(app.screen.query_one("#help-body")).splitlines()
    missing = []
    for cls in classes:
        for b in Binding.make_bindings(cls.BINDINGS):
            if b.action in CONDITIONAL and not getattr(app, CONDITIONAL[b.action]):
                continue  # listed where it can act (tests/test_tui_forward.py)
            what = [v for k, v in EXPLAIN.items() if k.split(".")[-1] == b.action]
            shown = [
                line
                for line in lines
                if format_key(b.key) in line[:12].split()  # the key column: its keys
                and any(w in line for w in [b.description, *what])
            ]
            if not shown:
                missing.append(f"{cls.__name__}: {b.key} ({b.action})")
    assert not missing, missing
    assert any(line.split()[:1] == ["p"] and "poll" in line for line in lines)


async def test_a_bad_signature_is_obvious_within_seconds(env: Env) -> None:
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        body = {
            "event": "message.sent",
            "timestamp": "2026-11-23T10:00:00Z",
            "data": {"message_id": "m", "recipient": "+1"},
        }
        assert await env.ayebolink(body, secret="the-old-secret") == 401
        alerts = app.screen.query_one(AlertsPanel)
        await until(
            pilot, lambda: any(a.key == "rejected:bad_signature" for a in alerts.rows), within=30
        )
        [alert] = [a for a in alerts.rows if a.kind == "rejected"]
        assert alert.severity == "error" and "secret" in alert.detail
        assert any("bad_signature" in n.message for n in app._notifications)
        await open_alert(pilot, alerts, alert)
        await until(pilot, lambda: isinstance(app.screen, RejectionsScreen))
        table = app.screen.query_one("#rejections")
        await until(pilot, lambda: len(table.rows) == 1)
        shown = plain(app.screen.query_one("#rejection-body"))
        assert "the body" in shown and '"message.sent"' in shown


async def test_stuck_and_silence_alerts(env: Env) -> None:
    async with dashboard(
        env, (160, 45), settings={"stuck": {"processing": 0.5, "sent": 0.5}, "silence_after": 0.5}
    ) as (app, pilot):
        alerts = app.screen.query_one(AlertsPanel)
        await until(pilot, lambda: {"stuck", "silence"} <= {a.kind for a in alerts.rows})
        stuck = next(a for a in alerts.rows if a.kind == "stuck")
        assert stuck.count == 2  # one processing, one sent (the conflict is terminal)
        await open_alert(pilot, alerts, stuck)
        await until(pilot, lambda: isinstance(app.screen, StuckScreen))
        table = app.screen.query_one("#stuck")
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RecipientScreen))


async def test_a_failure_group_filters_by_its_code(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        alerts = app.screen.query_one(AlertsPanel)
        await until(pilot, lambda: any(a.kind == "failure" for a in alerts.rows))
        codes = {a.target for a in alerts.rows if a.kind == "failure"}
        assert codes == {"1502", "1503", "30006"}
        group = next(a for a in alerts.rows if a.target == "30006")
        await open_alert(pilot, alerts, group)
        table = app.screen.query_one(MessagesTable)
        await until(pilot, lambda: [m.provider for m in table.rows] == ["yebolink"])


async def test_store_failure_shows_in_the_status_bar(env: Env, tmp_path: Path) -> None:
    env.thread.engine.writer.busy_timeout_ms = 50
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        blocker = sqlite3.connect(tmp_path / "tui.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            assert (
                await env.alisoloo(lisoloo_event(1, "sms.sent", MID, 1, recipient_phone="+1"))
                == 503
            )
            await until(pilot, lambda: "STORE FAILING" in plain(app.screen.query_one("#pulse")))
            assert any(a.kind == "store" for a in app.screen.query_one(AlertsPanel).rows)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await env.alisoloo(lisoloo_event(1, "sms.sent", MID, 1, recipient_phone="+1")) == 200
        await until(pilot, lambda: "STORE FAILING" not in plain(app.screen.query_one("#pulse")))


async def test_command_palette_goes_to_a_message(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        await pilot.press("ctrl+p")
        await pilot.press(*"65a1b2")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MessageScreen))
        assert app.screen.message_id == MID


def palette_entries(app: SmsWatchApp) -> list[str]:
    from textual.command import CommandList
    from textual.css.query import NoMatches

    try:
        options = app.screen.query_one(CommandList).options
    except NoMatches:  # between two palettes (the theme list replaces the commands)
        return []
    return [getattr(o.prompt, "plain", str(o.prompt)).splitlines()[0] for o in options]


async def test_the_palette_lists_the_apps_own_commands_and_its_own_themes(env: Env) -> None:
    from textual.command import CommandPalette

    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: "Change theme…" in palette_entries(app))
        entries = palette_entries(app)
        assert entries == [
            "Export all events to a JSONL file",
            "Mask phone numbers",
            "Failures only (toggle)",
            "Pause / resume the live scroll",
            "Rejected requests",
            "Stuck recipients",
            "Campaigns",
            "Export the suppression list (do-not-send CSV)",
            "Start a campaign…",
            "Help",
            "Change theme…",
        ], entries
        await pilot.press(*"change theme")
        await until(pilot, lambda: palette_entries(app)[:1] == ["Change theme…"])
        await pilot.press("enter")
        await until(pilot, lambda: "high-contrast" in palette_entries(app))
        assert palette_entries(app) == app.theme_names()
        await pilot.press(*"light")
        await until(pilot, lambda: palette_entries(app)[:1] == ["light"])
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "light")
        await pilot.press("m")  # masked: the entry offers to show them again
        await pilot.press("ctrl+p")
        await until(pilot, lambda: "Show phone numbers" in palette_entries(app))
        assert "Mask phone numbers" not in palette_entries(app)


async def test_mouse_double_click_opens_a_message(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        table = app.screen.query_one(MessagesTable)
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.click(MessagesTable, offset=(5, 2), times=2)
        await until(pilot, lambda: isinstance(app.screen, MessageScreen))


async def test_resizing_keeps_everything_on_screen(env: Env) -> None:
    async with dashboard(env, (80, 24)) as (app, pilot):
        assert app.screen.has_class("-narrow")
        for size in ((160, 45), (100, 30), (80, 24), (200, 60)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            for widget in app.screen.query("#funnel, #alerts, #messages, #log"):
                region = widget.region
                assert region.width > 10 and region.height >= 3, (size, widget.id, region)
                assert region.right <= size[0] and region.bottom <= size[1]
        assert not app.screen.has_class("-narrow")


async def test_hostile_strings_are_drawn_literally(env: Env) -> None:
    campaign(env)
    app = env.app()
    async with app.run_test(size=(160, 45)) as pilot:
        app.open_recipient(MID, "+243810000004")
        await until(
            pilot, lambda: isinstance(app.screen, RecipientScreen) and app.screen.detail is not None
        )
        await pilot.pause()
        header = plain(app.screen.query_one("#recipient-header"))
        assert "\x1b" not in header
        assert "␛[31m[bold]boom[/]" in header  # markup and escapes shown as text
        screenshot = app.export_screenshot()
        assert "[bold]boom[/]" in screenshot.replace("&#160;", " ")
        # Invisible characters are shown as code points; the Zalgo run keeps two marks.
        assert "zero\\u200bwidth soft\\u00adhyphen" in header
        assert "Z\u0336\u0336[+10 marks]algo" in header
        assert not INVISIBLE & set(header)


INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ufe0f", "\U000e0041"}


async def test_invisible_characters_are_shown_and_marks_keep_the_columns_aligned(
    env: Env,
) -> None:
    mid = "1nv151b1e0000000000000a1"
    twin, plain_phone = "+24399885\u200b7000", "+243998857000"
    carriers = ["zalgo" + "\u0301" * 40, "tag\U000e0041\U000e007f", "\u0300orphan", "plain"]
    phones = [twin, plain_phone, "+24399885\u20607001", "+243998857002"]
    for n, (phone, carrier) in enumerate(zip(phones, carriers, strict=True), 1):
        body = lisoloo_event(n, "sms.sent", mid, T0_SENT, recipient_phone=phone, carrier=carrier)
        assert await env.alisoloo(body) == 200
    app = env.app()
    async with app.run_test(size=(160, 45)) as pilot:
        app.open_message(mid)
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, MessageScreen)
                and len(app.screen.query_one(RecipientsTable).rows) == 4
            ),
        )
        await pilot.pause()
        table = app.screen.query_one(RecipientsTable)
        lines = [table.render_line(y) for y in range(1, 5)]  # under the header
        texts = [line.text for line in lines]
        # The twin that differs by a zero-width space is drawn differently, as its code point.
        assert any(t.startswith("+24399885\\u200b70") for t in texts)
        assert any(t.startswith("+243998857000 ") for t in texts)
        assert any(t.startswith("+24399885\\u206070") for t in texts)
        for text in texts:
            assert not INVISIBLE & set(text)
            assert "\u0301\u0301\u0301" not in text  # never more than two marks in a row
        assert any("◌\u0300orphan" in t for t in texts)  # a leading mark gets its own base
        # Every line fills the same cells, and the state column starts at the same cell.
        assert len({line.cell_length for line in lines}) == 1
        assert len({state_column(line) for line in lines}) == 1


T0_SENT = 1_795_400_000_000_000


def state_column(line: Any) -> int:
    """The cell where the word `sent` starts on a drawn line."""
    from rich.cells import cell_len

    text = line.text
    return cell_len(text[: text.index(" sent ") + 1])


async def test_opening_messages_one_after_another_reuses_the_screen(env: Env) -> None:
    async with dashboard(env) as (app, pilot):
        shown: list[MessageScreen] = []
        for mid, count in ((MID, 7), ("550e8400-e29b-41d4-a716-446655440000", 1), (MID, 7)):
            app.open_message(mid)
            await until(
                pilot,
                lambda mid=mid, count=count: (
                    isinstance(app.screen, MessageScreen)
                    and app.screen.message_id == mid
                    and app.screen.detail is not None
                    and len(app.screen.query_one(RecipientsTable).rows) == count
                ),
            )
            shown.append(app.screen)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        # One screen, built at start-up and installed as "message", shown all three times.
        assert all(screen is app.get_screen("message") for screen in shown)


async def test_q_quits_cleanly(env: Env) -> None:
    async with dashboard(env, data=False) as (app, pilot):
        assert app.return_code is None  # None until the app is asked to exit
        await pilot.press("q")
        await pilot.pause()
        # Set by App.exit(); run_test's own shutdown at the end of the block never sets it.
        assert app.return_code == 0
    assert not app.is_running


async def test_a_burst_too_big_for_one_delta_says_how_many_lines_it_left_out(env: Env) -> None:
    from smswatch.core.live import Delta

    async with dashboard(env, data=False) as (app, pilot):
        app.post_message(UpdateArrived(Delta(at=0, counters=app.model.counters, dropped=1234)))
        log = app.screen.query_one(TransitionLog)
        await until(pilot, lambda: "1,234 lines" in str(log.border_subtitle))
        assert "all stored" in str(log.border_subtitle)


def drawn(widget) -> list[str]:
    """What a Line-API widget draws now, line by line, as plain text."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


async def test_drawn_lines_follow_their_rows_the_theme_and_masking(env: Env) -> None:
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        phone = "+243810000001"
        await env.alisoloo(
            lisoloo_event(1, "sms.sent", MID, 1_795_400_001_000_000, recipient_phone=phone)
        )
        table = app.screen.query_one(MessagesTable)
        log = app.screen.query_one(TransitionLog)

        def message_line() -> str:
            return next((line for line in drawn(table) if MID[:12] in line), "")

        await until(pilot, lambda: bool(message_line()) and any(phone in x for x in drawn(log)))
        sent = message_line()
        # An unchanged row is not drawn again: its line is the same object as before.
        assert table.render_line(1) is table.render_line(1)
        await env.alisoloo(
            lisoloo_event(2, "sms.delivered", MID, 1_795_400_002_000_000, recipient_phone=phone)
        )
        await until(pilot, lambda: message_line() != sent)
        assert table.rows[0].count(State.DELIVERED) == 1
        row = next(y for y, line in enumerate(drawn(log)) if "delivered" in line)
        dark = log.render_line(row)
        await pilot.press("t")
        light = log.render_line(row)
        assert light.text == dark.text
        assert [s.style for s in light] != [s.style for s in dark]
        await pilot.press("m")
        assert not any(phone in line for line in drawn(log))
        assert any("+243•••••••01" in line for line in drawn(log))


async def test_live_panels_grow_without_a_relayout_of_the_screen(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layout re-renders every panel, not only the one that grew: at ten ticks a second that
    cost most of a core. Once their scrollbars show, the log and the table grow by repainting
    themselves alone."""
    async with dashboard(env, (160, 45), data=False) as (app, pilot):
        screen = app.screen
        log = screen.query_one(TransitionLog)
        table = screen.query_one(MessagesTable)

        async def waves(first: int, count: int, messages: int) -> None:
            for start in range(first, first + count * 10, 10):
                for n in range(start, start + 10):
                    body = lisoloo_event(
                        n + 1,
                        "sms.sent",
                        f"{n % messages:024x}",
                        1_795_400_000_000_000 + n * 1000,
                        recipient_phone=f"+24381{n:07d}",
                    )
                    assert await env.alisoloo(body) == 200
                await until(pilot, lambda sent=start + 10: len(log.shown) == sent)

        await waves(0, 6, messages=60)  # enough for both panels to need their scrollbars
        await until(pilot, lambda: len(table.rows) == 60)
        await pilot.pause()
        assert log.show_vertical_scrollbar and table.show_vertical_scrollbar
        layouts = 0
        real = screen._refresh_layout

        def counting(*args: Any, **kwargs: Any) -> None:
            nonlocal layouts
            layouts += 1
            real(*args, **kwargs)

        monkeypatch.setattr(screen, "_refresh_layout", counting)
        await waves(60, 6, messages=90)  # 30 more messages, 60 more log lines, in 6 deltas
        await until(pilot, lambda: len(table.rows) == 90)
        await pilot.pause()
        assert layouts == 0
        assert log.virtual_size.height == 120
        assert log.scroll_y == log.max_scroll_y > 0  # still following the newest line
        assert "+243810000119" in drawn(log)[-1]


async def test_moving_the_cursor_opens_nothing_until_enter(env: Env) -> None:
    async with dashboard(env, (160, 45)) as (app, pilot):
        other = "75a1b2c3d4e5f60718293a4c"
        await env.alisoloo(lisoloo_event(900, "sms.queued", other, 1_795_400_000_000_000))
        table = app.screen.query_one(MessagesTable)
        alerts = app.screen.query_one(AlertsPanel)
        # The campaign's finished YeboLink message may still linger in the table: wait for the
        # new one, whatever else is shown.
        await until(
            pilot,
            lambda: (
                any(m.message_id == other for m in table.rows)
                and len(table.rows) >= 2
                and len(alerts.rows) >= 2
            ),
        )
        for panel in (alerts, table):
            panel.focus()
            await pilot.press("down", "pagedown", "up", "end", "home", "down")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
            assert panel.cursor == 1
        chosen = table.rows[1].message_id
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MessageScreen))
        assert app.screen.message_id == chosen
        await pilot.press("escape")
        app.open_message(MID)
        await until(
            pilot, lambda: isinstance(app.screen, MessageScreen) and app.screen.message_id == MID
        )
        recipients = app.screen.query_one(RecipientsTable)
        await until(pilot, lambda: len(recipients.rows) >= 2)
        recipients.focus()
        await pilot.press("down")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        assert recipients.cursor == 1


async def test_a_rejection_toast_draws_the_request_literally(env: Env) -> None:
    """The reason quotes what the client sent: Textual markup in it (an action link, a style)
    must stay text."""
    async with dashboard(env, (120, 36), data=False) as (app, pilot):
        hostile = "text/[@click=app.quit]x[/] [bold]y[/]"
        status = await asyncio.to_thread(
            env.post, "/webhooks/lisoloo", b"{}", {"Content-Type": hostile}
        )
        assert status == 415
        await until(pilot, lambda: any(t.title == "Webhook rejected" for t in app._notifications))
        [toast] = [t for t in app._notifications if t.title == "Webhook rejected"]
        assert not toast.markup and "[@click=app.quit]x[/]" in toast.message
