"""A YeboLink campaign of 100,000 recipients (100,000 message ids, as YeboLink sends one
message per recipient), written through the writer, and the monitor measured on it, for the
campaign rows of `make bench`.

    python -m benchmarks.campaign_scale generate PATH [RECIPIENTS]
    python -m benchmarks.campaign_scale measure PATH RATE SECONDS   one run, JSON on stdout

The campaign is still running when measured: 5% of its recipients are sent and not final yet.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.loadgen import percentile
from smswatch.core.domain import Event, MessageInfo, State
from smswatch.store.sqlite.writer import Writer

CAMPAIGN = "bulk-100k"
PREFIXES = ("+26876", "+26878", "+2782", "+2783", "+2772")
FAILURES = (("30003", "Unreachable destination handset"), ("30006", "Landline"))


def _body(kind: str, at: int, data: dict[str, object]) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1e6)) + "Z"
    return json.dumps({"event": kind, "timestamp": stamp, "data": data}, separators=(",", ":"))


def events(recipients: int, t0: int, open_share: float = 0.0) -> Iterator[Event]:
    """Queued, sent, then delivered (92%) or failed, a message per recipient, 1,000 new
    messages a second of event time. `open_share` of them stop at sent (still in flight)."""
    rng = random.Random(11)
    meta = json.dumps({"campaign": CAMPAIGN, "batch_id": "b1"}, separators=(",", ":"))
    for i in range(recipients):
        mid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        phone = f"{rng.choice(PREFIXES)}{rng.randrange(10**6):06d}"
        at = t0 + i * 1000
        base = {"message_id": mid, "channel": "sms", "recipient": phone, "metadata": meta}
        steps = [("message.queued", State.QUEUED, at), ("message.sent", State.SENT, at + 900_000)]
        if rng.random() >= open_share:
            final = State.FAILED if rng.random() < 0.08 else State.DELIVERED
            steps.append((f"message.{final.value}", final, at + 4_000_000))
        for kind, state, t in steps:
            info = MessageInfo(
                total_recipients=1,
                total_cost=1.0 if state == State.QUEUED else None,
                currency="credits" if state == State.QUEUED else None,
                channel="sms",
                metadata=meta,
            )
            code, text = rng.choice(FAILURES) if state == State.FAILED else (None, None)
            yield Event(
                "yebolink",
                f"{kind}|{mid}",
                f"yebolink|{kind}|{mid}|{t}",
                kind,
                state,
                mid,
                phone,
                t,
                t,
                _body(kind, t, {**base, "status": state.value}),
                error_code=code,
                error_message=text,
                message_info=info,
            )


async def generate(path: Path, recipients: int, t0: int, open_share: float = 0.0) -> None:
    from smswatch.campaigns.rule import CampaignRule

    writer = Writer(path, durability="normal", campaigns=CampaignRule())
    await writer.open()
    batch: list[Event] = []
    for ev in events(recipients, t0, open_share):
        batch.append(ev)
        if len(batch) == 5000:
            await writer.submit(batch)
            batch = []
    if batch:
        await writer.submit(batch)
    await writer.close()


def measure(path: Path, rate: int, seconds: float) -> dict[str, Any]:
    """First paint, the campaign screen opening (five times), and keys answered while `rate`
    events a second flow in (a load generator on the other CPU), in one monitor process."""
    from smswatch.live.datasource import LocalSource
    from smswatch.live.engine import EngineConfig
    from smswatch.live.thread import EngineThread
    from smswatch.tui.app import SmsWatchApp
    from smswatch.tui.screens.campaign import CampaignScreen
    from smswatch.tui.screens.dashboard import DashboardScreen, MessagesTable

    t0 = time.perf_counter()
    engine = EngineThread(EngineConfig(db_path=path, port=0)).start()
    source = LocalSource(engine)
    app = SmsWatchApp(source, theme="dark", remember_theme=False)
    result: dict[str, Any] = {}

    async def until(condition: Any, within: float = 60.0) -> float:
        started = time.perf_counter()
        while not condition():
            if time.perf_counter() - started > within:
                raise TimeoutError("benchmark condition not met")
            await asyncio.sleep(0.002)
        return time.perf_counter()

    async def frame() -> float:
        drawn = asyncio.get_running_loop().create_future()
        app.call_after_refresh(lambda: drawn.done() or drawn.set_result(time.perf_counter()))
        return await drawn

    async def pilot(_p: object) -> None:
        await until(lambda: app.painted_at is not None and isinstance(app.screen, DashboardScreen))
        assert app.painted_at is not None
        result["first_paint_s"] = app.painted_at - t0
        shown = await until(lambda: any(c.name == CAMPAIGN for c in app.model.campaigns))
        result["panel_s"] = shown - t0
        book = source.book
        ready = await until(
            lambda: (c := book._campaigns.get(CAMPAIGN)) is not None and c.tally is not None
        )
        result["prefetched_s"] = ready - t0
        opens = []
        for _ in range(5):
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            app.open_campaign(CAMPAIGN)
            await until(lambda: isinstance(app.screen, CampaignScreen) and app.screen.shown_at)
            screen = app.screen
            assert isinstance(screen, CampaignScreen) and screen.shown_at is not None
            opens.append((screen.shown_at - started) * 1000)
            app.pop_screen()
            await until(lambda: isinstance(app.screen, DashboardScreen))
        result["open_campaign_ms"] = sorted(opens)[len(opens) // 2]
        result["open_campaign_max_ms"] = max(opens)
        # Keys while webhooks flow: the cursor of the in-flight table, up and down.
        table = app.screen.query_one(MessagesTable)
        table.focus()
        load = await asyncio.create_subprocess_exec(
            *(["taskset", "-c", "1"] if shutil.which("taskset") else []),
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "open",
            engine.engine.listener.url("lisoloo"),
            str(rate),
            str(seconds),
            stdout=subprocess.DEVNULL,
        )
        keys = []
        try:
            await asyncio.sleep(1.0)
            stop = time.perf_counter() + seconds - 2
            down = True
            while time.perf_counter() < stop:
                before = table.cursor
                # At the top "up" cannot move: the cursor lands there when its row finishes
                # and leaves the in-flight table.
                down = down or before == 0
                started = time.perf_counter()
                app.simulate_key("down" if down else "up")
                await until(lambda b=before: table.cursor != b, 5)
                keys.append((await frame() - started) * 1000)
                down = not down
                await asyncio.sleep(0.25)
        finally:
            await load.wait()
        result["keys"] = len(keys)
        result["key_p50_ms"] = percentile(keys, 0.5)
        result["key_p95_ms"] = percentile(keys, 0.95)
        result["key_max_ms"] = max(keys)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        app.exit()

    try:
        app.run(headless=True, size=(160, 45), auto_pilot=pilot)
    finally:
        engine.stop()
    return result


def main() -> None:
    if sys.argv[1] == "measure":
        print(json.dumps(measure(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
        return
    recipients = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    started = time.perf_counter()
    t0 = int(time.time() * 1e6) - recipients * 1000 - 10_000_000
    asyncio.run(generate(Path(sys.argv[2]), recipients, t0, open_share=0.05))
    print(f"generated {recipients:,} recipients in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
