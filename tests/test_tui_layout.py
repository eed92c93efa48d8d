"""No figure is ever cut: at 80x24, 100x30 and 160x45, every number each table draws on the
dashboard, a campaign, a message and a recipient is read back from the screen's cells and
compared with the model's (a narrow terminal once drew 141 recipients as `14`); and the helpers
that shorten figures and names keep what they say."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from smswatch.core.campaigns import CarrierRow, Summary
from smswatch.core.domain import MessageState, RecipientState, State
from smswatch.timefmt import iso
from smswatch.tui.alert_rules import Alert
from smswatch.tui.format import cut_end, cut_middle, cut_words, fit_figure
from smswatch.tui.screens.campaign import CampaignScreen, DeliveryTable, FailuresTable
from smswatch.tui.screens.dashboard import DashboardScreen, MessagesTable
from smswatch.tui.screens.message import MessageScreen, RecipientsTable
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.alerts import AlertsPanel
from smswatch.tui.widgets.campaigns import CampaignsTable
from smswatch.tui.widgets.funnel import Funnel
from smswatch.tui.widgets.rowtable import Column, RowTable
from tests.test_tui import until
from tests.tui_support import T0, Env, campaign, lisoloo_event

pytestmark = pytest.mark.timeout(300)

BIG = "7b0a04b304a821af4e2a1ffe"
# Recipients per carrier: three digits each, the figures a narrow terminal cut to two.
CARRIERS = {"vodacom_drc": 141, "airtel_drc": 127, "orange_drc": 123, "africell_drc": 109}
SIZES = [(80, 24), (100, 30), (160, 45)]
# A sender's metadata of over 100 characters: the message screen at 160 columns has room for it.
LONG = "550e8400-e29b-41d4-a716-446655440099"
METADATA = {"campaign": "black-friday", "batch": "bulk_bf572ae3", "note": "n" * 50}
METADATA_TEXT = '{"campaign":"black-friday","batch":"bulk_bf572ae3","note":"' + "n" * 50 + '"}'


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The fixed campaign, and a Lisoloo send of 1,234 recipients of which 500 reported, a
    tenth of them failed: counts of three and four digits in every table."""
    e = Env(tmp_path_factory.mktemp("layout"))
    campaign(e)
    data = {"message_id": LONG, "channel": "sms", "recipient": "+26876000002"}
    queued = {**data, "status": "queued", "credits_used": 1, "metadata": METADATA}
    assert e.yebolink({"event": "message.queued", "timestamp": iso(T0), "data": queued}) == 200
    start = T0 - 60_000_000
    n = 1000
    assert (
        e.lisoloo(
            lisoloo_event(
                n,
                "sms.queued",
                BIG,
                start,
                total_recipients=1234,
                total_messages=1234,
                total_cost=24.68,
                currency="USD",
                scheduled_at=None,
            )
        )
        == 200
    )
    i = 0
    for carrier, count in CARRIERS.items():
        for _ in range(count):
            i += 1
            n += 1
            at = start + 1_000_000 + i * 10_000
            phone = f"+24381{i:07d}"
            if i % 10 == 0:
                event = lisoloo_event(
                    n,
                    "sms.failed",
                    BIG,
                    at,
                    recipient_phone=phone,
                    carrier=carrier,
                    failed_at=iso(at),
                    error_code="1502",
                    error_message="rejected",
                    retryable=False,
                )
            else:
                event = lisoloo_event(
                    n,
                    "sms.delivered",
                    BIG,
                    at,
                    recipient_phone=phone,
                    carrier=carrier,
                    segments=1,
                    delivered_at=iso(at),
                )
            assert e.lisoloo(event) == 200
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


# --- reading figures back ----------------------------------------------------------------

_DRAWN = re.compile(r"^(\D*?)(\d[\d,]*)(\.\d+)?([kMGT]?)(\D*)$")
_SCALE = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def read_figure(drawn: str) -> tuple[str, float, float, str]:
    """(what is before, the value, how far off it may be by rounding, what is after)."""
    m = _DRAWN.match(drawn)
    assert m is not None, f"{drawn!r} is not a figure"
    head, whole, decimals, unit, tail = m.groups()
    scale = _SCALE[unit]
    value = float(whole.replace(",", "") + (decimals or "")) * scale
    places = len(decimals or ".") - 1
    return head, value, 0.5 * 10**-places * scale + 1e-9, tail


