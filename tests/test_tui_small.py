"""The monitor on small terminals (80x24, 100x30) and a large one (160x45), under Pilot: the
footer keeps `? help` and cuts no key, the status bar and headers fit, times are short where
the date is shared, no count is parted from its name."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Sparkline, Static
from textual.widgets._footer import FooterKey

from smswatch.core.domain import FUNNEL, State
from smswatch.live.datasource import LocalSource
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.format import Flow, flow, moments
from smswatch.tui.screens.campaign import CampaignScreen
from smswatch.tui.screens.dashboard import STATUS_SHARE, DashboardScreen, MessagesTable
from smswatch.tui.screens.lists import RejectionsScreen, StuckScreen
from smswatch.tui.screens.message import MessageScreen
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.footer import Key, KeyFooter, fit
from smswatch.tui.widgets.status import StatusBar, pulse
from smswatch.tui.widgets.transitions import TransitionLog
from tests.tui_support import T0, Env, campaign

MID = "65a1b2c3d4e5f60718293a4b"
NOW = T0 + 90_000_000
SIZES = [(80, 24), (100, 30), (160, 45)]
IDS = ["80x24", "100x30", "160x45"]


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("small"), clock=lambda: T0)
    campaign(e)
    yield e
    e.stop()


def make_app(env: Env, db_path: str = "campaign.db") -> SmsWatchApp:
    source = LocalSource(env.thread)
    source.info = replace(source.info, db_path=db_path)
    return SmsWatchApp(source, theme="dark", clock=lambda: NOW, remember_theme=False)


async def until(pilot: Any, condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def lines(renderable: Any, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable)
    return console.export_text().splitlines()


async def started(app: SmsWatchApp, pilot: Any) -> None:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
    await until(pilot, lambda: len(app.model.campaigns) == 2)
    await pilot.pause(0.2)


OPEN: dict[str, tuple[type, Callable[[SmsWatchApp], None], Callable[[Any], bool]]] = {
    "message": (MessageScreen, lambda a: a.open_message(MID), lambda s: s.detail is not None),
    "recipient": (
        RecipientScreen,
        lambda a: a.open_recipient(MID, "+243810000004"),
        lambda s: s.detail is not None,
    ),
    "campaign": (
        CampaignScreen,
        lambda a: a.open_campaign(a.model.campaigns[-1].name),
        lambda s: s.view is not None,
    ),
    "rejections": (RejectionsScreen, lambda a: a.open_rejections(), lambda s: True),
    "stuck": (StuckScreen, lambda a: a.open_stuck(), lambda s: True),
}


async def visit(app: SmsWatchApp, pilot: Any, what: str) -> None:
    screen_type, action, ready = OPEN[what]
    action(app)
    await until(pilot, lambda: isinstance(app.screen, screen_type) and ready(app.screen))
    await pilot.pause(0.3)


async def check_footer(app: SmsWatchApp, pilot: Any, where: str, typing: bool = False) -> list[str]:
    """The footer's keys as drawn: `? help` among them (unless typing in a box, where `?` is
    a character), each whole inside the footer, none under the palette's key. Returns the
    actions shown."""
    footer = app.screen.query_one(KeyFooter)

    def laid_out() -> bool:  # (the footer recomposes after each change of focus)
        keys = footer.query(FooterKey)
        return bool(keys) and all(k.region.width for k in keys)

    await until(pilot, laid_out)
    keys = [k for k in footer.query(FooterKey) if k.display]
    actions = [k.action.removeprefix("app.") for k in keys]
    assert typing or "help" in actions, f"{where}: no ? help in {actions}"
    palette = [k for k in keys if k.has_class("-command-palette")]
    edge = palette[0].region.x if palette else footer.region.right
    for k in keys:
        assert k.region.width >= k.get_content_width(footer.size, app.size), (where, k.key)
        right = footer.region.right if k in palette else edge
        assert k.region.right <= right, f"{where}: {k.key} {k.description!r} is cut"
    return actions


@pytest.mark.parametrize("size", SIZES, ids=IDS)
async def test_every_screen_footer_keeps_help_and_cuts_no_key(env: Env, size) -> None:
    app = make_app(env)
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        shown = {"dashboard": await check_footer(app, pilot, "dashboard")}
        await pilot.press("slash")  # the filter: typing there, its way out in the footer
        await pilot.pause(0.3)
        assert "clear_filter" in await check_footer(app, pilot, "filter", typing=True)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert "clear_filter" not in await check_footer(app, pilot, "dashboard")
        for what in OPEN:
            await visit(app, pilot, what)
            shown[what] = await check_footer(app, pilot, what)
            app.pop_screen()
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        if size == (160, 45):  # room for all: none left out
            assert "next_theme" in shown["dashboard"] and "mask" in shown["dashboard"]
            assert "command_palette" in shown["message"]


def test_footer_leaves_out_the_least_needed_keys_first() -> None:
    keys = [
        Key("⏎", "open", "select"),
        Key("/", "filter", "filter"),
        Key("f", "failures", "failures"),
        Key("space", "pause", "pause"),
        Key("c", "campaigns", "campaigns"),
        Key("q", "quit", "app.quit"),
        Key("?", "help", "app.help"),
        Key("m", "mask", "app.mask"),
        Key("t", "theme", "app.next_theme"),
        Key("^p", "palette", "command_palette", palette=True),
    ]
    wide, compact = fit(keys, 200)
    assert wide == keys and not compact
    shown, compact = fit(keys, 50)
    assert compact
    assert sum(k.width(True) for k in shown) <= 50
    names = [k.description for k in shown]
    assert "help" in names and "quit" in names and "open" in names
    assert "theme" not in names and "palette" not in names and "mask" not in names
    assert names == [k.description for k in keys if k.description in names]  # order kept
    assert [k.description for k in fit(keys, 8)[0]] == ["help"]  # at worst, help alone


async def test_status_bar_on_a_short_terminal_takes_two_lines_and_names_the_database(
    env: Env,
) -> None:
    long_path = "/srv/" + "deep/" * 8 + "campaign.db"  # whole at 160 columns, not at 80
    app = make_app(env, db_path=long_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        bar = app.screen.query_one(StatusBar)
        assert bar.size.height == 2
        gateways = app.screen.query_one("#gateways", Static)
        # One line, cut where the gateways no longer fit (the tooltip has them all).
        assert gateways.size.height == 1
        drawn_gateways = gateways.render_line(0).text.rstrip()
        assert "/webhooks/lisoloo ✓" in drawn_gateways and "  yebolink ✓" in drawn_gateways
        assert len(drawn_gateways) <= bar.size.width
        assert drawn_gateways.endswith("…")  # five gateways do not fit 80 columns
        drawn = app.screen.query_one("#pulse")
        text = drawn.content.plain  # type: ignore[attr-defined]
        assert text.endswith("db campaign.db"), text
        assert len(text) <= drawn.size.width
        assert drawn.render_line(0).text.rstrip().endswith("db campaign.db")  # as drawn
        # Paused and masked too: fewer words, and still the database's name, whole or cut
        # by hand (an ellipsis Textual cuts at the end of the line was drawn blank).
        info = app.source.info
        for room, db in ((70, "db campaign.db"), (58, "db camp…")):
            busy = pulse(app.model.counters, NOW, info, True, True, width=room)
            assert busy.cell_len <= room and db in busy.plain, (room, busy.plain)
            assert "last 1m30s ago" in busy.plain and "PAUSED" in busy.plain
        # In flight has as many rows as the live log (it had 2 of them).
        table, log = app.screen.query_one(MessagesTable), app.screen.query_one(TransitionLog)
        assert table.size.height >= log.size.height - 1 >= 4
        # The pulse line and a line per gateway again, on a screen where they take no more
        # than their share of the rows (with more gateways than that, one line of routes).
        rows = math.ceil((len(info.gateways) + 2) / STATUS_SHARE)
        if rows > 45:  # 160x45 has the one line of routes: every built-in gateway is on it
            await pilot.resize_terminal(160, 45)
            await pilot.pause()
            whole = gateways.render_line(0).text.rstrip()
            assert not whole.endswith("…"), whole
            tails = [g.url.rsplit("/", 1)[-1] for g in info.gateways]
            assert all(f"  {t} " in whole for t in tails[1:]), whole
        await pilot.resize_terminal(160, max(rows, 45))
        await until(pilot, lambda: bar.size.height == 1 + len(info.gateways))
        await pilot.pause(1.2)  # the next tick redraws the pulse line for the new width
        assert drawn.content.plain.endswith(f"db {long_path}")  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
async def test_message_header_keeps_each_count_with_its_state_and_short_times(
    env: Env, size
) -> None:
    app = make_app(env)
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        await visit(app, pilot, "message")
        screen = app.screen
        assert isinstance(screen, MessageScreen) and screen.detail is not None
        header = screen.query_one("#message-header", Static)
        drawn = lines(screen.header(screen.detail), header.content_region.width)
        m = screen.detail.message
        for state in FUNNEL[:-1]:
            assert any(f"{state.value} {m.count(state):,}" in line for line in drawn), drawn
        # No recipient is unconfirmed (Lisoloo never says it): no figure of zeros for it.
        assert m.count(State.UNCONFIRMED) == 0
        assert not any("unconfirmed" in line for line in drawn), drawn
        assert not any("2026-" in line for line in drawn), drawn  # today: the time alone
        assert any("02:13:20Z … 02:13:20Z" in line for line in drawn), drawn
        assert len(drawn) <= header.content_region.height  # nothing cut at the bottom
        assert screen.query_one("#recipients").size.height >= 9


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
async def test_campaign_screen_fits_without_scrolling(env: Env, size) -> None:
    app = make_app(env)
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        await visit(app, pilot, "campaign")
        screen = app.screen
        assert isinstance(screen, CampaignScreen) and screen.view is not None
        header = screen.query_one("#campaign-header", Static)
        drawn = lines(screen.header(screen.view.summary, screen.view), header.content_region.width)
        assert len(drawn) <= header.content_region.height, drawn
        assert any("0.04 on failures" in line for line in drawn), drawn
        assert any("queued→deliv." in line for line in drawn), drawn
        messages = screen.query_one("#campaign-messages")
        footer = screen.query_one(KeyFooter)
        assert messages.region.bottom <= footer.region.y and messages.size.height >= 3
        rates = screen.query_one("#campaign-rates")
        if size == (80, 24):  # short: the rates are a line of the header
            assert not rates.display
            assert any("delivered/s" in line for line in drawn), drawn
        else:
            assert rates.display
            for spark in rates.query(Sparkline):
                assert spark.size.height == 2
                assert rates.region.contains_region(spark.region)
            for label in rates.query(".rate-label"):
                assert label.size.height == 1


def test_moments_are_short_only_while_unambiguous() -> None:
    day = 1_795_400_000_000_000  # 2026-11-23T02:13:20Z
    assert moments([day, day + 1_500_000, None], day) == ["02:13:20Z", "02:13:21.500Z", "-"]
    tomorrow = day + 86_400_000_000
    assert moments([day, day + 1_000_000], tomorrow) == [
        "2026-11-23 02:13:20Z",
        "02:13:21Z",
    ]
    assert moments([day, tomorrow], tomorrow) == ["2026-11-23T02:13:20Z", "2026-11-24T02:13:20Z"]
    assert moments([day + 123_456], day) == ["02:13:20.123Z"]


def test_flow_never_parts_an_item() -> None:
    items = [Text(f"state{i} {i * 111}") for i in range(8)]
    text = flow(items, 30)
    for line in text.plain.split("\n"):
        assert len(line) <= 30
    assert all(item.plain in text.plain.split("\n")[n // 2] for n, item in enumerate(items))
    assert flow([Text("x" * 40), Text("y")], 30).plain == "x" * 40 + "\ny"


@pytest.mark.parametrize("what", ["rejections", "stuck"])
async def test_a_list_closed_before_its_answer_does_not_crash(env: Env, what) -> None:
    app = make_app(env)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        screen_type, action, _ready = OPEN[what]
        action(app)
        await until(pilot, lambda: isinstance(app.screen, screen_type))
        app.pop_screen()  # at once: its query is still out
        screen = app.screen_stack[-1]
        await until(pilot, lambda: isinstance(screen, DashboardScreen))
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert app.is_running and app.return_value is None


def test_flow_in_a_grid_cell_keeps_large_counts_with_their_names() -> None:
    """Laid out at the cell's width when drawn: estimated from the screen's, the campaign's
    'failed 210' and '4.1s / 11.6s' were parted across lines at 80 columns."""
    from rich.table import Table

    items = [Text(f"{name} {n:,}") for name, n in [("queued", 0), ("processing", 25)]]
    items += [Text("sent 49"), Text("delivered 1,862"), Text("failed 210")]
    items.append(Text("delivery rate 89.9%"))
    for width in (60, 78, 100):
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(width=13)
        grid.add_column(ratio=1)
        grid.add_row("states", Flow(items))
        drawn = lines(grid, width)
        for item in items:
            assert any(item.plain in line for line in drawn), (width, item.plain, drawn)
        assert all(len(line) <= width for line in drawn)
