"""The report's charts: matplotlib figures rendered to SVG text, to be inlined in the page.

matplotlib is imported here alone (it takes most of a second): only `smswatch report` pays.
The figures are built with `matplotlib.figure.Figure`, never pyplot, so no global backend or
figure registry is touched. The output is byte-for-byte repeatable (fixed hash salt, no date in
the metadata), and its text is drawn as paths: the page needs no font and no network, and
looks the same on every machine it is forwarded to.
"""

from __future__ import annotations

import io
import re
from datetime import UTC
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend, whatever the environment asks for

from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from smswatch.timefmt import from_us, span

if TYPE_CHECKING:
    from smswatch.campaigns.report_model import Report

DELIVERED = "#2e7d32"
FAILED = "#c62828"
SENT = "#607d8b"
QUEUED_TO_DELIVERED = "#1565c0"
SENT_TO_DELIVERED = "#ef6c00"
INK = "#263238"
GRID = "#cfd8dc"

STYLE: dict[str, Any] = {
    "svg.hashsalt": "smswatch",  # ids from content, not random: the same data, the same file
    "svg.fonttype": "path",
    "text.parse_math": False,  # a '$' in a label is a dollar, not TeX
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
}
SIZE = (9.0, 3.2)  # inches: the page's width at print scale

_ID = re.compile(r'(\bid="|href="#|url\(#)')


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an `<svg>` element for an HTML page: without the XML prologue, and with
    its ids prefixed, since every chart of the page shares one id space (matplotlib names
    glyphs and clip paths alike in each file)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = out.getvalue()
    text = text[text.index("<svg") :]
    return _ID.sub(lambda m: m.group(1) + prefix + "-", text)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color=SENT)
    ax.set_xticks([])
    ax.set_yticks([])


def time_axis(ax: Any, start: int, end: int) -> None:
    """Clock-time ticks that each read whole (`10:15:30`, `10:20`, `27 May 10:00`), as fine as the
    span needs, and the label saying the zone and the day: ConciseDateFormatter's `05 10 15` were
    bare seconds no reader could place."""
    seconds = (end - start) / 1e6
    first, last = from_us(start), from_us(end)
    if seconds <= 15 * 60:
        fmt = "%H:%M:%S"
    elif first.date() == last.date():
        fmt = "%H:%M"
    else:
        fmt = "%d %b %H:%M"
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10, tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))
    day = first.strftime("%d %b %Y")
    if first.date() != last.date():
        day += " – " + last.strftime("%d %b %Y")
    unit = {"%H:%M:%S": "hh:mm:ss", "%H:%M": "hh:mm"}.get(fmt, "day month hh:mm")
    ax.set_xlabel(f"event time, UTC ({unit}), {day}")


def delivery_chart(report: Report) -> str:
    """Recipients delivered and failed per time bucket (stacked), and sent, over the whole
    span of the campaign."""
    with rc_context(STYLE):
        fig = Figure(figsize=SIZE)
        ax = fig.add_subplot()
        tl = report.timeline
        if tl is None:
            _empty(ax, "nothing has happened yet")
        else:
            n = len(tl.sent.counts)
            starts = [from_us(tl.start + i * tl.step).replace(tzinfo=None) for i in range(n)]
            width = tl.step / 86_400_000_000  # matplotlib's dates count days
            delivered, failed = tl.delivered.counts, tl.failed.counts
            ax.bar(starts, delivered, width=width, align="edge", color=DELIVERED, label="delivered")
            ax.bar(
                starts,
                failed,
                width=width,
                align="edge",
                bottom=delivered,
                color=FAILED,
                label="failed",
            )
            ax.step(
                [*starts, from_us(tl.start + n * tl.step).replace(tzinfo=None)],
                [*tl.sent.counts, tl.sent.counts[-1] if n else 0],
                where="post",
                color=SENT,
                linewidth=1.2,
                label="sent",
            )
            time_axis(ax, tl.start, tl.start + n * tl.step)
            ax.set_ylabel(f"recipients per {span(tl.step)}")
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # recipients come whole
            ax.margins(x=0.01)
            ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=3)
        return to_svg(fig, "delivery")


def latency_chart(report: Report) -> str:
    """How long recipients took to be delivered, on log-scaled bins: from queued and from sent,
    with the median and 95th percentile stats reports marked."""
    import numpy as np

    legs = (
        ("queued_to_delivered", "queued → delivered", QUEUED_TO_DELIVERED),
        ("sent_to_delivered", "sent → delivered", SENT_TO_DELIVERED),
    )
    with rc_context(STYLE):
        fig = Figure(figsize=SIZE)
        ax = fig.add_subplot()
        # A zero latency (same-second timestamps) has no place on a log axis: 1 ms stands in.
        data = {k: [max(v, 1000) / 1e6 for v in report.latency.get(k, [])] for k, _, _ in legs}
        values = [v for k, _, _ in legs for v in data[k]]
        if not values:
            _empty(ax, "no deliveries yet")
            return to_svg(fig, "latency")
        low, high = min(values), max(values)
        if high <= low * 1.5:
            low, high = low / 1.5, high * 1.5
        bins = np.geomspace(low, high, 41)
        for key, label, color in legs:
            if data[key]:
                ax.hist(data[key], bins=bins, histtype="stepfilled", alpha=0.25, color=color)
                ax.hist(data[key], bins=bins, histtype="step", linewidth=1.3, color=color)
                ax.plot([], [], color=color, linewidth=4, alpha=0.6, label=label)
        figure = report.figures["latency"]["queued_to_delivered"]
        for name, style in (("p50_ms", "--"), ("p95_ms", ":")):
            ms = figure[name]
            if ms is not None:
                ax.axvline(max(ms, 1) / 1000, color=INK, linestyle=style, linewidth=1.1)
                ax.plot([], [], color=INK, linestyle=style, label=f"{name[:3]} queued → delivered")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: span(round(x * 1e6))))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time to delivery (log scale)")
        ax.set_ylabel("recipients")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=4)
        return to_svg(fig, "latency")


def charts(report: Report) -> dict[str, str]:
    """Every chart of the report, by name, as inline SVG."""
    return {"delivery": delivery_chart(report), "latency": latency_chart(report)}
