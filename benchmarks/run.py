"""Run the benchmarks and write benchmarks/RESULTS.md.

    python -m benchmarks.run [--only NAME ...] [--seconds S] [--out FILE]

Every figure is compared with a baseline measured in the same run on the same machine: a bare
aiohttp server that answers 200 and does nothing (throughput, latency), a low rate (event to
screen), or an empty database (scale). The server under test runs on CPU 0, the load on CPU 1.
Load: wrk with unique bodies (keep-alive) if installed, else the built-in asyncio client.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PY = sys.executable
SERVER_CPU, LOAD_CPU = "0", "1"


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return (
        ["taskset", "-c", cpu, *cmd]
        if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1
        else cmd
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FEED_TOKEN = "bench-token"


def stuck_viewer(feed_port: int) -> socket.socket:
    """A feed viewer that completes the handshake and then never reads a byte."""
    sock = socket.create_connection(("127.0.0.1", feed_port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer " + FEED_TOKEN.encode() + b"\r\n\r\n"
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


@dataclass(frozen=True)
class Running:
    url: str  # the webhook URL
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, all its threads, user and system."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(
    kind: str,
    db: Path | str | None = None,
    drawn: Path | None = None,
    viewer: bool = False,
    cpu: str | None = SERVER_CPU,
    extra: tuple[str, ...] = (),
    route: str = "lisoloo",
) -> Iterator[Running]:
    """Start `bare`, `serve` or `tui` on CPU 0 (or `cpu`; None: unpinned); yields it once it
    answers; stops it gracefully. `serve` runs with its viewers' feed (as by default); `viewer`
    attaches a stuck viewer. `db` may be a PostgreSQL URL."""
    port = free_port()
    feed_port = free_port()
    if kind == "serve":
        cmd = [
            PY,
            "-m",
            "smswatch",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--durability",
            "full",
            "--log-format",
            "json",
            "--feed-port",
            str(feed_port),
            "--feed-token",
            FEED_TOKEN,
            *extra,
        ]
    else:
        cmd = [PY, "-m", "benchmarks.servers", kind, str(port)]
        if kind == "tui":
            cmd += [str(db), *([str(drawn)] if drawn else [])]
    proc = subprocess.Popen(
        pinned(cpu, cmd) if cpu is not None else cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=HERE.parent,
    )
    url = f"http://127.0.0.1:{port}/webhooks/lisoloo"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {proc.returncode}")
            try:
                req = urllib.request.Request(
                    url, data=b"{}", headers={"Content-Type": "application/json"}
                )
                urllib.request.urlopen(req, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # answering (400 for an empty envelope): up
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0)  # let it settle (the TUI's first paint, the hub's first tick)
        held = stuck_viewer(feed_port) if viewer else None
        # taskset execs the server: same pid
        yield Running(url.replace("/webhooks/lisoloo", f"/webhooks/{route}"), proc.pid)
        if held is not None:
            held.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(
    url: str,
    seconds: int,
    connections: int,
    acked: Path | None = None,
    script: str = "wrk_unique.lua",
    args: tuple[str, ...] = (),
) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / script)]
    cmd += [url, "--", *args, *([str(acked)] if acked else [])]
    out = subprocess.run(pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    data["rps"] = (data["requests"] - data["non2xx"]) / (data["duration_us"] / 1e6)
    data["tool"] = "wrk"
    return data


def loadgen(mode: str, url: str, *args: Any) -> dict[str, Any]:
    cmd = [PY, "-m", "benchmarks.loadgen", mode, url, *map(str, args)]
    out = subprocess.run(
        pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True, cwd=HERE.parent
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def throughput(
    srv: Running, seconds: int, acked: Path | None, twilio: Path | None = None
) -> dict[str, Any]:
    """Requests answered per second, and the server's CPU time per answered request.
    `twilio`: post the signed Twilio callbacks of that file (`twilio_requests`), with wrk."""
    cpu = srv.cpu_seconds()
    if twilio is not None:
        data = wrk(srv.url, seconds, 32, acked, "wrk_twilio.lua", (str(twilio),))
    elif shutil.which("wrk"):
        data = wrk(srv.url, seconds, 32, acked)
    else:
        data = loadgen("closed", srv.url, seconds, 32)
        data["tool"] = "asyncio client"
    data["cpu_us"] = (srv.cpu_seconds() - cpu) / max(data["requests"], 1) * 1e6
    return data


def stored_ids(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def acked_ids(prefix: Path) -> set[str]:
    ids: set[str] = set()
    for path in prefix.parent.glob(prefix.name + "*"):
        ids.update(line.split()[-1] for line in path.read_text().splitlines() if line.strip())
    return ids


@dataclass
class Row:
    name: str
    measured: str
    baseline: str
    ratio: float | None
    goal: str
    ok: bool | None
    notes: list[str] = field(default_factory=list)


TWILIO_TOKEN = "bench-twilio-auth-token"
# The URL the callbacks are signed over, whatever port the server gets (`--public-url`).
TWILIO_PUBLIC = "https://smswatch.example"
TWILIO_PER_SECOND = 25_000  # callbacks made per second of a round: more than serve answers


def twilio_requests(path: Path, count: int) -> None:
    """`count` Twilio status callbacks as Twilio posts them for messages sent through a
    messaging service: each MessageSid calls back `queued`, `sent`, then `delivered` (with the
    carrier's RawDlrDoneDate), the three stages of three messages interleaved, as a bulk send's
    callbacks arrive; each form in Twilio's order, signed over the public URL. One
    `signature<TAB>body` a line."""
    from urllib.parse import urlencode

    from smswatch.gateways.twilio.webhook import sign

    url = f"{TWILIO_PUBLIC}/webhooks/twilio"
    stages = ("queued", "sent", "delivered")
    written = 0
    with path.open("w") as out:
        for k in range(count):
            for stage in range(min(k + 1, 3)):  # queued of message k, sent of k-1, ...
                if written == count:
                    return
                n, status = k - stage, stages[stage]
                sid = f"SM{n:032x}"
                fields = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status)]
                fields += [("To", f"+1415{n % 10**7:07d}")]
                fields += [("MessagingServiceSid", "MG" + "0" * 32), ("MessageSid", sid)]
                fields += [("AccountSid", "AC" + "0" * 32), ("From", "+14155550100")]
                if status == "delivered":
                    fields.append(("RawDlrDoneDate", "2612071500"))
                fields.append(("ApiVersion", "2010-04-01"))
                out.write(f"{sign(TWILIO_TOKEN, url, fields)}\t{urlencode(fields)}\n")
                written += 1


# Telnyx's webhooks are signed with Ed25519 by this key (a fixed seed: the same every run), and
# checked by `serve --telnyx-public-key` with its public half.
TELNYX_SEED = bytes(range(32))


def telnyx_public_key() -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(TELNYX_SEED).public_key()
    return base64.b64encode(key.public_bytes_raw()).decode()


def telnyx_requests(path: Path, count: int) -> None:
    """`count` Telnyx webhooks as a bulk send's arrive: each message's `message.sent`, then its
    `message.finalized` (delivered, with its cost), the two stages of two messages interleaved;
    each body as Telnyx writes it, with its own `data.id`, signed now over `timestamp|body`
    (Telnyx's signatures are good for five minutes: made just before each round). One
    `headers<TAB>body` a line, the headers as JSON, for `loadgen --requests`."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(TELNYX_SEED)
    stamp = str(int(time.time()))
    stages = ("message.sent", "message.finalized")
    written = 0
    with path.open("w") as out:
        for k in range(count):
            for stage in range(min(k + 1, 2)):  # sent of message k, finalized of k-1
                if written == count:
                    return
                n, event = k - stage, stages[stage]
                at = "2026-12-07T15:00:00.000+00:00"
                payload = {
                    "completed_at": at if stage else None,
                    "cost": {"amount": "0.0040", "currency": "USD"},
                    "direction": "outbound",
                    "errors": [],
                    "from": {"carrier": "TELNYX LLC", "phone_number": "+18445550100"},
                    "id": f"40385f64-5717-4562-b3fc-{n:012x}",
                    "messaging_profile_id": "40017f5e-5a1e-4c0d-9b7a-5a1e0b7c0001",
                    "parts": 1,
                    "record_type": "message",
                    "sent_at": at,
                    "tags": ["bench"],
                    "text": "Your appointment is tomorrow at 10:00. Reply STOP to opt out.",
                    "to": [
                        {
                            "carrier": "T-MOBILE USA, INC.",
                            "line_type": "Wireless",
                            "phone_number": f"+1415{n % 10**7:07d}",
                            "status": "delivered" if stage else "sent",
                        }
                    ],
                    "type": "SMS",
                }
                body = json.dumps(
                    {
                        "data": {
                            "event_type": event,
                            "id": f"86f58db9-0fe3-4adc-{stage:04x}-{n:012x}",
                            "occurred_at": at,
                            "payload": payload,
                            "record_type": "event",
                        },
                        "meta": {"attempt": 1, "delivered_to": "https://smswatch.example"},
                    },
                    separators=(",", ":"),
                ).encode()
                signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
                headers = {
                    "Content-Type": "application/json",
                    "telnyx-signature-ed25519": signature,
                    "telnyx-timestamp": stamp,
                }
                out.write(f"{json.dumps(headers)}\t{body.decode()}\n")
                written += 1


def telnyx_latency(rate: int, seconds: int, rounds: int) -> Row:
    """Open-loop ack latency of `serve` for signed Telnyx webhooks (each one Ed25519-verified),
    against the bare server given the same requests; judged on the worst round."""
    bare, ours = [], []
    public = ("--telnyx-public-key", telnyx_public_key())
    with tempfile.TemporaryDirectory() as tmp:
        signed = Path(tmp) / "telnyx.tsv"
        for n in range(rounds):
            telnyx_requests(signed, int(rate * seconds) + 1)
            with server("bare", route="telnyx") as srv:
                bare.append(loadgen("open", srv.url, rate, seconds, "--requests", signed))
            with server("serve", Path(tmp) / f"t{n}.db", extra=public, route="telnyx") as srv:
                ours.append(loadgen("open", srv.url, rate, seconds, "--requests", signed))
    worst = max(ours, key=lambda r: r["p99_ms"])
    worst_bare = max(bare, key=lambda r: r["p99_ms"])
    ratio = worst["p99_ms"] / worst_bare["p99_ms"] if worst_bare["p99_ms"] else None
    limit = 25
    p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in ours)
    bare_p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in bare)
    return Row(
        f"Ack latency at {rate:,} Telnyx webhooks/s (`serve`, Ed25519 verified)",
        f"p50 {worst['p50_ms']:.1f} ms, p99 {worst['p99_ms']:.1f} ms",
        f"p50 {worst_bare['p50_ms']:.1f} ms, p99 {worst_bare['p99_ms']:.1f} ms",
        ratio,
        f"p99 <= {limit} ms at {rate:,}/s (Telnyx wants a 2xx within 2 s)",
        worst["p99_ms"] <= limit and worst["errors"] == 0,
        [
            f"open loop, {rounds} rounds of {seconds}s, the worst p99 shown; p99 per round "
            f"(ms): smswatch {p99s}; bare {bare_p99s}; "
            f"{sum(r['ok'] for r in ours):,} answered, {sum(r['errors'] for r in ours)} errors; "
            f"max {max(r['max_ms'] for r in ours):.1f} ms; message.sent and message.finalized "
            "interleaved, each with its own data.id, signed beforehand (benchmarks.run "
            "telnyx_requests)"
        ],
    )