def says(drawn: str, full: str) -> bool:
    """Whether `drawn` is `full`, or `full` shortened without changing it (1,234 as 1234 or
    1.2k, 94.7% as 95%): never its first digits."""
    if drawn == full:
        return True
    if not any(c.isdigit() for c in full):
        return drawn.endswith("…") and full.startswith(drawn[:-1])
    head, value, slack, tail = read_figure(drawn)
    full_head, full_value, _, full_tail = read_figure(full)
    return head == full_head and tail == full_tail and abs(value - full_value) <= slack


def count(drawn: str) -> float:
    return 0 if drawn == "·" else read_figure(drawn)[1]


# What each table's figures are in the model: (table, column title) -> the row's figure.
MODEL: dict[tuple[type, str], Callable[[Any], float]] = {
    (CampaignsTable, "msgs"): lambda s: s.messages,
    (CampaignsTable, "rcpts"): lambda s: s.recipients,
    (CampaignsTable, "deliv"): lambda s: s.counts[State.DELIVERED],
    (CampaignsTable, "failed"): lambda s: s.counts[State.FAILED],
    (MessagesTable, "rcpts"): lambda m: m.expected_recipients,
    (MessagesTable, "queued"): lambda m: m.count(State.QUEUED),
    (MessagesTable, "proc"): lambda m: m.count(State.PROCESSING),
    (MessagesTable, "sent"): lambda m: m.count(State.SENT),
    (MessagesTable, "deliv"): lambda m: m.count(State.DELIVERED),
    (MessagesTable, "failed"): lambda m: m.count(State.FAILED),
    (DeliveryTable, "rcpts"): lambda r: r.recipients,
    (DeliveryTable, "failed"): lambda r: r.failed,
    (DeliveryTable, "rate"): lambda r: round(r.rate * 100, 1),
    (FailuresTable, "count"): lambda f: f[0].count,
    (AlertsPanel, "count"): lambda a: a.count,
    (RecipientsTable, "events"): lambda r: r.events,
}
ROW_TYPES = (Summary, MessageState, CarrierRow, tuple, Alert, RecipientState)


def screen_lines(app: Any) -> list[Any]:
    """The screen as drawn: one strip of cells per line."""
    return app.screen._compositor.render_strips()


def cells_text(strip: Any, x: int, width: int) -> str:
    return "".join(segment.text for segment in strip.crop(x, x + width))


def check_tables(app: Any, where: str) -> int:
    """Every figure each table on the screen draws, against the table's cell and the model's
    figure; the number of figures checked."""
    lines = screen_lines(app)
    checked = 0
    for table in app.screen.query(RowTable):
        region = table.scrollable_content_region
        if not table.display or region.height < 2 or region.width < 1:
            continue
        width = region.width
        layout = table.layout_columns(width)
        drawn_width = sum(w for _, w in layout) + len(layout) - 1
        assert drawn_width <= width, f"{where}: {table.id} draws {drawn_width} in {width}"
        top = int(table.scroll_y)
        for y in range(1, region.height):
            index, part = divmod(top + y - 1, table.lines_per_row)
            if part or index >= len(table.rows) or region.y + y >= len(lines):
                continue  # (a line below the screen's edge is not drawn)
            row = table.rows[index]
            cells = table.cells(row)
            strip = lines[region.y + y]
            x = region.x
            for i, w in layout:
                column: Column = table.columns[i]
                drawn = cells_text(strip, x, w).strip()
                x += w + 1
                if column.align != "right":
                    continue
                full = cells[i].plain
                what = f"{where}: {table.id} row {index} {column.title!r}"
                assert says(drawn, full), f"{what}: drawn {drawn!r} for {full!r}"
                figure = next(
                    (
                        f
                        for (kind, title), f in MODEL.items()
                        if title == column.title and isinstance(table, kind)
                    ),
                    None,
                )
                if figure is not None and isinstance(row, ROW_TYPES):
                    expected = figure(row)
                    if expected is None:
                        continue
                    value = count(drawn)
                    slack = read_figure(drawn)[2] if drawn != "·" else 0
                    assert abs(value - expected) <= slack, f"{what}: {drawn!r} for {expected}"
                checked += 1
    return checked


def screen_text(app: Any) -> str:
    return "\n".join(cells_text(s, 0, s.cell_length) for s in screen_lines(app))


