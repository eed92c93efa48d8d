"""`smswatch report`: the page in a real headless Chromium, its figures against `stats --json`.

The campaign is real traffic: `smswatch serve --campaign` over HTTP on 127.0.0.1, a simulated
send (`smswatch simulate`, both gateways, so the database holds other campaigns the report must
leave out), and a few webhooks of our own before it that make the anomalies the report exists
to show: a recipient left waiting (a silence, and stuck past a short deadline), one reported
both delivered and failed (a conflict), and malformed requests (rejections).

The browser is Chromium from the system's packages, driven over the DevTools protocol with a
small client on `websockets`: the page must load with no exception, no console or log error, no
failed load and no request that is not the file itself (it must open offline), and every chart
must be drawn. As with HAProxy in test_ha.py, a missing Chromium fails the test and says how to
install it: a report nobody opened in a browser is not tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import html.parser
import itertools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from smswatch.campaigns.report import gather_report
from smswatch.campaigns.report_html import page
from smswatch.campaigns.report_md import markdown
from smswatch.campaigns.report_words import (
    milliseconds,
    number,
    open_count,
    percent,
    total_count,
)
from smswatch.core.domain import State
from smswatch.exports.stats import gather, stats_record
from smswatch.live.engine import Engine
from smswatch.timefmt import iso, now_us
from tests.conftest import Client, running
from tests.helpers import Server, free_port, run

CAMPAIGN = "spring-sale"
CHARTS = {"delivery", "latency"}

CHROMIUM_MISSING = (
    "tests/test_report_browser.py opens the report in headless Chromium, and it is not "
    "installed. Install it with `sudo apt-get install chromium` (Debian, Ubuntu; `make test` run "
    "as root does it by itself), or point SMSWATCH_CHROMIUM at a Chromium or Chrome binary."
)


def chromium_binary() -> str:
    """Chromium from the system's packages. Debian's /usr/bin/chromium is a shell wrapper that
    adds flags of its own; the binary behind it takes ours as they are."""
    candidates = [
        os.environ.get("SMSWATCH_CHROMIUM"),
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(CHROMIUM_MISSING, pytrace=False)


# --- a tiny DevTools-protocol client --------------------------------------------------------


class DevTools:
    """Commands and events over the browser's one WebSocket; pages are flattened sessions."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg:
                future = self.pending.pop(msg["id"], None)
                if future is not None and not future.done():
                    if "error" in msg:
                        future.set_exception(RuntimeError(f"DevTools: {msg['error']}"))
                    else:
                        future.set_result(msg.get("result", {}))
            else:
                async with self.arrived:
                    self.events.append(msg)
                    self.arrived.notify_all()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(future, 30)

    async def wait_for(self, method: str, session: str, seconds: float = 30) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next(
                (e for e in self.events if e["method"] == method and e.get("sessionId") == session),
                None,
            )

        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(found), seconds)
        event = found()
        assert event is not None
        return event

    def of(self, session: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("sessionId") == session]

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.ws.close()


# What the page reports of itself once loaded: its charts, the figures it embeds, the figures
# it shows, every in-page reference, and its scripts.
INSPECT = """
(() => {
  const charts = [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    if (!svg) return {name: f.dataset.chart, svg: false};
    const box = svg.getBBox(), rect = svg.getBoundingClientRect();
    return {name: f.dataset.chart, svg: true, bbox: [box.width, box.height],
            rect: [rect.width, rect.height], paths: svg.querySelectorAll('path').length,
            uses: svg.querySelectorAll('use').length};
  });
  const refs = [...document.querySelectorAll('use')].map(u =>
    (u.getAttribute('xlink:href') || u.getAttribute('href') || '').slice(1));
  const dangling = refs.filter(id => !document.getElementById(id));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  return {
    charts,
    dangling,
    duplicateIds: ids.filter((id, i) => ids.indexOf(id) !== i).length,
    figures: JSON.parse(document.getElementById('smswatch-figures').textContent),
    shown: [...document.querySelectorAll('[data-figure]')].map(e =>
      ({path: e.dataset.figure, raw: JSON.parse(e.dataset.raw), text: e.textContent})),
    scripts: [...document.scripts].map(s => s.type),
    title: document.title,
    h1: document.querySelector('h1').textContent,
    attention: document.querySelector('#attention').innerText,
    text: document.body.innerText,
  };
})()
"""