INFOBIP_AUTH = ("bench", "infobip-bench-password")
INFOBIP_BATCH = 100  # reports a post: Infobip's most
INFOBIP_PER_SECOND = 600  # batches made per second of a round: more than serve answers


def infobip_requests(path: Path, count: int) -> None:
    """`count` Infobip posts of INFOBIP_BATCH final delivery reports each, as a bulk send's
    arrive: one `bulkId` a post, each report a message of its own (mostly DELIVERED_TO_HANDSET,
    one in ten UNDELIVERABLE with its error), with the fields Infobip writes. One body a line."""
    delivered = {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"}
    failed = {
        "groupId": 2,
        "groupName": "UNDELIVERABLE",
        "id": 9,
        "name": "UNDELIVERABLE_NOT_DELIVERED",
    }
    no_error = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False}
    absent = {
        "groupId": 1,
        "groupName": "HANDSET_ERRORS",
        "id": 27,
        "name": "EC_ABSENT_SUBSCRIBER",
        "permanent": False,
    }
    with path.open("w") as out:
        for b in range(count):
            results = []
            for r in range(INFOBIP_BATCH):
                n = b * INFOBIP_BATCH + r
                fail = n % 10 == 9
                results.append(
                    {
                        "bulkId": f"bench-bulk-{b:08d}",
                        "messageId": f"bench-{n:012d}",
                        "to": f"4915{n % 10**8:08d}",
                        "sentAt": "2026-12-07T15:00:00.000+0000",
                        "doneAt": "2026-12-07T15:00:04.000+0000",
                        "smsCount": 1,
                        "mccMnc": "26201",
                        "price": {"pricePerMessage": 0.0075, "currency": "EUR"},
                        "status": failed if fail else delivered,
                        "error": absent if fail else no_error,
                    }
                )
            out.write(json.dumps({"results": results}, separators=(",", ":")) + "\n")


