"""Scale: a database of 1,000,000 events, then the monitor's first paint, the time to open a
1,000-recipient message, and the process's peak RSS, against the same on an empty database.

    python -m benchmarks.scale generate PATH [EVENTS]   build the database (through the writer)
    python -m benchmarks.scale measure PATH             one measurement, JSON on stdout
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.store.sqlite.writer import Writer

BIG_MESSAGE = "big0000000000000000000000"
CARRIERS = ("vodacom_drc", "airtel_drc", "orange_drc", "africell_drc")


def payload(kind: str, mid: str, n: int, phone: str, carrier: str) -> str:
    return json.dumps(
        {
            "event_id": f"s{n}",
            "event_type": kind,
            "timestamp": "2026-11-23T10:00:00Z",
            "message_id": mid,
            "data": {"recipient_phone": phone, "carrier": carrier},
        },
        separators=(",", ":"),
    )


def events(total: int, t0: int):
    """Lisoloo-style messages: the first has 1,000 recipients, the rest 250; three events a
    recipient."""
    rng = random.Random(7)
    n = 0
    msg = 0
    while n < total:
        size = 1000 if msg == 0 else 250
        mid = BIG_MESSAGE if msg == 0 else f"{msg:024x}"
        at = t0 + msg * 1_000_000
        info = MessageInfo(total_recipients=size, total_cost=size * 0.02, currency="USD")
        n += 1
        yield Event(
            "lisoloo",
            f"s{n}",
            f"lisoloo|s{n}",
            "sms.queued",
            State.QUEUED,
            mid,
            None,
            at,
            at,
            payload("sms.queued", mid, n, "", ""),
            message_info=info,
        )
        for r in range(size):
            phone = f"+2438{msg:04d}{r:05d}"
            carrier = rng.choice(CARRIERS)
            final = State.FAILED if rng.random() < 0.08 else State.DELIVERED
            for step, state in enumerate((State.PROCESSING, State.SENT, final)):
                n += 1
                t = at + (r + step * 2) * 1000
                kind = f"sms.{state.value}"
                yield Event(
                    "lisoloo",
                    f"s{n}",
                    f"lisoloo|s{n}",
                    kind,
                    state,
                    mid,
                    phone,
                    t,
                    t,
                    payload(kind, mid, n, phone, carrier),
                    carrier=carrier,
                    error_code="1502" if state == State.FAILED else None,
                )
                if n >= total:
                    return
        msg += 1


async def generate(path: Path, total: int) -> None:
    writer = Writer(path, durability="normal")
    await writer.open()
    started = time.perf_counter()
    batch: list[Event] = []
    for ev in events(total, 1_795_000_000_000_000):
        batch.append(ev)
        if len(batch) == 5000:
            await writer.submit(batch)
            batch = []
    if batch:
        await writer.submit(batch)
    await writer.close()
    print(f"generated {total:,} events in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def measure(path: Path) -> dict[str, float | None]:
    from smswatch.live.datasource import LocalSource
    from smswatch.live.engine import EngineConfig
    from smswatch.live.thread import EngineThread
    from smswatch.tui.app import SmsWatchApp
    from smswatch.tui.screens.dashboard import DashboardScreen
    from smswatch.tui.screens.message import MessageScreen

    t0 = time.perf_counter()
    engine = EngineThread(EngineConfig(db_path=path, port=0)).start()
    app = SmsWatchApp(LocalSource(engine), theme="dark", remember_theme=False)
    result: dict[str, float | None] = {}

    async def pilot(p: object) -> None:
        while app.painted_at is None or not isinstance(app.screen, DashboardScreen):
            await asyncio.sleep(0.005)
        result["first_paint_s"] = app.painted_at - t0
        times = []
        for _ in range(5):
            await asyncio.sleep(0.5)
            opened = time.perf_counter()
            app.open_message(BIG_MESSAGE)
            while not isinstance(app.screen, MessageScreen) or app.screen.shown_at is None:
                await asyncio.sleep(0.001)
            times.append((app.screen.shown_at - opened) * 1000)
            result["recipients_shown"] = (
                len(app.screen.detail.recipients) if app.screen.detail else 0
            )
            app.pop_screen()
        result["open_message_first_ms"] = times[0]
        result["open_message_ms"] = sorted(times)[len(times) // 2]
        await asyncio.sleep(0.5)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        app.exit()

    try:
        app.run(headless=True, size=(160, 45), auto_pilot=pilot)
    finally:
        engine.stop()
    return result


def main() -> None:
    if sys.argv[1] == "generate":
        total = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
        asyncio.run(generate(Path(sys.argv[2]), total))
    else:
        print(json.dumps(measure(Path(sys.argv[2]))))


if __name__ == "__main__":
    main()
