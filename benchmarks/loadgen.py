"""A load generator in Python (aiohttp client), for what wrk cannot do here.

    python -m benchmarks.loadgen closed URL SECONDS CONNECTIONS   as many requests as answered
    python -m benchmarks.loadgen open URL RATE SECONDS [ACKED]     a fixed rate, open loop

Open loop: request i is due at start + i/RATE whatever happened before, and its latency counts
from that due time (no coordinated omission). ACKED gets `<wall time of the 2xx> <event id>`.
Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time

import aiohttp

BODY = (
    '{{"event_id":"{id}","event_type":"sms.sent","timestamp":"2026-11-23T10:00:00Z",'
    '"message_id":"load{m:05d}","data":{{"recipient_phone":"+2439{n:08d}","carrier":"vodacom_drc",'
    '"sent_at":"2026-11-23T10:00:00Z"}}}}'
)


def body(tag: str, n: int) -> bytes:
    return BODY.format(id=f"{tag}-{n}", m=n % 2000, n=n).encode()


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(p * len(ordered)), len(ordered) - 1)]


async def closed(url: str, seconds: float, connections: int) -> dict[str, object]:
    ok = bad = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:

        async def worker() -> None:
            nonlocal ok, bad
            while time.perf_counter() < stop:
                async with s.post(
                    url, data=body("c", next(counter)), headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()
                    if r.status < 300:
                        ok += 1
                    else:
                        bad += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {"requests": ok + bad, "ok": ok, "non2xx": bad, "rps": ok / elapsed}


async def open_loop(
    url: str, rate: float, seconds: float, acked_path: str | None
) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    acked = open(acked_path, "w") if acked_path else None  # noqa: SIM115 - closed below
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:

        async def one(n: int, due: float) -> None:
            nonlocal errors
            try:
                async with s.post(
                    url, data=body("o", n), headers={"Content-Type": "application/json"}
                ) as r:
                    answer = await r.read()
                    done = time.perf_counter()
                    if r.status < 300:
                        latencies.append(done - due)
                        if acked:
                            acked.write(f"{time.time():.6f} {json.loads(answer)['event_id']}\n")
                    else:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        start = time.perf_counter() + 0.2
        tasks = []
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    if acked:
        acked.close()
    ms = [x * 1000 for x in latencies]
    return {
        "rate": rate,
        "requests": total,
        "ok": len(latencies),
        "errors": errors,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else None,
    }


def main() -> None:
    # The generator's own garbage collections stall its loop, and every request in flight
    # during a stall is counted as server latency: at 2,000/s they moved the p99 between 9 and
    # 26 ms from run to run, against both servers. A run holds a few hundred MB at most.
    gc.disable()
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "closed":
        result = asyncio.run(closed(url, float(sys.argv[3]), int(sys.argv[4])))
    else:
        acked = sys.argv[5] if len(sys.argv) > 5 else None
        result = asyncio.run(open_loop(url, float(sys.argv[3]), float(sys.argv[4]), acked))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