def check_funnel(app: Any, where: str) -> None:
    funnel = app.screen.query_one(Funnel)
    region = funnel.content_region
    lines = screen_lines(app)
    counters = app.model.counters
    for y, state in enumerate((State.QUEUED, State.PROCESSING, State.SENT, State.DELIVERED)):
        if y >= region.height:
            break
        text = cells_text(lines[region.y + y], region.x, region.width)
        name, figure = text.split()[:2]
        assert name == state.value and count(figure) == counters.funnel[state], (where, text)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_every_figure_drawn_is_the_models(env: Env, size: tuple[int, int]) -> None:
    where = f"{size[0]}x{size[1]}"
    app = env.app(clock=lambda: T0 + 90_000_000)  # frozen: the ages drawn stay the cells'
    async with app.run_test(size=size) as pilot:
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DashboardScreen)
                and len(app.model.campaigns) == 2
                and bool(app.model.failures)
            ),
            within=20,
        )
        await pilot.pause(0.3)
        checked = check_tables(app, f"{where} dashboard")
        check_funnel(app, f"{where} dashboard")

        burst = next(c.name for c in app.model.campaigns if c.name != "black-friday")
        app.open_campaign(burst)
        await until(
            pilot,
            lambda: isinstance(app.screen, CampaignScreen) and app.screen.view is not None,
            within=20,
        )
        await pilot.pause(0.3)
        carriers = app.screen.query_one("#campaign-carriers", DeliveryTable)
        shown = {r.key: r.recipients for r in carriers.rows}
        assert all(shown[k] >= n for k, n in CARRIERS.items()), shown
        checked += check_tables(app, f"{where} campaign")
        if size[0] >= 160:  # the catalogue's advice for 1502, whole under its code
            advice = "Check the number and the sender ID; resending unchanged rarely helps."
            assert advice in screen_text(app), where

        app.open_message(BIG)
        await until(
            pilot,
            lambda: isinstance(app.screen, MessageScreen) and app.screen.detail is not None,
            within=20,
        )
        await pilot.pause(0.3)
        checked += check_tables(app, f"{where} message")
        drawn = screen_text(app)
        assert "1,234" in drawn, f"{where}: the message's 1,234 recipients not drawn whole"

        first = app.screen.query_one(RecipientsTable).rows[0]
        app.open_recipient(BIG, first.recipient)
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RecipientScreen)
                and app.screen.detail is not None
                and bool(app.screen.query(".event"))
            ),
            within=20,
        )
        await pilot.pause(0.3)
        drawn = screen_text(app)
        detail = app.screen.detail
        assert detail is not None
        # The event's time (a figure no space can wrap) whole, on the first block.
        assert iso(detail.events[0].occurred_at) in drawn, where
        assert checked > 20, f"{where}: only {checked} figures checked"


async def test_the_senders_metadata_takes_the_width_there_is(env: Env) -> None:
    app = env.app(clock=lambda: T0 + 90_000_000)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        app.open_message(LONG)
        await until(
            pilot,
            lambda: isinstance(app.screen, MessageScreen) and app.screen.detail is not None,
            within=20,
        )
        await pilot.pause(0.3)
        assert len(METADATA_TEXT) > 100
        assert METADATA_TEXT in screen_text(app)


# --- the helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "width", "shown"),
    [
        ("141", 3, "141"),
        ("141", 2, "…"),  # never "14"
        ("1,234", 4, "1234"),
        ("1,234", 3, "1k"),
        ("12,345", 4, "12k"),
        ("1,234,567", 5, "1.2M"),
        ("999,960", 5, "1M"),
        ("999", 2, "…"),  # not 1k
        ("94.7%", 4, "95%"),
        ("100.0%", 5, "100%"),
        ("▼94.7%", 5, "▼95%"),
        ("0.04%", 2, "…"),  # not 0%
        ("12,345.67 USD", 10, "12,346 USD"),
        ("done", 3, "do…"),
    ],
)
def test_a_figure_is_shortened_never_cut(full: str, width: int, shown: str) -> None:
    assert fit_figure(full, width) == shown
    if shown != "…" and any(c.isdigit() for c in full):
        assert says(shown, full)


def test_two_bursts_of_a_day_stay_apart_when_cut() -> None:
    a = cut_middle(Text("lisoloo-20261207-085301"), 14).plain
    b = cut_middle(Text("lisoloo-20261207-093012"), 14).plain
    assert a != b and len(a) == len(b) == 14
    assert a.endswith("085301") and a.startswith("lisoloo")


def test_a_cut_never_leaves_part_of_a_figure() -> None:
    assert cut_end(Text("⚠ no webhook for 1m30s"), 20).plain == "⚠ no webhook for…"
    assert cut_end(Text("SMS_REJECTED_BY_CARRIER"), 12).plain == "SMS_REJECTE…"


def test_advice_is_cut_after_a_word() -> None:
    advice = Text("Check the number and the sender ID; resending unchanged rarely helps.")
    assert cut_words(advice, 80).plain == advice.plain
    assert cut_words(advice, 30).plain == "Check the number and the…"