def infobip_row(
    results: list[dict[str, Any]], checks: list[tuple[int, int, int]], lisoloo: float, seconds: int
) -> Row:
    """Events/s of `serve` taking Infobip's batches against the Lisoloo row of the same rounds
    (one event a post): a batch of 100 is one request, one auth check, one commit."""
    best = max(r["rps"] for r in results) * INFOBIP_BATCH
    non2xx = sum(r["non2xx"] for r in results)
    lost = sum(missing for _, missing, _ in checks)
    short = sum(gap for _, _, gap in checks)
    ratio = best / lisoloo
    events = ", ".join(f"{r['rps'] * INFOBIP_BATCH:,.0f}" for r in results)
    return Row(
        INFOBIP_ROW,
        f"{best:,.0f} events/s ({best / INFOBIP_BATCH:,.0f} posts/s)",
        f"{lisoloo:,.0f} events/s (Lisoloo JSON, one a post, same rounds)",
        ratio,
        ">= 1.0x Lisoloo",
        ratio >= 1.0 and lost == 0 and short == 0 and non2xx == 0,
        [
            f"rounds (events/s): {events}"
            f" (wrk, 8 connections, {seconds}s; {INFOBIP_BATCH} final reports a post, each a new "
            "message of one bulkId a post, Basic auth)",
            f"2xx answers checked against the database: {sum(n for n, _, _ in checks):,} posts, "
            f"first event of each missing: {lost}; reports the answers said stored but the "
            f"database lacks: {short}; answers other than 2xx: {non2xx}",
        ],
    )


INFOBIP_ROW = (
    "Ingest of Infobip batches of 100 reports, headless (Basic auth, `serve`, durability full)"
)