class Browser:
    """Headless Chromium in a process group of its own, on a throwaway profile."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.binary, self.profile = binary, profile
        self.proc: asyncio.subprocess.Process | None = None
        self.log = profile.parent / "chromium.log"
        self.devtools: DevTools | None = None

    async def __aenter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                "--headless=new",
                "--no-sandbox",  # root in a container has no user namespace to sandbox in
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own: stop() ends its helpers too
            )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                pytest.fail(f"Chromium did not start:\n{self.log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10)
        self.devtools = DevTools(ws)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.devtools is not None:
            with contextlib.suppress(Exception):
                await self.devtools.send("Browser.close")
            await self.devtools.close()
        await self.stop()

    async def stop(self) -> None:
        """Chromium and every helper process it started: the whole group, no leftovers."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
                break
            except TimeoutError:
                continue
        # Helpers can outlive the group's leader for a moment: none may be left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def load(self, file: Path) -> tuple[dict[str, Any], list[str], list[str]]:
        """Open a file in a new tab and wait for its load event. Returns what the page reports
        of itself (INSPECT), the problems seen, and every URL it requested."""
        cdp = self.devtools
        assert cdp is not None
        target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        attached = await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            await cdp.send(f"{domain}.enable", session=session)
        navigated = await cdp.send("Page.navigate", {"url": file.as_uri()}, session)
        assert "errorText" not in navigated, navigated
        await cdp.wait_for("Page.loadEventFired", session)
        await asyncio.sleep(0.3)  # anything the page would log right after its load event
        result = await cdp.send(
            "Runtime.evaluate", {"expression": INSPECT, "returnByValue": True}, session
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        problems, requests = [], []
        for event in cdp.of(session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                problems.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in (
                "error",
                "warning",
                "assert",
            ):
                problems.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                problems.append(f"log {params['entry']['level']}: {params['entry']['text']}")
            elif method == "Network.loadingFailed":
                problems.append(f"load failed: {params.get('errorText')}")
            elif method == "Network.requestWillBeSent":
                requests.append(params["request"]["url"])
            elif method == "Page.javascriptDialogOpening":
                problems.append(f"dialog: {params.get('message')}")
        await cdp.send("Target.closeTarget", {"targetId": target})
        return result["result"]["value"], problems, requests


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    binary = chromium_binary()
    async with Browser(binary, tmp_path / "chromium-profile") as b:
        yield b


def assert_clean_load(
    page_info: dict[str, Any], problems: list[str], requests: list[str], file: Path
) -> None:
    assert problems == [], problems
    foreign = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert foreign == [], f"the page asked the network for {foreign}"
    assert file.as_uri() in requests
    assert page_info["scripts"] == ["application/json"], "the page must run no script"
    drawn = {c["name"]: c for c in page_info["charts"]}
    assert set(drawn) == CHARTS
    for name, chart in drawn.items():
        assert chart["svg"], f"chart {name} has no SVG"
        assert min(chart["bbox"]) > 50 and min(chart["rect"]) > 50, (name, chart)
        # Axes, ticks, bars or steps, and every label (text is drawn as paths).
        assert chart["paths"] > 20 and chart["uses"] > 20, (name, chart)
    assert page_info["dangling"] == [], "a chart refers to a glyph or clip path not in the page"
    assert page_info["duplicateIds"] == 0


def lookup(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value[key]
    return value


# --- the simulated campaign ------------------------------------------------------------------


def post(url: str, body: dict[str, Any] | bytes) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url + "/webhooks/lisoloo", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def lisoloo(event_type: str, message_id: str, at: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"{message_id}-{event_type}-{data.get('recipient_phone', '')}-{at}",
        "event_type": event_type,
        "timestamp": iso(at),
        "message_id": message_id,
        "data": data,
    }


def waiting_and_conflicting(t0: int) -> list[dict[str, Any]]:
    """A message of two recipients from 75 s before the campaign: one left at sent (it waits
    through a silence, and is stuck past a 30 s deadline), one reported delivered and then
    failed (a conflict)."""
    s = 1_000_000
    waiting = {"recipient_phone": "+243810000001", "carrier": "vodacom_drc"}
    torn = {"recipient_phone": "+243820000002", "carrier": "airtel_drc"}
    m = "early-message"
    return [
        lisoloo(
            "sms.queued",
            m,
            t0,
            {"total_recipients": 2, "total_messages": 2, "total_cost": 0.04, "currency": "USD"},
        ),
        lisoloo("sms.processing", m, t0 + s, waiting),
        lisoloo("sms.processing", m, t0 + s, torn),
        lisoloo("sms.sent", m, t0 + 2 * s, {**waiting, "sent_at": iso(t0 + 2 * s)}),
        lisoloo("sms.sent", m, t0 + 2 * s, {**torn, "sent_at": iso(t0 + 2 * s)}),
        lisoloo("sms.delivered", m, t0 + 3 * s, {**torn, "delivered_at": iso(t0 + 3 * s)}),
        lisoloo(
            "sms.failed",
            m,
            t0 + 4 * s,
            {
                **torn,
                "failed_at": iso(t0 + 4 * s),
                "error_code": "1502",
                "error_message": "Rejected by carrier",
                "retryable": False,
            },
        ),
    ]


@pytest.fixture(scope="module")
def campaign_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("report")
    db = directory / "campaign.db"
    server = Server(db, free_port(), "--campaign", CAMPAIGN, "--no-feed").start()
    try:
        for body in waiting_and_conflicting(now_us() - 75_000_000):
            assert post(server.url, body) == 200
        for bad in (b"{not json", b'{"event_type": 1}'):
            assert post(server.url, bad) == 400
        sim = run(
            "simulate",
            "--url",
            server.url,
            "--provider",
            "mixed",
            "--messages",
            "16",
            "--recipients",
            "40",
            "--seed",
            "11",
            "--speed",
            "12",
            "--spread",
            "60",
            "--rate",
            "4000",
            "--concurrency",
            "32",
            "-q",
        )
        assert "0 rejected, 0 given up" in sim.stderr
    finally:
        server.stop()
    yield db


def stats_json(db: Path, *campaign: str) -> dict[str, Any]:
    args = ["--campaign", campaign[0]] if campaign else []
    return json.loads(run("stats", "--db", str(db), *args, "--json").stdout)


def embedded_figures(document: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="smswatch-figures">(.*?)</script>', document, re.S
    )
    assert found, "the page embeds no figures"
    return json.loads(found.group(1))


async def test_campaign_report_opens_in_chromium_and_its_figures_are_stats(
    campaign_db: Path, tmp_path: Path, browser: Browser
) -> None:
    config = tmp_path / "smswatch.toml"
    config.write_text("[stuck]\nsent = 30\n")
    out = tmp_path / "report.html"
    made = run(
        "report", CAMPAIGN, "--db", str(campaign_db), "--out", str(out), "--config", str(config)
    )
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \(\d+ KB\)\n", made.stderr), made.stderr
    stats = stats_json(campaign_db, CAMPAIGN)
    document = out.read_text(encoding="utf-8")
    assert embedded_figures(document) == stats

    info, problems, requests = await browser.load(out)
    assert_clean_load(info, problems, requests, out)
    assert info["figures"] == stats
    assert info["h1"] == CAMPAIGN
    # Every figure on show is stats' own, and reads as the report formats it.
    shown = {s["path"]: s for s in info["shown"]}
    assert {
        "recipients.delivered",
        "recipients.failed",
        "delivery_rate",
        "latency.queued_to_delivered.p50_ms",
        "latency.queued_to_delivered.p95_ms",
        "messages",
        "events",
    } <= set(shown)
    for path, s in shown.items():
        assert s["raw"] == lookup(stats, path), path
    assert shown["delivery_rate"]["text"] == percent(stats["delivery_rate"])
    assert shown["recipients.delivered"]["text"] == number(stats["recipients"]["delivered"])
    p50 = stats["latency"]["queued_to_delivered"]["p50_ms"]
    assert shown["latency.queued_to_delivered.p50_ms"]["text"] == milliseconds(p50)

    # The delivery chart's bars add up to the figures: each recipient where it ended.
    data = await gather_report(campaign_db, CAMPAIGN, now_us(), {})
    assert data.timeline is not None
    assert sum(data.timeline.delivered.counts) == stats["recipients"]["delivered"]
    assert sum(data.timeline.failed.counts) == stats["recipients"]["failed"]

    # The campaign, not the database: the simulator's YeboLink sends are campaigns of their own.
    everything = stats_json(campaign_db)
    assert stats["messages"] < everything["messages"]
    assert stats["conflicts"] == 1
    assert stats["recipients"]["sent"] == 1
    attention = info["attention"]
    for what in ("Silence", "Stuck", "Rejected webhooks", "Conflicts"):
        assert what in attention, attention
    assert "1 recipient has been queued, processing or sent" in attention
    assert "2 requests refused" in attention
    assert "1 recipient was reported both delivered and failed" in attention
    assert "In progress" in info["text"]  # the waiting recipient keeps it open

    # The same data as Markdown: the same headline numbers.
    md = run("report", CAMPAIGN, "--db", str(campaign_db), "--format", "md", "--out", "-").stdout
    r = stats["recipients"]
    q2d = stats["latency"]["queued_to_delivered"]
    for row in (
        f"| Recipients | {number(total_count(stats))} |",
        f"| Delivered | {number(r['delivered'])} |",
        f"| Failed | {number(r['failed'])} |",
        f"| Not final yet | {number(open_count(stats))} |",
        f"| Delivery rate | {percent(stats['delivery_rate'])} |",
        f"| Time to delivery, median | {milliseconds(q2d['p50_ms'])} |",
        f"| Time to delivery, 95th percentile | {milliseconds(q2d['p95_ms'])} |",
        f"| Messages | {number(stats['messages'])} |",
        f"| Webhook events | {number(stats['events'])} |",
    ):
        assert row in md, row
    for state in ("queued", "processing", "sent", "delivered", "failed"):
        assert f"| {state} | {number(r[state])} |" in md
    for failure in stats["failures"]:
        assert f"| {failure['provider']} | {failure['error_code']} | {failure['count']} |" in md
    assert "**Silence**" in md and "**Conflicts**" in md and "**Rejected webhooks**" in md


async def test_database_report_covers_every_campaign(
    campaign_db: Path, tmp_path: Path, browser: Browser
) -> None:
    out = tmp_path / "everything.html"
    run("report", "--db", str(campaign_db), "--out", str(out))
    stats = stats_json(campaign_db)
    assert embedded_figures(out.read_text(encoding="utf-8")) == stats
    info, problems, requests = await browser.load(out)
    assert_clean_load(info, problems, requests, out)
    assert info["figures"] == stats
    assert info["h1"] == "All stored messages"
    assert "2 requests refused" in info["attention"]

    missing = run("report", "no-such-campaign", "--db", str(campaign_db), check=False)
    assert missing.returncode == 1
    assert "no campaign 'no-such-campaign'" in missing.stderr


# --- untrusted text --------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> [bold]x[/bold] \x1b[31mred\x1b[0m | *em* `c` $x$"
HOSTILE_CARRIER = '<img src=x onerror="alert(2)">|carrier'
HOSTILE_MESSAGE = "</script><script>alert(3)</script>\n# Injected heading [link](http://evil)"
HOSTILE_CODE = "<b>9</b>"


async def hostile_traffic(client: Client, t0: int) -> None:
    """One message whose campaign name, carriers, error code and message are hostile, with a
    recipient left waiting through a silence of 90 s, and a rejected request."""
    s = 1_000_000
    a = {"recipient_phone": "+243810000001", "carrier": HOSTILE_CARRIER}
    b = {"recipient_phone": "+243820000002", "carrier": "airtel_drc"}
    c = {"recipient_phone": "+243830000003", "carrier": "orange_drc"}
    m = "hostile-message"
    events = [
        lisoloo(
            "sms.queued",
            m,
            t0,
            {"total_recipients": 3, "total_messages": 3, "total_cost": 0.06, "currency": "USD"},
        ),
        lisoloo("sms.sent", m, t0 + s, {**a, "sent_at": iso(t0 + s)}),
        lisoloo("sms.sent", m, t0 + s, {**b, "sent_at": iso(t0 + s)}),
        lisoloo("sms.sent", m, t0 + s, {**c, "sent_at": iso(t0 + s)}),
        lisoloo("sms.delivered", m, t0 + 91 * s, {**b, "delivered_at": iso(t0 + 91 * s)}),
        lisoloo("sms.delivered", m, t0 + 92 * s, {**c, "delivered_at": iso(t0 + 92 * s)}),
        lisoloo(
            "sms.failed",
            m,
            t0 + 93 * s,
            {
                **c,
                "failed_at": iso(t0 + 93 * s),
                "error_code": HOSTILE_CODE,
                "error_message": HOSTILE_MESSAGE,
            },
        ),
    ]
    for body in events:
        status, answer = await client.lisoloo(json.dumps(body))
        assert status == 200, answer
    status, _ = await client.lisoloo(b"{broken")
    assert status == 400
    # The rejection is stored with the next batch.
    status, _ = await client.lisoloo(json.dumps(lisoloo("sms.sent", m, t0 + 2 * s, a)))
    assert status == 200


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.mark.both_stores
async def test_hostile_text_is_escaped_and_anomalies_found(
    make_engine: Callable[..., Engine], db_path: Path | str, session: Any
) -> None:
    """The report's data on both back ends (its own queries: the span, the silences, the
    rejections), and every untrusted string drawn as text in both formats."""
    t0 = now_us() - 200_000_000
    async with running(make_engine(campaign=HOSTILE)) as engine:
        await hostile_traffic(Client(session, engine.listener.base_url), t0)
    deadlines = {State.QUEUED: 300_000_000, State.PROCESSING: 300_000_000, State.SENT: 60_000_000}
    report = await gather_report(db_path, HOSTILE, now_us(), deadlines)
    assert report.figures == stats_record(*await gather(db_path, HOSTILE))
    # And against the traffic itself, worked out by hand: 8 events (the 7 and a's second
    # sent); a left at sent, b delivered after 90 s, c delivered after 91 s then failed (the
    # conflict); the broken body quarantined.
    figures = dict(report.figures)
    received = figures.pop("first_received_at"), figures.pop("last_received_at")
    assert received[0] is not None and received[0] <= received[1]
    assert figures == {
        "events": 8,
        "events_by_provider": {"lisoloo": 8},
        "messages": 1,
        "in_flight": 1,
        "recipients": {
            "queued": 0,
            "processing": 0,
            "sent": 1,
            "delivered": 1,
            "failed": 1,
            "unconfirmed": 0,
        },
        "delivery_rate": 0.5,
        "conflicts": 1,
        "latency": {
            "queued_to_sent": {"count": 3, "p50_ms": 1000.0, "p95_ms": 1000.0},
            "sent_to_delivered": {"count": 2, "p50_ms": 90000.0, "p95_ms": 91000.0},
            "queued_to_delivered": {"count": 2, "p50_ms": 91000.0, "p95_ms": 92000.0},
        },
        "failures": [
            {
                "provider": "lisoloo",
                "error_code": HOSTILE_CODE,
                "name": None,
                "count": 1,
                "retry": "unknown",
                "latest_message": HOSTILE_MESSAGE,
            }
        ],
        "quarantined": 1,
    }
    a = report.anomalies
    # 90 s with nothing while all three waited, and nothing since the last event for the one
    # still at sent.
    assert a.silence_count == 2
    inner, trailing = a.silences
    assert inner.waiting == 3 and 85_000_000 <= inner.length(report.generated_at) <= 90_000_000
    assert trailing.end is None and trailing.waiting == 1
    assert a.stuck == 1
    assert a.rejected == 1
    assert report.first_event_at == t0 and report.last_event_at == t0 + 93_000_000
    assert report.timeline is not None
    assert sum(report.timeline.delivered.counts) == 1  # c failed after its delivery: counted there
    assert sum(report.timeline.failed.counts) == 1
    assert sum(report.timeline.sent.counts) == 3

    document = page(report)
    assert page(report) == document, "the same data must make the same file"
    for raw in ("<script>alert", "<img", "\x1b", "</script><script>"):
        assert raw not in document.replace(
            '<script type="application/json" id="smswatch-figures">', ""
        ), raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "␛[31mred␛[0m" in document
    parser = Tags()
    parser.feed(document)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"type": "application/json", "id": "smswatch-figures"}]
    handlers = [(t, k) for t, attrs in parser.tags for k in attrs if k.startswith("on")]
    assert handlers == []
    assert embedded_figures(document) == report.figures

    md = markdown(report)
    assert "\x1b" not in md
    # Outside code spans (where nothing is markup), no '<' but the entity.
    prose = re.sub(r"(`+) .*? \1|`[^`]*`", "", md)
    assert "<" not in prose.replace("&lt;", "")
    assert "\\[bold\\]" in md and "\\*em\\*" in md and "\\`c\\`" in md and "\\$x\\$" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert not any(line.startswith("# Injected") for line in md.splitlines())
    assert "\\[link\\](http://evil)" in md
    # A '|' in a value cannot add a column: every row of a table has the header's cells.
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, re.M):
        rows = table.strip().splitlines()
        cells = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(cells) == 1, rows