def test_a_table_never_lays_out_wider_than_it_is() -> None:
    """Priority-0 columns too: they go from the right, and the first alone is narrowed."""
    table = CampaignsTable(lambda: None, lambda: 0)  # type: ignore[arg-type,return-value]
    for width in range(1, 160):
        layout = table.layout_columns(width)
        assert sum(w for _, w in layout) + len(layout) - 1 <= width, width
        assert layout[0][0] == 0
    titles = [table.columns[i].title for i, _ in table.layout_columns(40)]
    assert "failed" in titles and "rcpts" in titles


def test_a_cost_under_a_cent_is_not_shown_as_free() -> None:
    from smswatch.core.domain import MessageState
    from smswatch.tui.format import cost

    def shown(value: float, currency: str = "USD") -> str:
        m = MessageState(message_id="m", provider="telnyx")
        m.total_cost, m.currency = value, currency
        return cost(m)

    assert shown(0.004) == "0.004 USD"
    assert shown(0.0475, "EUR") == "0.05 EUR"
    assert shown(0.16) == "0.16 USD"
    assert shown(0.0) == "0.00 USD"


async def test_a_table_of_two_line_rows_scrolled_by_a_line_repaints_every_moved_line() -> None:
    """Scrolled by one line, each row's detail line stands where its cells were: the same row
    at that line is not the same line, and it must be drawn again (the alerts panel once showed
    every detail line twice after its rows changed and scrolled back)."""
    from textual.app import App, ComposeResult
    from textual.geometry import Region

    from smswatch.tui.themes import Palette

    palette = Palette(dict.fromkeys(State, "#ffffff"), dark=True)

    def alert(n: int, count: int) -> Alert:
        return Alert("failure", f"a{n}", "error", f"title {n}", f"detail {n}", count)

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield AlertsPanel(lambda: palette, id="alerts")

    app = One()
    async with app.run_test(size=(40, 6)) as pilot:
        panel = app.query_one(AlertsPanel)
        panel.set_rows([alert(n, 1) for n in range(4)])
        await pilot.pause()
        panel.scroll_to(y=1, animate=False, immediate=True)  # a wheel's line
        await pilot.pause()
        assert panel.scroll_y == 1
        # A tick's new rows bring the cursor's row (the first) back into view.
        panel.set_rows([alert(n, 2 if n == 3 else 1) for n in range(4)])
        await pilot.pause()
        assert panel.scroll_y == 0
        # What the screen holds of the panel (Textual keeps its lines by position) against
        # each line drawn afresh; the scrollbar's columns left out.
        width = panel.scrollable_content_region.width
        drawn = panel.render_lines(Region(0, 0, panel.size.width, panel.size.height))
        want = [panel.render_line(y).text for y in range(panel.size.height)]
        assert [line.text[:width] for line in drawn] == want
        assert "detail 0" in want[2] and "title 1" in want[3]


async def test_a_live_table_nobody_is_in_keeps_its_top_and_scrolls_by_whole_rows() -> None:
    """An alert that comes in above the others is shown: the cursor of a panel that has no
    focus stays on the first row instead of following its old row out of view. Focused, the
    cursor follows its row; and however far a two-line table scrolls, its top line is a row's
    cells, never a detail line without them."""
    from textual.app import App, ComposeResult
    from textual.widgets import Input

    from smswatch.tui.themes import Palette

    palette = Palette(dict.fromkeys(State, "#ffffff"), dark=True)

    def alert(n: int) -> Alert:
        return Alert("failure", f"a{n}", "error", f"title {n}", f"detail {n}", n)

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield Input()
            yield AlertsPanel(lambda: palette, id="alerts")

    app = One()
    async with app.run_test(size=(40, 9)) as pilot:  # the panel shorter than its rows
        panel = app.query_one(AlertsPanel)
        assert not panel.has_focus
        panel.set_rows([alert(n) for n in range(1, 9)])
        await pilot.pause()
        panel.set_rows([alert(0)] + [alert(n) for n in range(1, 9)])  # a new one on top
        await pilot.pause()
        assert panel.cursor == 0 and panel.scroll_y == 0
        assert "title 0" in panel.render_line(1).text
        panel.focus()
        panel.cursor = 2  # title 2, focused: the cursor follows it when rows come above
        await pilot.pause()
        panel.set_rows([alert(10), alert(0)] + [alert(n) for n in range(1, 9)])
        await pilot.pause()
        assert panel.current.key == "a2"
        for row in range(10):
            panel.cursor = row
            await pilot.pause()
            assert int(panel.scroll_y) % 2 == 0, (row, panel.scroll_y)
            assert "title" in panel.render_line(1).text
        panel.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert int(panel.scroll_y) % 2 == 0 and "title" in panel.render_line(1).text
