"""A load generator in Python, for what wrk cannot do here.

    python -m benchmarks.loadgen closed URL SECONDS CONNECTIONS   as many requests as answered
    python -m benchmarks.loadgen open URL RATE SECONDS [ACKED]     a fixed rate, open loop
    python -m benchmarks.loadgen open URL RATE SECONDS [ACKED] --requests FILE
        the same, request n being line n of FILE (`headers<TAB>body`, the headers as JSON):
        requests signed beforehand (Telnyx's Ed25519), so the generator times no signing

Open loop: request i is due at start + i/RATE whatever happened before, and its latency counts
from that due time (no coordinated omission). Each request goes out on an idle keep-alive
connection, or a new one, as a gateway's sender pool does (no pipelining). ACKED gets
`<wall time of the 2xx> <event id>`. Prints one JSON object.

The open loop is its own small client (an asyncio Protocol with httptools' response parser, on
uvloop): aiohttp's client costs ~150 µs a request, so at 5,000 requests/s it could not keep the
schedule on one core and its own lag would count as the server's.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import urllib.parse

import aiohttp
import httptools

from smswatch.loops import new_event_loop

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


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: list[_Connection]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        self.pool.append(self)
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


def signed_requests(path: str) -> list[tuple[bytes, bytes]]:
    """The requests of a `--requests` file: (header lines, body) each."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            headers, _, data = line.rstrip(b"\n").partition(b"\t")
            lines = "".join(f"{k}: {v}\r\n" for k, v in json.loads(headers).items())
            out.append((lines.encode(), data))
    return out


async def open_loop(
    url: str,
    rate: float,
    seconds: float,
    acked_path: str | None,
    requests: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    acked = open(acked_path, "w") if acked_path else None  # noqa: SIM115 - closed below
    total = int(rate * seconds)
    if requests is not None and len(requests) < total:
        raise SystemExit(f"the requests file has {len(requests)} requests, {total} are due")
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    start_line = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    head = start_line + b"Content-Type: application/json\r\nContent-Length: "
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []

    async def one(n: int, due: float) -> None:
        nonlocal errors
        if requests is None:
            data, first = body("o", n), head
        else:
            extra, data = requests[n]
            first = start_line + extra + b"Content-Length: "
        try:
            if idle:
                conn = idle.pop()
            else:
                _, conn = await loop.create_connection(lambda: _Connection(idle), host, port)
            status, answer = await asyncio.wait_for(
                conn.send(first + str(len(data)).encode() + b"\r\n\r\n" + data), 30
            )
        except (OSError, TimeoutError):
            errors += 1
            return
        done = time.perf_counter()
        if status < 300:
            latencies.append(done - due)
            if acked:
                acked.write(f"{time.time():.6f} {json.loads(answer)['event_id']}\n")
        else:
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
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
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
    argv = sys.argv[1:]
    requests = None
    if "--requests" in argv:
        at = argv.index("--requests")
        requests = signed_requests(argv[at + 1])  # read before the schedule starts
        del argv[at : at + 2]
    mode, url = argv[0], argv[1]
    if mode == "closed":
        result = asyncio.run(closed(url, float(argv[2]), int(argv[3])))
    else:
        acked = argv[4] if len(argv) > 4 else None
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            result = runner.run(open_loop(url, float(argv[2]), float(argv[3]), acked, requests))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