async def test_hostile_report_runs_nothing_in_chromium(
    make_engine: Callable[..., Engine],
    db_path: Path,
    tmp_path: Path,
    session: Any,
    browser: Browser,
) -> None:
    async with running(make_engine(campaign=HOSTILE)) as engine:
        await hostile_traffic(Client(session, engine.listener.base_url), now_us() - 200_000_000)
    out = tmp_path / "hostile.html"
    made = run("report", HOSTILE, "--db", str(db_path), "--out", str(out))
    assert made.returncode == 0
    info, problems, requests = await browser.load(out)
    assert_clean_load(info, problems, requests, out)
    # Drawn as the text it is (its escape character made visible), never run.
    assert info["h1"].startswith("<script>alert(1)</script> [bold]x[/bold] ␛[31mred")
    assert "<img src=x" in info["text"] and "</script><script>alert(3)</script>" in info["text"]


def test_report_writes_where_it_is_told(campaign_db: Path, tmp_path: Path) -> None:
    """A regular file is replaced whole; a pipe or a device (/dev/stdout, /dev/null) or a
    link is written through, never replaced by a file; a directory is refused."""
    taken = tmp_path / "a-directory"
    taken.mkdir()
    failed = run("report", CAMPAIGN, "--db", str(campaign_db), "--out", str(taken), check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("smswatch: cannot write")

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE) as reader:
        run("report", CAMPAIGN, "--db", str(campaign_db), "--format", "md", "--out", str(pipe))
        through_pipe = reader.communicate(timeout=30)[0].decode()
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert through_pipe.startswith("# SMS campaign report: spring-sale")

    target = tmp_path / "kept.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    run("report", CAMPAIGN, "--db", str(campaign_db), "--format", "md", "--out", str(link))
    assert link.is_symlink() and target.read_text().startswith("# SMS campaign report")

    assert sorted(os.listdir(tmp_path)) == ["a-directory", "kept.md", "link.md", "pipe"], (
        "no temporary file left behind"
    )
