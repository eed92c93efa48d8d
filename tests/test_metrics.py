"""Prometheus metrics of `serve`: a real engine, webhooks over real HTTP, scrapes over real HTTP."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import smswatch
from smswatch import __version__
from smswatch.config import Credentials
from smswatch.core.records import Rejection
from smswatch.live.engine import Engine
from smswatch.live.metrics import LATENCY_BUCKETS, Metrics
from tests.conftest import BASIC, SECRET, Client, basic_header, fill_until_503, running
from tests.helpers import Server, free_port, run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def sent(event_id: str, phone: str = "+243998857000") -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "sms.sent",
            "timestamp": "2026-05-27T10:15:03Z",
            "message_id": "m-metrics",
            "data": {"recipient_phone": phone, "sent_at": "2026-05-27T10:15:03Z"},
        }
    )


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return parse(await resp.text())


async def test_metrics_count_what_the_listener_and_store_did(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    engine = make_engine(credentials=Credentials(BASIC, SECRET))
    metrics = Metrics(engine)
    async with running(engine):
        url = metrics.start("127.0.0.1", 0)
        try:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url)
            client = Client(session, engine.listener.base_url)
            for i in range(3):
                assert (await client.lisoloo(sent(f"ev-{i}", f"+24381000000{i}"), BASIC))[0] == 200
            status, answer = await client.lisoloo(sent("ev-0"), BASIC)  # a retry
            assert (status, answer["status"]) == (200, "duplicate")
            assert (await client.lisoloo(sent("ev-x"), ("lisoloo-hook", "wrong")))[0] == 401
            assert (await client.lisoloo("{not json", BASIC))[0] == 400
            assert (await client.lisoloo('{"event_type": 5, "data": {}}', BASIC))[0] == 400
            auth = {"Authorization": basic_header(*BASIC)}
            assert (await client.post("/webhooks", sent("ev-auto"), auth))[0] == 200
            assert (await client.yebolink("{}", "not-the-secret"))[0] == 401

            # Messages and recipients reach the hub once a tick (50 ms here).
            deadline = time.monotonic() + 5
            while True:
                samples = await scrape(session, url)
                if value(samples, "smswatch_recipients", state="sent") == 4:
                    break
                assert time.monotonic() < deadline, samples
                await asyncio.sleep(0.05)

            assert value(samples, "smswatch_requests_total", route="/webhooks/lisoloo") == 7
            assert value(samples, "smswatch_requests_total", route="/webhooks/yebolink") == 1
            assert value(samples, "smswatch_requests_total", route="/webhooks") == 1
            assert value(samples, "smswatch_events_stored_total") == 4
            assert value(samples, "smswatch_duplicates_total") == 1
            rejected = {
                (dict(labels)["reason"], dict(labels)["status"]): n
                for (name, labels), n in samples.items()
                if name == "smswatch_rejected_total"
            }
            assert rejected == {
                ("unauthorized", "401"): 1,
                ("malformed_json", "400"): 1,
                ("invalid_envelope", "400"): 1,
                ("bad_signature", "401"): 1,
            }
            # Every request that reached the writer was timed: 4 stored and 1 duplicate.
            assert value(samples, "smswatch_commit_latency_seconds_count") == 5
            assert 0 < value(samples, "smswatch_commit_latency_seconds_sum") < 5
            buckets = [
                value(samples, "smswatch_commit_latency_seconds_bucket", le=str(b))
                for b in (*LATENCY_BUCKETS, "+Inf")
            ]
            assert buckets == sorted(buckets) and buckets[-1] == 5
            assert value(samples, "smswatch_writer_queue_depth") == 0
            assert value(samples, "smswatch_store_up") == 1
            assert not any(name == "smswatch_store_error_info" for name, _ in samples)
            assert value(samples, "smswatch_store_events") == 4
            assert value(samples, "smswatch_messages") == 1
            assert value(samples, "smswatch_messages_in_flight") == 1
            assert value(samples, "smswatch_feed_viewers") == 0
            assert value(samples, "smswatch_last_request_timestamp_seconds") > time.time() - 60
            assert ("smswatch_build_info", frozenset({("version", __version__)})) in samples

            # The webhook port serves webhooks and /healthz, never the metrics.
            async with session.get(engine.listener.base_url + "/metrics") as resp:
                assert resp.status == 404
        finally:
            metrics.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(session, url)


def rejection_reasons() -> dict[str, int]:
    """Every rejection code the source can raise, with its status, read from the source itself
    (`Rejected(status, "code", ...)` and `malformed(..., "code")`), so a new code is covered."""
    found: dict[str, int] = {}
    for path in Path(smswatch.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "malformed":
                found[node.args.defaults[0].value] = 400  # type: ignore[attr-defined]
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            if node.func.id == "Rejected" and len(args) >= 2 and isinstance(args[1], str):
                found[args[1]] = args[0]
            elif node.func.id == "malformed" and len(args) >= 2 and isinstance(args[1], str):
                found[args[1]] = 400
    return found


async def test_every_rejection_reason_has_its_status(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    reasons = rejection_reasons()
    # The scan works: it finds codes raised in the listener, the providers and the detector.
    assert {"invalid_envelope", "unknown_envelope", "request_timeout", "bad_signature"} <= set(
        reasons
    ), reasons
    assert all(isinstance(status, int) and 400 <= status < 500 for status in reasons.values())
    engine = make_engine()
    metrics = Metrics(engine)
    async with running(engine):
        url = metrics.start("127.0.0.1", 0)
        try:
            for code, status in reasons.items():
                engine.hub.rejected_request(
                    Rejection(received_at=1, status=status, code=code, reason="test")
                )
            samples = await scrape(session, url)
        finally:
            metrics.stop()
    rejected = {
        dict(labels)["reason"]: dict(labels)["status"]
        for (name, labels), _ in samples.items()
        if name == "smswatch_rejected_total"
    }
    assert rejected == {code: str(status) for code, status in reasons.items()}


async def test_a_failing_store_reads_down_with_its_reason(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    engine = make_engine(max_db_bytes=200 * 1024)
    metrics = Metrics(engine)
    async with running(engine):
        url = metrics.start("127.0.0.1", 0)
        try:
            acked, refused = await fill_until_503(
                Client(session, engine.listener.base_url), "e", 4000
            )
            samples = await scrape(session, url)
            error = engine.hub.store_error
        finally:
            metrics.stop()
    assert refused and error
    assert value(samples, "smswatch_store_up") == 0
    assert value(samples, "smswatch_store_error_info", error=error) == 1
    assert value(samples, "smswatch_events_stored_total") == len(acked)
    # 503s are not rejections: the gateway retries them.
    assert not any(name == "smswatch_rejected_total" for name, _ in samples)


async def test_two_engines_in_one_process_have_their_own_metrics(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    first, second = make_engine(), make_engine(db_path=tmp_path / "second.db")
    metrics = [Metrics(first), Metrics(second)]
    async with running(first), running(second):
        urls = [m.start() for m in metrics]
        try:
            assert (await Client(session, first.listener.base_url).lisoloo(sent("a")))[0] == 200
            counts = [value(await scrape(session, u), "smswatch_events_stored_total") for u in urls]
        finally:
            for m in metrics:
                m.stop()
    assert counts == [1, 0]


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_prints_the_metrics_url_and_serves_it(tmp_path: Path) -> None:
    server = Server(tmp_path / "m.db", free_port(), "--metrics-port", "0", "--no-feed").start()
    try:
        deadline = time.monotonic() + 10
        while not (
            found := re.search(r"Prometheus metrics.*?(http://\S+/metrics)", _log(server), re.S)
        ):
            assert time.monotonic() < deadline, _log(server)
            time.sleep(0.05)
        url = found.group(1)
        assert not url.startswith(server.url)
        body = urllib.request.Request(
            server.url + "/webhooks/lisoloo",
            data=sent("cli-1").encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(body, timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url, timeout=5) as resp:
            samples = parse(resp.read().decode())
        assert value(samples, "smswatch_events_stored_total") == 1
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/metrics", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()


def _log(server: Server) -> str:
    return server.log.read_text() if server.log.exists() else ""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_serve_refuses_metrics_on_the_webhook_port(tmp_path: Path, how: str) -> None:
    port = str(free_port())
    args = ["serve", "--db", str(tmp_path / "r.db"), "--port", port]
    env = None
    if how == "flag":
        args += ["--metrics-port", port]
    elif how == "env":
        env = {**os.environ, "SMSWATCH_METRICS_PORT": port}
    else:
        config = tmp_path / "config.toml"
        config.write_text(f"metrics_port = {port}\n")
        args += ["--config", str(config)]
    result = run(*args, check=False, timeout=30, env=env)
    assert result.returncode == 2
    assert "--metrics-port must differ from --port" in result.stderr
    assert not (tmp_path / "r.db").exists()


@pytest.mark.slow
def test_metrics_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run(
            "serve",
            *("--db", str(tmp_path / "u.db"), "--port", "0", "--no-feed", "--metrics-port", port),
            check=False,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen for metrics on 127.0.0.1:{port}: the port is in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
