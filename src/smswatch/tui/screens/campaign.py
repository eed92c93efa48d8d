"""One campaign: how far along it is and when it will finish, rates now, latency per stage,
cost, delivery per carrier and per country, failures with the catalogue's advice, and its
messages (enter opens one, then a recipient, then the raw JSON)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Sparkline, Static

from smswatch.campaigns.analysis import CampaignView, region_of
from smswatch.core.campaigns import CarrierRow, Summary
from smswatch.core.domain import MessageState, State, shown_states
from smswatch.core.figures import FailureGroup, Percentiles
from smswatch.gateways.catalogue import ErrorInfo
from smswatch.sanitize import safe
from smswatch.source.api import SourceUnavailable
from smswatch.timefmt import span
from smswatch.tui.format import Flow, counts_bar, labelled, literal, moments, untrusted
from smswatch.tui.screens.base import AppScreen
from smswatch.tui.screens.dashboard import SHORT_BELOW, MessagesTable
from smswatch.tui.screens.message import percentiles_text
from smswatch.tui.widgets.campaigns import percent
from smswatch.tui.widgets.footer import KeyFooter
from smswatch.tui.widgets.rowtable import Column, RowTable
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.tui.app import SmsWatchApp

REFRESH_S = 2.0  # at least; a slow query (a huge campaign) waits five times its own cost
MESSAGES_SHOWN = 200


LABEL = 13  # the header's label columns: "queued→deliv."


def label(name: str, value: Text) -> Text:
    """A fact named within a line: "ETA stalled"."""
    text = Text(f"{name} ", style="dim")
    text.append_text(value)
    return text


def brief_percentiles(stages: list[tuple[str, Percentiles]]) -> list[Text]:
    """Latency per stage in few cells, for a narrow header: "queued→sent 5.0s / 8.0s"."""
    parts = []
    for name, p in stages:
        part = Text(f"{name} ", style="dim")
        if p.count:
            part.append(f"{span(p.p50)} / {span(p.p95)}", style="bold")
        else:
            part.append("-", style="dim")
        parts.append(part)
    parts.append(Text(f"(n={', '.join(f'{p.count:,}' for _, p in stages)})", style="dim"))
    return parts


def title(name: str) -> str:
    """The header's title: the name is the sender's text, shown literally."""
    return f"Campaign {literal(name, 60)}"


class DeliveryTable(RowTable):
    """Delivery per carrier or per country, with the carriers whose rate fell flagged."""

    def __init__(self, app: SmsWatchApp, label: str, regions: bool, *, id: str) -> None:
        self.sw = app
        self.regions = regions
        super().__init__(
            [
                Column(label, None, 9),
                Column("rcpts", 5, align="right"),
                Column("rate", 6, align="right"),
                Column("recent", 8, align="right", priority=1),
                Column("failed", 6, align="right", priority=2),
            ],
            self._cells,
            key=lambda r: r.key or "",
            empty="no recipients yet",
            id=id,
        )

    def _cells(self, r: CarrierRow) -> Sequence[Text]:
        pal = self.sw.palette
        key = r.key or "(none)"
        if self.regions and r.key and r.key != "other":
            key = f"{key} {region_of(r.key)}"
        recent = Text(percent(r.recent_rate))
        if r.falling:
            recent = Text(f"▼{percent(r.recent_rate)}", style=f"bold {pal.state(State.FAILED)}")
        return [
            untrusted(key, 30),
            Text(f"{r.recipients:,}"),
            Text(percent(r.rate)),
            recent,
            Text(f"{r.failed:,}", style=pal.state(State.FAILED) if r.failed else "dim"),
        ]


class FailuresTable(RowTable):
    """Failures by code, each with the catalogue's advice on a line of its own under it: the
    width of the panel, where a column left it a third."""

    def __init__(self, app: SmsWatchApp) -> None:
        self.sw = app
        super().__init__(
            [
                Column("code", 6),
                Column("count", 5, align="right"),
                Column("meaning", None, 9),
                Column("retry", 5, priority=1),
            ],
            self._cells,
            key=lambda f: (f[0].provider, f[0].error_code or ""),
            empty="no failures",
            detail=self._advice,
            id="campaign-failures",
        )

    def _advice(self, row: tuple[FailureGroup, ErrorInfo | None]) -> Text:
        info = row[1]
        return untrusted(info.action if info else "", 200, "dim")

    def _cells(self, row: tuple[FailureGroup, ErrorInfo | None]) -> Sequence[Text]:
        f, info = row
        return [
            untrusted(f.error_code or "-", 8, self.sw.palette.state(State.FAILED)),
            Text(f"{f.count:,}"),
            untrusted(info.title if info else "-", 40),
            Text(info.retry if info else "-", style="dim"),
        ]


class CampaignScreen(AppScreen):
    # Under 120 columns the three tables share the width equally (app.tcss): a third is the
    # least that holds a carrier, its recipients and its rate.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back"),
        Binding("f", "failures", "failures", tooltip="only messages with failures"),
        Binding("x", "suppression", "do-not-send", tooltip="write the do-not-send list as CSV"),
    ]

    def __init__(self, name: str, summary: Summary | None = None) -> None:
        super().__init__()
        self.campaign = name
        self.summary = summary
        self.view: CampaignView | None = None
        self.failed_only = False
        self._timer: Timer | None = None
        self.shown_at: float | None = None  # perf_counter of the first frame with everything

    def compose(self) -> ComposeResult:
        header = Static(id="campaign-header")
        header.border_title = title(self.campaign)
        yield header
        rates = Horizontal(id="campaign-rates")
        # The window in the title: in each label it wrapped at 100 columns, and the wrapped
        # line pushed the delivered/s chart out of its panel.
        rates.border_title = "Rates now · last 5 min"
        with rates:
            with Vertical(classes="rate"):
                yield Static(id="sent-rate", classes="rate-label")
                yield Sparkline([], id="sent-spark")
            with Vertical(classes="rate"):
                yield Static(id="delivered-rate", classes="rate-label")
                yield Sparkline([], id="delivered-spark")
            with Vertical(classes="rate"):
                yield Static(id="failed-rate", classes="rate-label")
                yield Sparkline([], id="failed-spark")
        with Horizontal(id="campaign-tables"):
            carriers = DeliveryTable(self.sw, "carrier", False, id="campaign-carriers")
            carriers.border_title = "By carrier"
            yield carriers
            countries = DeliveryTable(self.sw, "country", True, id="campaign-countries")
            countries.border_title = "By country"
            yield countries
            failures = FailuresTable(self.sw)
            failures.border_title = "Failures by code"
            yield failures
        messages = MessagesTable(self.sw, id="campaign-messages")
        messages.border_title = "Messages"
        yield messages
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#campaign-messages", MessagesTable).focus()
        if self.summary is not None:
            self.query_one("#campaign-header", Static).update(self.header(self.summary, None))
        if self.campaign:
            self.load()

    def show_campaign(
        self, name: str, view: CampaignView | None, messages: list[MessageState]
    ) -> None:
        """Point this (already built) screen at a campaign, its data already read: building
        the screen costs more than reading a 100,000-recipient campaign's figures, so the app
        keeps one and reuses it."""
        self.campaign = name
        self.failed_only = False
        self.shown_at = None
        self.query_one("#campaign-header", Static).border_title = title(name)
        table = self.query_one("#campaign-messages", MessagesTable)
        table.cursor = 0
        table.focus()
        if view is None:
            self.view = self.summary = None
            self.missing()
            return
        self.view, self.summary = view, view.summary
        self.show(view, messages)
        self._schedule(REFRESH_S)

    def missing(self) -> None:
        self.query_one("#campaign-header", Static).update(
            Text(f"no campaign {safe(self.campaign, 60)} in the database", style="bold")
        )

    # --- loading ----------------------------------------------------------------------------

    @work(exclusive=True, group="campaign")
    async def load(self) -> None:
        sw = self.sw
        started = time.perf_counter()
        try:
            view = await sw.source.campaign(self.campaign, sw.stuck_deadlines, sw.clock())
            messages = await sw.source.campaign_messages(
                self.campaign, self.failed_only, MESSAGES_SHOWN
            )
        except SourceUnavailable as exc:
            sw.not_connected(exc)
            self._schedule(REFRESH_S)
            return
        if not self.is_attached:
            return  # the app quit while the query was out: nothing left to draw in
        if view is None:
            self.missing()
            return
        self.view, self.summary = view, view.summary
        self.show(view, messages)
        self._schedule(max(REFRESH_S, 5 * (time.perf_counter() - started)))

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self.load)

    def show(self, view: CampaignView, messages: list[MessageState]) -> None:
        pal = self.sw.palette
        self.query_one("#campaign-header", Static).update(self.header(view.summary, view))
        for which, series, rate, state in (
            ("sent", view.sent, view.sent_per_s, State.SENT),
            ("delivered", view.delivered, view.delivered_per_s, State.DELIVERED),
            ("failed", view.failed, view.failed.per_second(6), State.FAILED),
        ):
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"{rate:,.1f}", style=f"bold {pal.state(state)}")
            label.append(f" {which}/s", style="dim")
            self.query_one(f"#{which}-rate", Static).update(label)
            self.query_one(f"#{which}-spark", Sparkline).data = list(series.counts)
        carriers = self.query_one("#campaign-carriers", DeliveryTable)
        carriers.set_rows(view.carriers)
        falling = len(view.falling)
        # (The explanation only where it fits whole: cut, it read "recent = las…".)
        explained = "recent = last third" if carriers.size.width >= 26 else ""
        carriers.border_subtitle = f"▼ {falling} falling" if falling else explained
        self.query_one("#campaign-countries", DeliveryTable).set_rows(view.countries)
        self.query_one(FailuresTable).set_rows(view.failures)
        table = self.query_one("#campaign-messages", MessagesTable)
        table.set_rows(messages)
        what = "with failures" if self.failed_only else "most recently active first"
        more = f" of {view.summary.messages:,}" if view.summary.messages > len(messages) else ""
        table.border_title = f"Messages {what}"
        table.border_subtitle = f"{len(messages):,}{more} · enter: open · f: failed only"
        if self.shown_at is None:
            self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        self.shown_at = time.perf_counter()

    def header(self, s: Summary, view: CampaignView | None) -> Group:
        """Pairs of facts side by side where they fit (else each on a line of its own, its
        parts flowed, never a count parted from its name); on a short terminal the rates now
        are a line here, the charts' panel hidden."""
        pal = self.sw.palette
        inner = max(self.size.width - 4, 40)  # the panel's border and padding
        value = (inner - 2 * LABEL - 3 * 2) // 2  # one of the two value columns
        wide = value >= 40
        rest = inner - LABEL - 2
        bar = counts_bar(
            s.counts.__getitem__, s.recipients, min(40, (value if wide else rest) - 8), pal
        )
        bar.append(f"  {s.progress:.1%}", style="bold")
        eta = Text("…", style="dim")
        if view is not None:
            eta = Text(view.eta.label(), style="bold" if view.eta.state == "eta" else "")
        grouped = Text(f"{s.source}", style="dim")
        grouped.append(f" · {', '.join(s.providers)}")
        states = [
            Text(f"{st.value} {s.counts[st]:,}", style=pal.state(st))
            for st in shown_states(s.counts.__getitem__)
        ]
        rate = Text(percent(s.delivery_rate), "bold")
        counts = Text(
            f"{s.messages:,} · {plural(s.recipients, 'recipient')} · {s.in_flight:,} in flight"
        )
        pairs: list[tuple[str, Text, str, Text]] = []
        lines: list[tuple[str, Text]] = []
        if wide:
            pairs += [("progress", bar, "ETA", eta), ("messages", counts, "grouped by", grouped)]
            lines.append(("states", Flow(states)))
        else:
            lines += [
                ("progress", Flow([bar, label("ETA", eta)])),
                ("messages", Flow([counts, label("grouped by", grouped)])),
                ("states", Flow([*states, label("delivery rate", rate)])),
            ]
        if view is not None:
            lat = view.latency
            stages = [
                ("queued→sent", lat.queued_to_sent),
                ("sent→deliv.", lat.sent_to_delivered),
                ("queued→deliv.", lat.queued_to_delivered),
            ]
            if wide:
                (a, pa), (b, pb), (c, pc) = stages
                pairs.append((a, percentiles_text(pa), b, percentiles_text(pb)))
                pairs.append((c, percentiles_text(pc), "delivery rate", rate))
            else:
                lines.append(("p50 / p95", Flow(brief_percentiles(stages))))
            lines.append(("cost", Flow(self.cost_parts(view))))
            seen = label("seen", self.seen(s))
            lines.append(("attention", Flow([*self.attention(view), seen])))
            if self.has_class("-short"):
                lines.append(("rates now", Flow(self.rates(view))))
        elif wide:  # the summary alone, before the campaign's figures are read
            pairs.append(("delivery rate", rate, "", Text("")))
        return labelled(pairs, lines, LABEL)

    def rates(self, view: CampaignView) -> list[Text]:
        pal = self.sw.palette
        parts = []
        for which, rate, state in (
            ("sent", view.sent_per_s, State.SENT),
            ("delivered", view.delivered_per_s, State.DELIVERED),
            ("failed", view.failed.per_second(6), State.FAILED),
        ):
            part = Text(f"{rate:,.1f}", style=f"bold {pal.state(state)}")
            part.append(f" {which}/s", style="dim")
            parts.append(part)
        return parts

    def cost_parts(self, view: CampaignView) -> list[Text]:
        if not view.costs:
            return [Text("-", style="dim")]
        parts = []
        for c in view.costs:
            unit = "cr" if c.currency == "credits" else safe(c.currency or "", 8)
            parts.append(Text(f"{c.spent:,.2f} {unit} spent,", style="bold"))
            parts.append(Text(f"{c.wasted:,.2f} on failures", style="dim"))
            if c.per_delivered is not None:
                parts.append(Text(f"{c.per_delivered:,.4f}/delivered", style="dim"))
        return parts

    def attention(self, view: CampaignView) -> list[Text]:
        pal = self.sw.palette
        parts = [
            Text(
                f"▼ {safe(c.key, 20)} {percent(c.earlier_rate)}→{percent(c.recent_rate)}",
                style=f"bold {pal.state(State.FAILED)}",
            )
            for c in view.falling
        ]
        if view.stuck:
            parts.append(Text(f"{view.stuck:,} stuck", style=pal.state(State.SENT)))
        if view.summary.conflicts:
            n = view.summary.conflicts
            parts.append(Text(f"⚡ {plural(n, 'conflict')}", style=pal.state(State.UNKNOWN)))
        return parts or [Text("nothing", style="dim")]

    def seen(self, s: Summary) -> Text:
        first, last = moments([s.first_received_at, s.last_received_at], self.sw.clock(), True)
        return Text(f"{first} … {last}", style="dim")

    def on_resize(self) -> None:
        # A short terminal: the rates are a line of the header, their charts' panel hidden.
        self.set_class(self.size.height < SHORT_BELOW, "-short")
        if self.summary is not None:
            self.query_one("#campaign-header", Static).update(self.header(self.summary, self.view))

    def refresh_styles(self) -> None:
        if self.view is not None:
            self.load()

    def resync(self, _snapshot: object) -> None:
        self.load()

    # --- keys -----------------------------------------------------------------------------

    def action_back(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.app.pop_screen()

    def action_failures(self) -> None:
        self.failed_only = not self.failed_only
        self.load()

    def action_suppression(self) -> None:
        self.sw.export_suppression(self.campaign)

    @on(RowTable.Selected, "#campaign-messages")
    def open_message(self, event: RowTable.Selected) -> None:
        self.sw.open_message(event.row.message_id)


class CampaignNameScreen(ModalScreen[str | None]):
    """Asks for the name of the campaign to start (from the palette)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="campaign-name"):
            yield Static(
                "Start a campaign: every message first seen from now on joins it, until you "
                "end it (a sender's metadata campaign still wins). Enter starts, esc cancels.",
                classes="prompt",
            )
            yield Input(placeholder="campaign name, e.g. black-friday", id="campaign-name-input")

    @on(Input.Submitted, "#campaign-name-input")
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