def stored_count(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def acked_stored(prefix: Path) -> int:
    """The sum of what the acknowledged batches said they stored (wrk_batches.lua's files)."""
    return sum(
        int(line.split()[0])
        for path in prefix.parent.glob(prefix.name + "*")
        for line in path.read_text().splitlines()
        if line.strip()
    )


def ingest(kind: str, seconds: int, rounds: int) -> list[Row]:
    """Throughput of `serve` (or the TUI) against the bare aiohttp server, best of `rounds`
    each; headless, also against the do-nothing server on smswatch's own HTTP stack, and the
    same `serve` taking Twilio's signed forms and Infobip's batches (with wrk) against itself
    taking Lisoloo's JSON."""
    bare, lean, ours, checks = [], [], [], []
    # As users run it: neither server pinned (the load still on CPU 1), so the loop and the
    # writer thread may run on both cores and hand the GIL over between them.
    loose_bare: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    loose_checks: list[tuple[int, int]] = []
    twilio: list[dict[str, Any]] = []
    twilio_checks: list[tuple[int, int]] = []
    forms = batches = None
    infobip: list[dict[str, Any]] = []
    infobip_checks: list[tuple[int, int, int]] = []
    if kind == "serve" and shutil.which("wrk"):
        forms = Path(tempfile.mkdtemp()) / "twilio.tsv"
        twilio_requests(forms, seconds * TWILIO_PER_SECOND)
        batches = forms.parent / "infobip.jsonl"
        infobip_requests(batches, seconds * INFOBIP_PER_SECOND)
    for _ in range(rounds):
        with server("bare") as srv:
            bare.append(throughput(srv, seconds, None))
        if kind == "serve":
            with server("lean") as srv:
                lean.append(throughput(srv, seconds, None))
        with tempfile.TemporaryDirectory() as tmp:
            db, acked = Path(tmp) / "b.db", Path(tmp) / "acked"
            with server(kind, db) as srv:
                ours.append(throughput(srv, seconds, acked))
            got, stored = acked_ids(acked), stored_ids(db)
            checks.append((len(got), len(got - stored)))
        if kind == "serve":
            with server("bare", cpu=None) as srv:
                loose_bare.append(throughput(srv, seconds, None))
            with tempfile.TemporaryDirectory() as tmp:
                db, acked = Path(tmp) / "u.db", Path(tmp) / "acked"
                with server(kind, db, cpu=None) as srv:
                    loose.append(throughput(srv, seconds, acked))
                got, stored = acked_ids(acked), stored_ids(db)
                loose_checks.append((len(got), len(got - stored)))
        if forms is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            db, acked = Path(tmp) / "t.db", Path(tmp) / "acked"
            signed = ("--twilio-auth-token", TWILIO_TOKEN, "--public-url", TWILIO_PUBLIC)
            with server(kind, db, extra=signed, route="twilio") as srv:
                twilio.append(throughput(srv, seconds, acked, forms))
            got, stored = acked_ids(acked), stored_ids(db)
            twilio_checks.append((len(got), len(got - stored)))
        with tempfile.TemporaryDirectory() as tmp:
            db, acked = Path(tmp) / "i.db", Path(tmp) / "acked"
            user, password = INFOBIP_AUTH
            auth = ("--infobip-basic-auth", f"{user}:{password}")
            header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            with server(kind, db, extra=auth, route="infobip") as srv:
                cpu = srv.cpu_seconds()
                data = wrk(srv.url, seconds, 8, acked, "wrk_batches.lua", (str(batches), header))
                data["cpu_us"] = (srv.cpu_seconds() - cpu) / max(data["requests"], 1) * 1e6
                infobip.append(data)
            got, stored = acked_ids(acked), stored_ids(db)
            gap = max(acked_stored(acked) - stored_count(db), 0)
            infobip_checks.append((len(got), len(got - stored), gap))
    if forms is not None:
        shutil.rmtree(forms.parent)
    best_bare = max(r["rps"] for r in bare)
    best = max(r["rps"] for r in ours)
    ratio = best / best_bare
    notes = [
        f"rounds (req/s): smswatch {rps(ours)}; bare aiohttp {rps(bare)}"
        + (f"; do-nothing httptools/uvloop {rps(lean)}" if lean else "")
        + f" ({ours[0]['tool']}, 32 connections, {seconds}s)",
    ]
    # On one core, requests/s can be at most 1 / (CPU time per request): the ratio of the two
    # CPU costs is the ceiling of the throughput ratio, whatever the concurrency.
    cpu_ours = statistics.median(r["cpu_us"] for r in ours)
    cpu_bare = statistics.median(r["cpu_us"] for r in bare)
    notes.append(
        f"server CPU time per request (all threads, median of rounds): smswatch "
        f"{cpu_ours:,.0f} µs, bare aiohttp {cpu_bare:,.0f} µs"
        + (
            f", do-nothing httptools/uvloop {statistics.median(r['cpu_us'] for r in lean):,.0f} µs"
            if lean
            else ""
        )
    )
    lost = sum(missing for _, missing in checks)
    if shutil.which("wrk"):
        notes.append(
            f"2xx answers checked against the database: {sum(n for n, _ in checks):,}, "
            f"missing {lost}"
        )
    headless = kind == "serve"
    goal = 1.0 if headless else 0.7
    goal_text = f">= {goal}x bare aiohttp" + (" (aim 2.0x)" if headless else "")
    rows = [
        Row(
            "Ingest throughput, headless (`serve`, durability full)"
            if headless
            else "Ingest throughput with the monitor drawing (160x45, dashboard)",
            f"{best:,.0f} req/s",
            f"{best_bare:,.0f} req/s (bare aiohttp)",
            ratio,
            goal_text,
            ratio >= goal and lost == 0,
            notes,
        )
    ]
    if loose:
        best_loose, best_loose_bare = (
            max(r["rps"] for r in loose),
            max(r["rps"] for r in loose_bare),
        )
        loose_lost = sum(missing for _, missing in loose_checks)
        rows.append(
            Row(
                "Ingest throughput, headless, unpinned (`serve` as users run it)",
                f"{best_loose:,.0f} req/s",
                f"{best_loose_bare:,.0f} req/s (bare aiohttp, unpinned)",
                best_loose / best_loose_bare,
                goal_text,
                best_loose / best_loose_bare >= goal and loose_lost == 0,
                [
                    f"rounds (req/s): smswatch {rps(loose)}; bare aiohttp {rps(loose_bare)} "
                    f"({loose[0]['tool']}, 32 connections, {seconds}s, the load on CPU 1, "
                    "the servers on either core); server CPU time per request (median): "
                    f"smswatch {statistics.median(r['cpu_us'] for r in loose):,.0f} µs, bare "
                    f"aiohttp {statistics.median(r['cpu_us'] for r in loose_bare):,.0f} µs; "
                    f"2xx answers checked against the database: "
                    f"{sum(n for n, _ in loose_checks):,}, missing {loose_lost}",
                ],
            )
        )
    if twilio:
        rows.append(twilio_row(twilio, twilio_checks, best, cpu_ours, seconds))
    if infobip:
        rows.append(infobip_row(infobip, infobip_checks, best, seconds))
    elif headless:
        rows.append(
            Row(
                TWILIO_ROW,
                "not measured",
                "-",
                None,
                ">= 0.9x Lisoloo",
                None,
                ["needs wrk (Lua posts the pre-signed forms): apt-get install wrk"],
            )
        )
    if lean:
        best_lean = max(r["rps"] for r in lean)
        cpu_lean = statistics.median(r["cpu_us"] for r in lean)
        rows.append(
            Row(
                "What the durable work costs: `serve` against a do-nothing server on the same "
                "HTTP stack (httptools on uvloop)",
                f"{best:,.0f} req/s, {cpu_ours:,.0f} µs CPU a request",
                f"{best_lean:,.0f} req/s, {cpu_lean:,.0f} µs CPU a request",
                best / best_lean,
                "(reference)",
                None,
                [
                    f"smswatch's own work (auth, validation, the committed log, the fold, the "
                    f"checkpoints, the hub and the feed) is {cpu_ours - cpu_lean:,.0f} µs of CPU "
                    "a request"
                ],
            )
        )
    return rows


TWILIO_ROW = "Ingest of Twilio status callbacks, headless (signed forms, `serve`, durability full)"


def twilio_row(
    results: list[dict[str, Any]],
    checks: list[tuple[int, int]],
    lisoloo: float,
    lisoloo_cpu: float,
    seconds: int,
) -> Row:
    """Twilio's forms (parse, HMAC-SHA1 over the public URL, normalise) against the Lisoloo
    row of the same rounds: a gateway that posts forms must not be second-class."""
    best = max(r["rps"] for r in results)
    cpu = statistics.median(r["cpu_us"] for r in results)
    non2xx = sum(r["non2xx"] for r in results)
    lost = sum(missing for _, missing in checks)
    ratio = best / lisoloo
    return Row(
        TWILIO_ROW,
        f"{best:,.0f} req/s, {cpu:,.0f} µs CPU a request",
        f"{lisoloo:,.0f} req/s, {lisoloo_cpu:,.0f} µs CPU a request (Lisoloo JSON, same rounds)",
        ratio,
        ">= 0.9x Lisoloo",
        ratio >= 0.9 and lost == 0 and non2xx == 0,
        [
            f"rounds (req/s): {rps(results)} (wrk, 32 connections, {seconds}s; each MessageSid "
            "calls back queued, sent, delivered, interleaved; signed with the auth token over "
            "--public-url; the Lisoloo row: each event a new recipient of one of 2,000 messages)",
            f"2xx answers checked against the database: {sum(n for n, _ in checks):,}, "
            f"missing {lost}; answers other than 2xx: {non2xx}",
        ],
    )


def rps(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['rps']:,.0f}" for r in results)


@contextlib.contextmanager
def app_server() -> Iterator[str]:
    """The team's app for forwarding rows: the do-nothing httptools server, on the load's CPU."""
    port = free_port()
    proc = subprocess.Popen(
        pinned(LOAD_CPU, [PY, "-m", "benchmarks.servers", "lean", str(port)]),
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        yield f"http://127.0.0.1:{port}/hooks/sms"
    finally:
        proc.terminate()
        proc.wait(10)


def forward_drain(db: Path, limit: float = 120) -> tuple[float, int, int]:
    """After the load: (seconds until the outbox had nothing left, delivered, failed)."""
    from smswatch.store.sqlite.outbox import Outbox
    from smswatch.timefmt import now_us

    outbox = Outbox(db).open()
    start = time.monotonic()
    try:
        while True:
            [status] = outbox.status(now_us())
            if status.backlog == 0 or time.monotonic() - start > limit:
                return time.monotonic() - start, status.delivered, status.failed
            time.sleep(0.2)
    finally:
        outbox.close()


def forwarding(seconds: int, rounds: int) -> Row:
    """`serve` with --forward-to against `serve` without, same run; then how long the backlog
    the load left takes to drain."""
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    drains: list[tuple[float, int, int, int]] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp, server("serve", Path(tmp) / "off.db") as srv:
            off.append(throughput(srv, seconds, None))
        with tempfile.TemporaryDirectory() as tmp, app_server() as app:
            db = Path(tmp) / "on.db"
            with server("serve", db, extra=("--forward-to", app)) as srv:
                on.append(throughput(srv, seconds, None))
                waited, delivered, failed = forward_drain(db)
            drains.append((waited, delivered, failed, len(stored_ids(db))))
    best_off = max(r["rps"] for r in off)
    best_on = max(r["rps"] for r in on)
    ratio = best_on / best_off
    undelivered = sum(stored - delivered for _, delivered, _, stored in drains)
    return Row(
        "Ingest with forwarding on (`serve --forward-to`, to a do-nothing app)",
        f"{best_on:,.0f} req/s",
        f"{best_off:,.0f} req/s (forwarding off)",
        ratio,
        ">= 0.8x forwarding off",
        ratio >= 0.8 and undelivered == 0,
        [
            f"rounds (req/s): on {rps(on)}; off {rps(off)} (wrk, 32 connections, {seconds}s; "
            "the app on the load's CPU)",
            "after each round's load the backlog drained in "
            + ", ".join(f"{w:.1f} s ({d:,} delivered, {f} failed)" for w, d, f, _ in drains)
            + f"; stored events not delivered to the app: {undelivered}",
            "the forwarder is a child process at nice 10 on the server's CPU: under load it gets "
            "the time the webhooks leave",
        ],
    )


def slow_viewer(seconds: int, rounds: int) -> Row:
    """`serve` with a viewer that stopped reading against `serve` with none, same run."""
    alone: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    for _ in range(rounds):
        for results, viewer in ((alone, False), (watched, True)):
            with (
                tempfile.TemporaryDirectory() as tmp,
                server("serve", Path(tmp) / "v.db", viewer=viewer) as srv,
            ):
                results.append(throughput(srv, seconds, None))
    best_alone = max(r["rps"] for r in alone)
    best = max(r["rps"] for r in watched)
    ratio = best / best_alone
    watched_rps = ", ".join(f"{r['rps']:,.0f}" for r in watched)
    alone_rps = ", ".join(f"{r['rps']:,.0f}" for r in alone)
    return Row(
        "Ingest while a feed viewer has stopped reading (`serve`)",
        f"{best:,.0f} req/s",
        f"{best_alone:,.0f} req/s with no viewer",
        ratio,
        ">= 0.9x (no viewer)",
        ratio >= 0.9,
        [
            "the viewer completes the WebSocket handshake and never reads; its bounded queue "
            f"overflows and it is told to resync; rounds (req/s): {watched_rps} vs {alone_rps}"
        ],
    )


def latency(rate: int, seconds: int, rounds: int) -> Row:
    """Open-loop ack latency of `serve` against the bare server; judged on the worst round."""
    bare, ours = [], []
    for _ in range(rounds):
        with server("bare") as srv:
            bare.append(loadgen("open", srv.url, rate, seconds))
        with tempfile.TemporaryDirectory() as tmp, server("serve", Path(tmp) / "l.db") as srv:
            ours.append(loadgen("open", srv.url, rate, seconds))
    worst = max(ours, key=lambda r: r["p99_ms"])
    worst_bare = max(bare, key=lambda r: r["p99_ms"])
    ratio = worst["p99_ms"] / worst_bare["p99_ms"] if worst_bare["p99_ms"] else None
    limit = {2000: 25, 5000: 50}.get(rate)
    goal_ok = worst["p99_ms"] <= limit if limit else None
    p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in ours)
    bare_p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in bare)
    return Row(
        f"Ack latency at {rate:,} events/s (`serve`)",
        f"p50 {worst['p50_ms']:.1f} ms, p99 {worst['p99_ms']:.1f} ms",
        f"p50 {worst_bare['p50_ms']:.1f} ms, p99 {worst_bare['p99_ms']:.1f} ms",
        ratio,
        f"p99 <= {limit} ms at {rate:,}/s" if limit else "(reference)",
        goal_ok,
        [
            f"open loop, {rounds} rounds of {seconds}s, the worst p99 shown; p99 per round "
            f"(ms): smswatch {p99s}; bare {bare_p99s}; "
            f"{sum(r['ok'] for r in ours):,} answered, {sum(r['errors'] for r in ours)} errors; "
            f"max {max(r['max_ms'] for r in ours):.1f} ms"
        ],
    )


