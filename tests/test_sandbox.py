"""The sandbox gateway (issue 14): `simulate --drop-rate`, and the gateways' status APIs that
the sandbox answers from the simulator's own truth, over real HTTP on 127.0.0.1:0, with a clock
moved by hand where a minute matters."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import Plan, SimConfig, Truth, plan_campaign
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.engine import Engine
from smswatch.timefmt import iso, to_us
from tests.helpers import SMSWATCH, run

T0 = 1_795_000_000_000_000  # a fixed start: a seed then plans the same ids and times
LISOLOO_KEY = "sk_test_0123456789abcdefghijABCDEFGHIJ"
YEBOLINK_KEY = "ybk_sandbox_0123456789"
LISOLOO = {"app-key": LISOLOO_KEY}
YEBOLINK = {"X-API-Key": YEBOLINK_KEY}
KEYS = SandboxKeys(LISOLOO_KEY, YEBOLINK_KEY)
RANK = ["queued", "processing", "sent", "delivered", "failed"]
STATUS = "/api/v1/lisoloo/sms-api/status/"
MESSAGES = "/api/v1/messages"
LISOLOO_FIELDS = {
    "message_id",
    "status",
    "total_recipients",
    "delivered",
    "failed",
    "pending",
    "created_at",
    "updated_at",
}


def at_us(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


def plan(provider: str, messages: int = 3, recipients: int = 30, **extra: Any) -> Plan:
    config = SimConfig(
        provider=provider, messages=messages, recipients=recipients, seed=7, fail_rate=0.3, **extra
    )
    return plan_campaign(config, t0_us=T0)


class Api:
    """Calls a running sandbox over HTTP."""

    def __init__(self, sandbox: SandboxAPI, session: aiohttp.ClientSession) -> None:
        self.sandbox = sandbox
        self.session = session

    async def get(
        self, path: str, headers: dict[str, str] | None = None, **params: Any
    ) -> tuple[int, dict[str, str], Any]:
        url = self.sandbox.url + path
        async with self.session.get(url, headers=headers or {}, params=params) as resp:
            return resp.status, dict(resp.headers), await resp.json(content_type=None)

    async def lisoloo(self, message_id: str) -> tuple[int, Any]:
        status, _, body = await self.get(STATUS + message_id, LISOLOO)
        return status, body

    async def yebolink(self, message_id: str) -> tuple[int, Any]:
        status, _, body = await self.get(f"{MESSAGES}/{message_id}", YEBOLINK)
        return status, body

    async def yebolink_list(self, **params: Any) -> tuple[int, Any]:
        status, _, body = await self.get(MESSAGES, YEBOLINK, **params)
        return status, body


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@contextlib.asynccontextmanager
async def serving(sandbox: SandboxAPI) -> AsyncIterator[Api]:
    await sandbox.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(sandbox, session)
    finally:
        await sandbox.stop()


def by_message(truth: list[Truth]) -> dict[str, list[Truth]]:
    out: dict[str, list[Truth]] = collections.defaultdict(list)
    for t in truth:
        out[t.message_id].append(t)
    return out


def settled(truth: list[Truth]) -> int:
    return max(at_us(t.final_at) for t in truth if t.final_at)


# --- --drop-rate in the plan ------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["lisoloo", "yebolink"])
def test_drop_rate_drops_final_webhooks_and_the_truth_says_which(provider: str) -> None:
    whole = plan(provider, messages=4, recipients=100)
    some = plan(provider, messages=4, recipients=100, drop_rate=0.05)
    more = plan(provider, messages=4, recipients=100, drop_rate=0.3)

    # Dropping changes nothing else: the same recipients end the same way, every event that is
    # sent arrives when it would have, and the events not sent are exactly the dropped ones.
    strip = ("dropped", "webhook_state")
    assert [{k: v for k, v in t.record().items() if k not in strip} for t in whole.truth] == [
        {k: v for k, v in t.record().items() if k not in strip} for t in more.truth
    ]
    assert not any(t.dropped for t in whole.truth) and whole.dropped_events == 0
    sent_whole = {(d.due, d.body) for d in whole.deliveries}
    assert {(d.due, d.body) for d in more.deliveries} <= sent_whole
    assert more.events + more.dropped_events == whole.events

    # A higher rate drops a superset; 5% of 400 is roughly 20.
    dropped_some = {(t.message_id, t.recipient) for t in some.truth if t.dropped}
    dropped_more = {(t.message_id, t.recipient) for t in more.truth if t.dropped}
    assert dropped_some < dropped_more
    assert 5 <= len(dropped_some) <= 40 and 80 <= len(dropped_more) <= 160

    # Each dropped recipient lost its final webhook (and maybe the one before it), never its
    # first; the truth's webhook_state is the furthest one sent.
    finals = {"delivered", "failed"}
    sent_events: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for d in more.deliveries:
        body = json.loads(d.body)
        if provider == "lisoloo":
            if body["event_type"] == "sms.queued":
                continue
            key = (body["message_id"], body["data"]["recipient_phone"])
            kind = body["event_type"].removeprefix("sms.")
        else:
            key = (body["data"]["message_id"], body["data"]["recipient"])
            kind = body["event"].removeprefix("message.")
        sent_events[key].add(kind)
    also_previous = 0
    for t, known in zip(more.truth, more.ledger, strict=True):
        assert known.truth is t
        kinds = sent_events[(t.message_id, t.recipient)]
        furthest = max(kinds, key=RANK.index)
        assert t.record()["webhook_state"] == furthest
        if t.dropped:
            assert not finals & kinds, t
            # The gateway's own steps, creation included for YeboLink: all but the dropped.
            also_previous += len(kinds) < len(known.steps) - 1
        else:
            assert t.state == furthest
        assert t.final_at == iso(known.steps[-1][0])
    assert also_previous > 0  # some lost the intermediate webhook too


# --- Lisoloo status --------------------------------------------------------------------------


async def test_lisoloo_status_has_the_documented_shape_and_follows_the_timeline(
    clock: ManualClock,
) -> None:
    p = plan("lisoloo", drop_rate=0.2)
    messages = by_message(p.truth)
    created = {r.truth.message_id: r.created_us for r in p.ledger}
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        message_id, recipients = next(iter(messages.items()))

        # Not sent yet at the clock's now: the gateway does not know it.
        clock.us = created[message_id] - 1000
        assert await api.lisoloo(message_id) == (404, {"detail": "Message not found"})

        # Sent, nobody picked up yet: all pending.
        clock.us = created[message_id]
        status, body = await api.lisoloo(message_id)
        assert status == 200 and body["status_code"] == 200
        assert set(body["data"]) == LISOLOO_FIELDS
        assert body["data"] == {
            "message_id": message_id,
            "status": "pending",
            "total_recipients": len(recipients),
            "delivered": 0,
            "failed": 0,
            "pending": len(recipients),
            "created_at": iso(created[message_id]),
            "updated_at": iso(created[message_id]),
        }

        # At every recipient's final time, the counts are what the truth says has ended by then,
        # dropped webhooks or not.
        for instant in sorted({at_us(t.final_at) for t in recipients}):
            clock.us = instant
            status, body = await api.lisoloo(message_id)
            data = body["data"]
            done = [t for t in recipients if at_us(t.final_at) <= instant]
            assert data["delivered"] == sum(t.state == "delivered" for t in done)
            assert data["failed"] == sum(t.state == "failed" for t in done)
            assert data["pending"] == len(recipients) - len(done)
            assert at_us(data["updated_at"]) == instant
            if data["pending"]:
                assert data["status"] in ("pending", "processing", "sent")
            # A moment before, the recipient that ends now was still pending.
            clock.us = instant - 1000
            _, before = await api.lisoloo(message_id)
            assert before["data"]["pending"] == data["pending"] + sum(
                at_us(t.final_at) == instant for t in recipients
            )

        # Once everyone has settled, every message's counts are the truth's.
        clock.us = settled(p.truth)
        for message_id, recipients in messages.items():
            _, body = await api.lisoloo(message_id)
            states = collections.Counter(t.state for t in recipients)
            assert body["data"]["delivered"] == states["delivered"]
            assert body["data"]["failed"] == states["failed"]
            assert body["data"]["pending"] == 0
            assert body["data"]["status"] == ("delivered" if states["delivered"] else "failed")


# --- YeboLink messages -----------------------------------------------------------------------


async def test_yebolink_message_follows_the_timeline_with_the_webhooks_fields(
    clock: ManualClock,
) -> None:
    p = plan("yebolink", messages=2, recipients=20, drop_rate=0.3)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        failed = next(r for r in p.ledger if r.truth.state == "failed")
        delivered = next(r for r in p.ledger if r.truth.state == "delivered" and r.truth.dropped)
        for record in (failed, delivered):
            t = record.truth
            (sent_us, _), (final_us, final) = record.steps[1:]
            clock.us = record.created_us - 1000
            assert await api.yebolink(t.message_id) == (
                404,
                {"success": False, "error": "Message not found"},
            )

            clock.us = record.created_us
            status, body = await api.yebolink(t.message_id)
            assert status == 200 and body["success"] is True
            queued = body["data"]
            assert queued == {
                "message_id": t.message_id,
                "channel": "sms",
                "recipient": t.recipient,
                "status": "queued",
                "credits_used": 1,
                "metadata": record.fields["metadata"],
                "created_at": iso(record.created_us),
                "updated_at": iso(record.created_us),
            }
            assert queued["metadata"]["campaign"] == t.campaign

            clock.us = final_us - 1000  # sent, not yet final
            _, body = await api.yebolink(t.message_id)
            assert body["data"]["status"] == "sent"
            assert body["data"]["provider_message_id"].startswith("SM")
            assert body["data"]["sent_at"] == iso(sent_us)
            assert not {"delivered_at", "failed_at", "error_code"} & set(body["data"])

            clock.us = final_us
            _, body = await api.yebolink(t.message_id)
            data = body["data"]
            assert (data["status"], data["updated_at"]) == (t.state, t.final_at)
            if final == "failed":
                assert (data["error_code"], data["failed_at"]) == (t.error_code, t.final_at)
                assert data["error_message"]
                assert "delivered_at" not in data
            else:
                assert data["delivered_at"] == t.final_at
                assert "error_code" not in data


async def test_yebolink_list_filters_and_pages_as_of_now(clock: ManualClock) -> None:
    p = plan("yebolink", messages=3, recipients=50, drop_rate=0.2)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        middle = sorted(at_us(t.final_at) for t in p.truth)[len(p.truth) // 2]
        clock.us = middle
        created = {r.truth.message_id: r.created_us for r in p.ledger}
        ended = {t.message_id: t.state for t in p.truth if at_us(t.final_at) <= middle}

        # Paging walks every message once, newest first.
        seen: list[dict[str, Any]] = []
        for page in (1, 2, 3, 4):
            status, body = await api.yebolink_list(page=page, limit=40)
            assert status == 200 and body["success"] is True
            assert (body["data"]["page"], body["data"]["limit"]) == (page, 40)
            assert body["data"]["total"] == len(p.truth)
            seen.extend(body["data"]["messages"])
        assert len(seen) == len(p.truth) == len({m["message_id"] for m in seen})
        order = [at_us(m["created_at"]) for m in seen]
        assert order == sorted(order, reverse=True)
        _, body = await api.yebolink_list()
        assert body["data"]["limit"] == 50 and len(body["data"]["messages"]) == 50

        # The status filter is on the status as of now.
        for state in ("delivered", "failed"):
            want = {m for m, s in ended.items() if s == state}
            status, body = await api.yebolink_list(status=state, limit=100)
            assert status == 200
            assert {m["message_id"] for m in body["data"]["messages"]} == want
            assert body["data"]["total"] == len(want)
        _, body = await api.yebolink_list(status="queued", limit=100)
        _, sent = await api.yebolink_list(status="sent", limit=100)
        assert body["data"]["total"] + sent["data"]["total"] == len(p.truth) - len(ended)

        # startDate / endDate bound created_at, both inclusive.
        first, last = sorted(created.values())[10], sorted(created.values())[40]
        _, body = await api.yebolink_list(startDate=iso(first), endDate=iso(last), limit=100)
        assert body["data"]["total"] == sum(first <= c <= last for c in created.values())
        _, body = await api.yebolink_list(channel="sms", limit=1)
        assert body["data"]["total"] == len(p.truth)
        _, body = await api.yebolink_list(channel="email")
        assert body["data"]["total"] == 0

        for bad in (
            {"limit": "101"},
            {"limit": "0"},
            {"limit": "ten"},
            {"page": "0"},
            {"status": "read"},
            {"channel": "fax"},
            {"startDate": "yesterday"},
        ):
            status, body = await api.yebolink_list(**bad)
            assert status == 400, bad
            assert body["success"] is False and body["error"]


async def test_new_sends_become_known_while_it_runs(clock: ManualClock) -> None:
    first, second = plan("lisoloo", messages=1), plan("yebolink", messages=1)
    sandbox = SandboxAPI(first.ledger, clock=clock, keys=KEYS)
    async with serving(sandbox) as api:
        clock.us = settled(first.truth + second.truth)
        assert (await api.yebolink(second.truth[0].message_id))[0] == 404
        sandbox.add_plan(second)  # as the demo does when it launches a send
        assert (await api.yebolink(second.truth[0].message_id))[0] == 200
        assert (await api.lisoloo(first.truth[0].message_id))[0] == 200
        assert sandbox.settled_us == settled(first.truth + second.truth)


# --- auth, 404s, health ------------------------------------------------------------------------


async def test_auth_failures_and_unknown_ids_answer_in_each_gateways_shape(
    clock: ManualClock,
) -> None:
    p = plan("mixed", messages=2, recipients=5)
    clock.us = settled(p.truth)
    lisoloo_id = next(t.message_id for t in p.truth if t.provider == "lisoloo")
    yebolink_id = next(t.message_id for t in p.truth if t.provider == "yebolink")
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        for headers in ({}, {"app-key": ""}, {"app-key": "sk_test_wrong"}, YEBOLINK):
            status, _, body = await api.get(STATUS + lisoloo_id, headers)
            assert (status, body) == (401, {"detail": "Missing or invalid app-key"})
        for headers in ({}, {"X-API-Key": "ybk_wrong"}, LISOLOO):
            for path in (f"{MESSAGES}/{yebolink_id}", MESSAGES):
                status, _, body = await api.get(path, headers)
                assert status == 401
                assert body == {"success": False, "error": "Invalid or missing API key"}

        assert await api.lisoloo("507f1f77bcf86cd799439011") == (
            404,
            {"detail": "Message not found"},
        )
        assert await api.lisoloo(yebolink_id) == (404, {"detail": "Message not found"})
        assert (await api.yebolink(lisoloo_id))[0] == 404
        status, _, body = await api.get("/api/v1/lisoloo/sms-api/balance", LISOLOO)
        assert (status, body) == (404, {"detail": "Not Found"})
        async with api.session.post(api.sandbox.url + STATUS + lisoloo_id, headers=LISOLOO) as r:
            assert (r.status, await r.json()) == (405, {"detail": "Method Not Allowed"})

        # Health needs no key and is never limited.
        for _ in range(3):
            status, _, body = await api.get("/api/v1/lisoloo/sms-api/health")
            assert (status, body) == (200, {"status": "ok"})

        stats = api.sandbox.stats()
        assert stats["lisoloo"]["unauthorized"] == 4
        assert stats["yebolink"]["unauthorized"] == 6
        # Refused keys have no bucket; the good key's calls are counted, 404s included.
        assert stats["lisoloo"]["calls"] == stats["lisoloo"]["not_found"] == 2
        assert stats["yebolink"]["calls"] == stats["yebolink"]["not_found"] == 1
        assert stats["health"] == 3


async def test_with_no_key_configured_any_key_is_its_own_bucket(clock: ManualClock) -> None:
    p = plan("lisoloo", messages=1, recipients=3)
    limits = SandboxLimits(lisoloo_per_window=2)
    async with serving(SandboxAPI(p.ledger, clock=clock, limits=limits)) as api:
        message_id = p.truth[0].message_id
        for key in ("sk_test_one", "sk_test_two"):
            for expected in (200, 200, 429):
                status, _, _ = await api.get(STATUS + message_id, {"app-key": key})
                assert status == expected
        assert set(api.sandbox.stats()["lisoloo"]["keys"]) == {"sk_test_one", "sk_test_two"}
        status, _, _ = await api.get(STATUS + message_id, {})
        assert status == 401


# --- rate limits -------------------------------------------------------------------------------


async def test_lisoloo_allows_120_calls_per_rolling_minute_then_429_with_retry_after(
    clock: ManualClock,
) -> None:
    p = plan("lisoloo", messages=1, recipients=3)
    message_id = p.truth[0].message_id
    clock.us = settled(p.truth)
    start = clock.us
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        # 60 calls now, 60 more 30 s later: the limit is reached, not passed.
        for _ in range(60):
            assert (await api.lisoloo(message_id))[0] == 200
        clock.advance(30)
        for _ in range(60):
            assert (await api.lisoloo(message_id))[0] == 200

        # The 121st within the minute: 429, the envelope of §1.5, and how long to wait: until
        # the first 60 leave the window.
        clock.advance(1)
        status, headers, body = await api.get(STATUS + message_id, LISOLOO)
        assert status == 429
        assert headers["Retry-After"] == "29"
        assert body["success"] is False and body["status_code"] == 429
        assert body["error_code"] == "1301" and body["retryable"] is True
        assert body["retry_after"] == 29 and body["message"]
        assert {"details", "timestamp", "request_id"} <= set(body)

        # Still refused just before the window rolls past the first 60; a refusal does not
        # use up the limit, so once they leave, exactly 60 more are allowed.
        clock.us = start + 60_000_000 - 1000
        status, headers, _ = await api.get(STATUS + message_id, LISOLOO)
        assert (status, headers["Retry-After"]) == (429, "1")
        clock.us = start + 60_000_000
        for _ in range(60):
            assert (await api.lisoloo(message_id))[0] == 200
        status, headers, _ = await api.get(STATUS + message_id, LISOLOO)
        assert (status, headers["Retry-After"]) == (429, "30")

        stats = api.sandbox.stats()["lisoloo"]
        assert (stats["calls"], stats["served"], stats["limited"]) == (183, 180, 3)
        assert stats["max_served_in_window"] == 120
        # What a test compares with the limit counts refused calls too, so a client that
        # went over shows it: 60 + 1 + 1 + 60 + 1 made in the minute after start + 30 s.
        assert stats["max_in_window"] == 123
        [key] = stats["keys"].values()
        assert key["calls"] == 183
        assert sum(key["per_minute"].values()) == 183


async def test_yebolink_limit_is_configurable_and_shared_by_both_endpoints(
    clock: ManualClock,
) -> None:
    p = plan("yebolink", messages=1, recipients=3)
    clock.us = settled(p.truth)
    message_id = p.truth[0].message_id
    limits = SandboxLimits(yebolink_per_window=10)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS, limits=limits)) as api:
        for i in range(10):
            path = f"{MESSAGES}/{message_id}" if i % 2 else MESSAGES
            status, headers, _ = await api.get(path, YEBOLINK)
            assert status == 200
            assert headers["RateLimit-Limit"] == "10"
            assert headers["RateLimit-Remaining"] == str(9 - i)
        status, headers, body = await api.get(MESSAGES, YEBOLINK)
        assert status == 429
        assert body == {"success": False, "error": "Too many requests, please try again later."}
        assert headers["Retry-After"] == "60" and headers["RateLimit-Remaining"] == "0"
        clock.advance(60)
        assert (await api.yebolink(message_id))[0] == 200
        assert api.sandbox.stats()["yebolink"]["max_in_window"] == 11


async def test_the_default_yebolink_limit_is_60_a_minute(clock: ManualClock) -> None:
    p = plan("yebolink", messages=1, recipients=1)
    clock.us = settled(p.truth)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        statuses = [(await api.yebolink(p.truth[0].message_id))[0] for _ in range(61)]
        assert statuses == [200] * 60 + [429]


async def test_a_429_burst_after_the_first_calls(clock: ManualClock) -> None:
    p = plan("mixed", messages=2, recipients=3)
    clock.us = settled(p.truth)
    lisoloo_id = next(t.message_id for t in p.truth if t.provider == "lisoloo")
    yebolink_id = next(t.message_id for t in p.truth if t.provider == "yebolink")
    limits = SandboxLimits(burst_429=5, burst_after=3, burst_retry_after=2)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS, limits=limits)) as api:
        answers = []
        for _ in range(10):
            status, headers, body = await api.get(STATUS + lisoloo_id, LISOLOO)
            answers.append(status)
            if status == 429:
                assert headers["Retry-After"] == "2"
                assert (body["error_code"], body["retry_after"]) == ("1301", 2)
        assert answers == [200] * 3 + [429] * 5 + [200] * 2
        # Each gateway's API has its own burst.
        answers = [(await api.yebolink(yebolink_id))[0] for _ in range(9)]
        assert answers == [200] * 3 + [429] * 5 + [200]
        stats = api.sandbox.stats()
        assert (stats["lisoloo"]["burst"], stats["yebolink"]["burst"]) == (5, 5)
        assert stats["lisoloo"]["limited"] == 0


async def test_stats_over_http(clock: ManualClock) -> None:
    p = plan("lisoloo", messages=1, recipients=2)
    clock.us = settled(p.truth)
    async with serving(SandboxAPI(p.ledger, clock=clock, keys=KEYS)) as api:
        await api.lisoloo(p.truth[0].message_id)
        status, _, body = await api.get("/_sandbox/stats")
        assert status == 200
        assert body == json.loads(json.dumps(api.sandbox.stats()))
        assert body["lisoloo"]["limit"] == 120 and body["yebolink"]["limit"] == 60
        assert body["lisoloo"]["calls"] == 1
        # Keys are named, not given away.
        assert LISOLOO_KEY not in json.dumps(body)
        assert set(body["lisoloo"]["keys"]) == {"sk_test_…GHIJ"}


# --- the command line against a real engine -----------------------------------------------------


@pytest.mark.slow
async def test_simulate_drop_rate_against_a_real_engine_and_its_sandbox_api(
    engine: Engine, reader: Any, tmp_path: Path
) -> None:
    truth_file, acked_file = tmp_path / "truth.jsonl", tmp_path / "acked.jsonl"
    proc = await asyncio.create_subprocess_exec(
        *SMSWATCH,
        "simulate",
        "--url",
        engine.listener.base_url,
        "--provider",
        "mixed",
        "--messages",
        "6",
        "--recipients",
        "40",
        "--fail-rate",
        "0.2",
        "--drop-rate",
        "0.2",
        "--seed",
        "11",
        "--speed",
        "20",
        "--truth",
        str(truth_file),
        "--acked",
        str(acked_file),
        "--api-port",
        "0",
        "--api-linger",
        "120",
        "--lisoloo-app-key",
        LISOLOO_KEY,
        "--yebolink-api-key",
        YEBOLINK_KEY,
        "-q",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("sandbox API: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        err = []
        while not any(x.startswith("sandbox API: up for") for x in err):
            got = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            assert got, "".join(err)
            err.append(got)
        assert any("0 rejected, 0 given up" in x for x in err), err
        assert any("webhooks dropped by the gateway" in x for x in err), err

        truth = [json.loads(x) for x in truth_file.read_text().splitlines()]
        assert len(truth) == 240
        dropped = [t for t in truth if t["dropped"]]
        assert 20 <= len(dropped) <= 80

        # No acknowledged webhook is a dropped recipient's final one: they were never sent.
        acked = {json.loads(x)["label"] for x in acked_file.read_text().splitlines()}
        for t in dropped:
            kind = "sms" if t["provider"] == "lisoloo" else "message"
            assert f"{kind}.{t['state']} {t['recipient']}" not in acked

        # What the engine stored: the truth, minus what was dropped.
        r = await reader()
        for t in truth:
            rec = await r.recipient(t["message_id"], t["recipient"])
            assert rec is not None, t
            assert rec.state.value == t["webhook_state"], t
            if t["dropped"]:
                assert t["webhook_state"] not in ("delivered", "failed")
            else:
                assert (rec.state.value, rec.error_code) == (t["state"], t["error_code"])

        # The sandbox API of that same run knows how they all ended: YeboLink's dropped final
        # states, and Lisoloo's counts, whose gap to the stored ones is each message's missing.
        async with aiohttp.ClientSession() as session:

            async def get(path: str, headers: dict[str, str]) -> Any:
                async with session.get(url + path, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            for t in dropped:
                if t["provider"] == "yebolink":
                    body = await get(f"{MESSAGES}/{t['message_id']}", YEBOLINK)
                    data = body["data"]
                    assert (data["status"], data.get("error_code")) == (t["state"], t["error_code"])
            for message_id, recipients in by_message_dicts(truth, "lisoloo").items():
                data = (await get(STATUS + message_id, LISOLOO))["data"]
                states = collections.Counter(t["state"] for t in recipients)
                assert (data["delivered"], data["failed"], data["pending"]) == (
                    states["delivered"],
                    states["failed"],
                    0,
                )
                stored = [await r.recipient(message_id, t["recipient"]) for t in recipients]
                stored_final = sum(s.state.value in ("delivered", "failed") for s in stored)
                missing = data["delivered"] + data["failed"] - stored_final
                assert missing == sum(t["dropped"] for t in recipients)
            stats = await get("/_sandbox/stats", {})
            yebolink_dropped = sum(t["provider"] == "yebolink" for t in dropped)
            assert stats["yebolink"]["calls"] == yebolink_dropped
            assert stats["lisoloo"]["calls"] == 3
            assert stats["lisoloo"]["max_in_window"] <= 120

        # Ctrl-C ends the linger early, with the run's own exit status and a summary.
        proc.send_signal(signal.SIGINT)
        try:
            _, rest = await asyncio.wait_for(proc.communicate(), 90)
        except TimeoutError:
            raise AssertionError(f"still running after Ctrl-C: {threads_of(proc.pid)}") from None
        assert proc.returncode == 0, rest
        assert b"sandbox API lisoloo: 3 calls" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def threads_of(pid: int) -> list[tuple[str, str, str]]:
    """Each thread of a process: its name, state and what it waits in (to say where it hangs)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        out.append((name, state, (task / "wchan").read_text().strip()))
    return out


def by_message_dicts(truth: list[dict[str, Any]], provider: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for t in truth:
        if t["provider"] == provider:
            out[t["message_id"]].append(t)
    return out


@pytest.mark.slow
def test_simulate_says_so_when_the_api_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "simulate",
            "--url",
            "http://127.0.0.1:9",
            "--messages",
            "1",
            "--api-port",
            str(port),
            check=False,
        )
    assert result.returncode == 2
    assert "cannot serve the sandbox API" in result.stderr