def costs(events: int) -> Row:
    """Where smswatch's CPU per request goes, stage by stage (reference for the ingest rows)."""
    cmd = pinned(SERVER_CPU, [PY, "-m", "benchmarks.costs", str(events)])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE.parent)
    c = json.loads(done.stdout)
    return Row(
        "CPU per event of smswatch's own stages, each measured alone",
        f"adapter {c['adapter_us']:.0f} µs per request (Twilio's signed forms "
        f"{c['twilio_adapter_us']:.0f} µs); store {c['store_us']:.0f} µs per event "
        f"({c['commit_path_us']:.0f} µs before the answer, {c['checkpoint_us']:.0f} µs in "
        "checkpoints)",
        "— (a breakdown of the ingest rows' CPU per request)",
        None,
        "(reference)",
        None,
        [
            f"{c['events']:,} Lisoloo events; adapter = Basic auth, JSON validation and "
            "normalisation; store before the answer = dedupe, fold into the in-memory state, the "
            f"log insert and the fsync'd commit, in batches of {c['batch']} (as 32 concurrent "
            "senders form them); checkpoints = the folded state and the timeline written once "
            "a second's worth of events (every event here is a new recipient: the worst case "
            "for coalescing); `python -m benchmarks.costs`"
        ],
    )


def event_to_screen(rate: int, seconds: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        drawn, acked = Path(tmp) / "drawn", Path(tmp) / "acked"
        with server("tui", Path(tmp) / "e.db", drawn) as srv:
            loadgen("open", srv.url, rate, seconds, acked)
            time.sleep(1.0)
        acks = {}
        for line in acked.read_text().splitlines():
            at, event_id = line.split()
            acks[event_id] = float(at)
        delays = []
        for line in drawn.read_text().splitlines():
            at, *ids = line.split()
            delays += [(float(at) - acks[i]) * 1000 for i in ids if i in acks]
    delays.sort()
    return delays[min(int(0.95 * len(delays)), len(delays) - 1)], len(delays)


def monitor_cpu(rate: int, seconds: int, rounds: int) -> Row:
    """What leaving the monitor open costs: CPU of the TUI against `serve` at a campaign's rate."""
    # bare: what this machine charges for answering at that rate at all (each request wakes an
    # idle process: at 50/s a request costs several times what it does under load).
    shares: dict[str, list[float]] = {"tui": [], "serve": [], "bare": []}
    for _ in range(rounds):
        for kind in shares:
            with tempfile.TemporaryDirectory() as tmp, server(kind, Path(tmp) / "c.db") as srv:
                cpu = srv.cpu_seconds()
                started = time.monotonic()
                loadgen("open", srv.url, rate, seconds)
                used = srv.cpu_seconds() - cpu
                shares[kind].append(100 * used / (time.monotonic() - started))
    tui, serve, bare = min(shares["tui"]), min(shares["serve"]), min(shares["bare"])
    return Row(
        f"CPU of the live monitor at {rate} events/s (dashboard drawing, 160x45)",
        f"{tui:.0f}% of a core",
        f"`serve` at the same rate: {serve:.0f}% of a core",
        tui / serve if serve else None,
        "<= 8% of a core",
        tui <= 8,
        [
            f"open loop, {rounds} rounds of {seconds}s, the lowest of each shown; "
            f"rounds (% of a core): monitor "
            + ", ".join(f"{x:.0f}" for x in shares["tui"])
            + "; serve "
            + ", ".join(f"{x:.0f}" for x in shares["serve"])
            + f"; a bare aiohttp server at the same rate: {bare:.1f}%"
        ],
    )


def screen_latency(seconds: int) -> Row:
    base, n_base = event_to_screen(50, seconds)
    p95, n = event_to_screen(1000, seconds)
    return Row(
        "Event to screen at 1,000 events/s (2xx → frame drawn)",
        f"p95 {p95:.0f} ms ({n:,} events)",
        f"p95 {base:.0f} ms at 50/s ({n_base:,} events)",
        p95 / base if base else None,
        "p95 <= 250 ms",
        p95 <= 250,
        [
            "the hub coalesces to one delta per 100 ms tick; "
            "the app records the first frame after each"
        ],
    )


def measure_scale(db: Path) -> dict[str, Any]:
    """One fresh monitor process on `db`, pinned like the servers."""
    cmd = pinned(SERVER_CPU, [PY, "-m", "benchmarks.scale", "measure", str(db)])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        # Said whole: a run that fails here would otherwise lose every row measured before it
        # and the reason with them.
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def scale(events: int) -> Row:
    OUT.mkdir(exist_ok=True)
    big = OUT / f"scale-{events // 1000}k.db"
    if not big.exists():
        subprocess.run(
            [PY, "-m", "benchmarks.scale", "generate", str(big), str(events)],
            check=True,
            cwd=HERE.parent,
        )
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.db"
        subprocess.run(
            [PY, "-m", "benchmarks.scale", "generate", str(empty), "1001"],
            check=True,
            cwd=HERE.parent,
            stderr=subprocess.DEVNULL,
        )
        base = measure_scale(empty)
    runs = [measure_scale(big) for _ in range(3)]
    paint = statistics.median(r["first_paint_s"] for r in runs)
    opened = statistics.median(r["open_message_ms"] for r in runs)
    first_open = statistics.median(r["open_message_first_ms"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    ok = paint <= 1.5 and opened <= 100 and first_open <= 100 and rss <= 250
    size_mb = big.stat().st_size / 1e6
    return Row(
        f"Scale: {events:,}-event database ({size_mb:,.0f} MB)",
        f"first paint {paint:.2f} s; open a 1,000-recipient message {opened:.0f} ms "
        f"(first open {first_open:.0f} ms); RSS {rss:.0f} MB",
        f"empty database (one 1,000-recipient message): first paint "
        f"{base['first_paint_s']:.2f} s; open {base['open_message_ms']:.0f} ms; "
        f"RSS {base['rss_mb']:.0f} MB",
        paint / base["first_paint_s"],
        "first paint <= 1.5 s, open <= 100 ms, RSS <= 250 MB",
        ok,
        [
            "median of 3 runs; open = median of 5 opens each; "
            "ratio is first paint against the empty database"
        ],
    )


CAMPAIGN_FAILURES: list[str] = []  # runs that failed and were run again, said in the row


def measure_campaign(db: Path, rate: int, seconds: int) -> dict[str, Any]:
    """One fresh monitor process on `db`, pinned like the servers (the load on the other CPU).
    A failed run is run once more, and its reason kept for the row's notes: without that one
    failure lost every row measured before it, and why."""
    cmd = pinned(
        SERVER_CPU,
        [PY, "-m", "benchmarks.campaign_scale", "measure", str(db), str(rate), str(seconds)],
    )
    for _ in range(2):
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        if done.returncode == 0:
            return json.loads(done.stdout)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        CAMPAIGN_FAILURES.append(last)
        print(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}", file=sys.stderr)
    raise RuntimeError(f"the campaign measurement failed twice: {last}")


def campaigns(recipients: int, seconds: int) -> list[Row]:
    """A running YeboLink campaign of `recipients` message ids: first paint, the campaign screen
    opening, keys answered while 1,000 events/s flow; against a 100-recipient campaign."""
    OUT.mkdir(exist_ok=True)
    big = OUT / f"campaign-{recipients // 1000}k.db"
    if not big.exists():
        subprocess.run(
            [PY, "-m", "benchmarks.campaign_scale", "generate", str(big), str(recipients)],
            check=True,
            cwd=HERE.parent,
        )
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.db"
        subprocess.run(
            [PY, "-m", "benchmarks.campaign_scale", "generate", str(small), "100"],
            check=True,
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
        )
        base = measure_campaign(small, 1000, seconds)
    runs = [measure_campaign(big, 1000, seconds) for _ in range(3)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    paint, opened, key95 = med("first_paint_s"), med("open_campaign_ms"), med("key_p95_ms")
    worst_open = max(r["open_campaign_max_ms"] for r in runs)
    worst_key = max(r["key_max_ms"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    note = (
        f"median of 3 monitor processes; {recipients:,} messages of one recipient each, 5% "
        "still in flight; opens are the median of 5 each"
    )
    if CAMPAIGN_FAILURES:
        note += f"; runs that failed and were run again: {'; '.join(CAMPAIGN_FAILURES)}"
    return [
        Row(
            f"Campaign of {recipients:,} recipients: first paint",
            f"{paint:.2f} s (campaigns panel filled at {med('panel_s'):.1f} s; RSS {rss:.0f} MB)",
            f"100 recipients: {base['first_paint_s']:.2f} s "
            f"(panel at {base['panel_s']:.1f} s; RSS {base['rss_mb']:.0f} MB)",
            paint / base["first_paint_s"],
            "<= 1.5 s",
            paint <= 1.5,
            [note + "; the panel is read after the first frame, in the background"],
        ),
        Row(
            f"Campaign of {recipients:,} recipients: campaign screen opening",
            f"{opened:.0f} ms (worst of 15: {worst_open:.0f} ms)",
            f"100 recipients: {base['open_campaign_ms']:.0f} ms",
            opened / base["open_campaign_ms"],
            "<= 200 ms",
            opened <= 200,
            [
                "enter on the campaign's row to the first frame with every figure; the running "
                "campaign is kept in memory from the panel's first read on (book.py)"
            ],
        ),
        Row(
            f"Campaign of {recipients:,} recipients: a key answered while 1,000 events/s flow",
            f"p95 {key95:.0f} ms (worst {worst_key:.0f} ms)",
            f"100 recipients: p95 {base['key_p95_ms']:.0f} ms",
            key95 / base["key_p95_ms"] if base["key_p95_ms"] else None,
            "<= 100 ms",
            key95 <= 100 and worst_key <= 100,
            [
                "cursor down/up in the in-flight table every 250 ms while the open-loop load "
                "generator posts 1,000 events/s from the other CPU; key to the next frame drawn"
            ],
        ),
    ]


def render(rows: list[Row], command: str) -> str:
    host = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d')} ({host}). The server under",
        "test runs on CPU 0 and the load on CPU 1. Each figure is compared with a baseline",
        "measured in the same run: absolute numbers drift on shared machines, ratios much less.",
        "",
        "| benchmark | measured | baseline (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r.ok is None else ("yes" if r.ok else "**no**")
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(f"| {r.name} | {r.measured} | {r.baseline} | {ratio} | {r.goal} | {met} |")
    lines.append("")
    for r in rows:
        if r.notes:
            lines.append(f"- **{r.name}**: " + "; ".join(r.notes))
    notes = HERE / "PROFILE.md"  # hand-written: kept across runs
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


BENCHMARKS = [
    "headless",
    "tui",
    "costs",
    "viewer",
    "latency",
    "screen",
    "idle",
    "scale",
    "campaigns",
    "postgres",
    "forward",
    "telnyx",  # also in `latency`: this one row alone
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=BENCHMARKS,
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--out", type=Path, default=None, help="write RESULTS.md here (default: print only)"
    )
    args = parser.parse_args()
    wanted = set(args.only or BENCHMARKS)
    rows: list[Row] = []
    if "headless" in wanted:
        rows += ingest("serve", args.seconds, args.rounds)
    if "tui" in wanted:
        rows += ingest("tui", args.seconds, args.rounds)
    if "costs" in wanted:
        rows.append(costs(30_000))
    if "viewer" in wanted:
        rows.append(slow_viewer(args.seconds, args.rounds + 1))
    if "latency" in wanted:
        rows.append(latency(500, args.seconds, args.rounds))
        rows.append(latency(2000, args.seconds, args.rounds + 1))
        rows.append(latency(5000, args.seconds, args.rounds + 1))
    if "latency" in wanted or "telnyx" in wanted:
        rows.append(telnyx_latency(2000, args.seconds, args.rounds + 1))
    if "screen" in wanted:
        rows.append(screen_latency(args.seconds))
    if "idle" in wanted:
        rows.append(monitor_cpu(50, args.seconds, args.rounds))
    if "scale" in wanted:
        rows.append(scale(args.events))
    if "campaigns" in wanted:
        rows += campaigns(100_000, args.seconds)
    if "forward" in wanted:
        rows.append(forwarding(args.seconds, args.rounds))
    if "postgres" in wanted:
        from benchmarks.postgres import postgres_rows

        rows += postgres_rows(args.seconds, args.rounds)
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:])
    text = render(
        rows,
        "make bench"
        if not sys.argv[1:] or sys.argv[1:] == ["--out", str(args.out)]
        else command.strip(),
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
