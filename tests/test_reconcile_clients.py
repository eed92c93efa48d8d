"""The gateway API clients over real HTTP against a small gateway imitation in this file.

What they must do (issue 14): read the documented and the odd shapes leniently, honour the
rate limit strictly as the *server* counts it, survive 429 bursts and 5xx, refuse to work
without a key, and never let a key out: not in logs, exception texts, reprs or tracebacks.
Time is a fake clock the limiter and the backoff share, so minutes of traffic take
milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import click
import pytest
from aiohttp import web
from click.testing import CliRunner

from smswatch.cli import main
from smswatch.cli.engine_config import engine_config
from smswatch.cli.options import config_option, listener_options
from smswatch.core.domain import State
from smswatch.gateways.lisoloo.api import LisolooApi
from smswatch.gateways.yebolink.api import YeboLinkApi
from smswatch.live.engine import EngineConfig
from smswatch.reconcile.api import RetryPolicy, retry_after_seconds
from smswatch.reconcile.clients import (
    ApiConfig,
    ApiConfigError,
    ApiError,
    ApiKey,
    AuthError,
    RateLimited,
    build,
)
from smswatch.reconcile.ratelimit import RollingWindow
from smswatch.timefmt import to_us

LISOLOO_KEY = "sk_test_Zq3xV8bN1mK4pL7rT2wY5uE9iO0aS6dF"
YEBOLINK_KEY = "ybk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
KEYS = (LISOLOO_KEY, YEBOLINK_KEY)
MID = "507f1f77bcf86cd799439011"


class FakeTime:
    """The limiter's and backoff's clock: time moves only when something sleeps on it.

    `busy`, when set, says requests are still on their way; a sleep waits (in real time) for
    them to end before time jumps, as if the network took no time. Otherwise time would jump
    while requests wait for a connection, and they would count as sent a minute late.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.busy: Callable[[], bool] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        for _ in range(5000):
            if self.busy is None or not self.busy():
                break
            await asyncio.sleep(0.001)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Gateway:
    """Answers anything with `respond` and records every request with its (fake) arrival time."""

    time: FakeTime
    respond: Responder | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(
            {
                "at": self.time.now,
                "path": request.path,
                "raw_path": request.raw_path,
                "query": dict(request.query),
                "headers": dict(request.headers),
            }
        )
        assert self.respond is not None
        return await self.respond(request)

    async def start(self) -> Gateway:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        async def respond(_request: web.Request) -> web.StreamResponse:
            return raw_json(body, status, headers)

        self.respond = respond

    def script(self, *answers: tuple[int, Any, dict[str, str] | None]) -> None:
        """Answer in turn; the last answer repeats."""
        queue = list(answers)

        async def respond(_request: web.Request) -> web.StreamResponse:
            status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
            return raw_json(body, status, headers)

        self.respond = respond


def raw_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = body if isinstance(body, str) else json.dumps(body)
    ctype = "text/html" if isinstance(body, str) else "application/json"
    return web.Response(status=status, text=text, content_type=ctype, headers=headers)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def gateway(fake_time: FakeTime) -> AsyncIterator[Gateway]:
    g = await Gateway(fake_time).start()
    yield g
    await g.stop()


def client_kwargs(fake_time: FakeTime, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "clock": fake_time.clock,
        "sleep": fake_time.sleep,
        "retry": RetryPolicy(attempts=4, base_delay=0.5, max_delay=8),
        "timeout": 5.0,
    }
    values.update(kw)
    return values


@pytest.fixture
async def lisoloo(gateway: Gateway, fake_time: FakeTime) -> AsyncIterator[LisolooApi]:
    async with LisolooApi(ApiKey(LISOLOO_KEY), gateway.url, **client_kwargs(fake_time)) as api:
        yield api


@pytest.fixture
async def yebolink(gateway: Gateway, fake_time: FakeTime) -> AsyncIterator[YeboLinkApi]:
    async with YeboLinkApi(ApiKey(YEBOLINK_KEY), gateway.url, **client_kwargs(fake_time)) as api:
        yield api


def lisoloo_status(**data: Any) -> dict[str, Any]:
    base = {
        "message_id": MID,
        "status": "delivered",
        "total_recipients": 3,
        "delivered": 2,
        "failed": 1,
        "pending": 0,
        "created_at": "2025-03-01T10:00:00Z",
        "updated_at": "2025-03-01T10:00:07.250Z",
    }
    base.update(data)
    return {"status_code": 200, "data": base}


def us(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


# --- Lisoloo ---------------------------------------------------------------------------------


async def test_lisoloo_documented_status(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer(lisoloo_status())
    status = await lisoloo.status(MID)
    assert status is not None
    assert (status.message_id, status.status, status.total_recipients) == (MID, "delivered", 3)
    assert (status.delivered, status.failed, status.pending) == (2, 1, 0)
    assert status.created_at == us("2025-03-01T10:00:00+00:00")
    assert status.updated_at == us("2025-03-01T10:00:07.250+00:00")
    assert status.terminal
    assert status.raw["status"] == "delivered"
    (call,) = gateway.calls
    assert call["path"] == f"/api/v1/lisoloo/sms-api/status/{MID}"
    assert call["headers"]["app-key"] == LISOLOO_KEY


async def test_lisoloo_odd_fields_become_none(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer(
        lisoloo_status(
            message_id=None,
            status="Expired",
            total_recipients="5",  # a number as text is still the number
            delivered=-1,
            failed=2.5,
            pending=True,
            created_at="last tuesday",
            updated_at=None,
            carrier_breakdown={"x": 1},  # unknown field: kept in raw, not an error
        )
    )
    status = await lisoloo.status(MID)
    assert status is not None
    assert status.message_id == MID  # the id asked for when the answer has none
    assert status.status == "Expired" and status.terminal  # kept as given; terminal either case
    assert status.total_recipients == 5
    assert (status.delivered, status.failed, status.pending) == (None, None, None)
    assert (status.created_at, status.updated_at) == (None, None)
    assert status.raw["carrier_breakdown"] == {"x": 1}


async def test_lisoloo_non_terminal_status(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer(lisoloo_status(status="enroute", delivered=0, failed=0, pending=3))
    status = await lisoloo.status(MID)
    assert status is not None and not status.terminal and status.pending == 3


@pytest.mark.parametrize(
    "body",
    [
        {"status_code": 200},
        {"status_code": 200, "data": ["not", "an", "object"]},
        [lisoloo_status()["data"]],
        "<html><body>Welcome to nginx</body></html>",
    ],
    ids=["no-data", "data-list", "bare-list", "html"],
)
async def test_lisoloo_undocumented_shape_is_a_clear_error(
    gateway: Gateway, lisoloo: LisolooApi, body: Any
) -> None:
    gateway.answer(body)
    with pytest.raises(ApiError) as caught:
        await lisoloo.status(MID)
    text = str(caught.value)
    assert text.startswith("Lisoloo API: ")
    assert "not the documented shape" in text or "not JSON" in text


async def test_lisoloo_error_inside_a_200(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer({"success": False, "status_code": 500, "error_code": "1401", "message": "boom"})
    with pytest.raises(ApiError, match="boom") as caught:
        await lisoloo.status(MID)
    assert caught.value.code == "1401"


async def test_lisoloo_404_is_none(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer({"detail": "Message not found"}, 404)
    assert await lisoloo.status("another-tenants-id") is None
    assert len(gateway.calls) == 1  # not retried


async def test_a_404_page_is_a_wrong_url_not_an_unknown_message(
    gateway: Gateway, lisoloo: LisolooApi
) -> None:
    # Read as "not found", every message would look unknown to the gateway.
    gateway.answer("<html>404 Not Found</html>", 404)
    with pytest.raises(ApiError, match="HTTP 404") as caught:
        await lisoloo.status(MID)
    assert caught.value.status == 404


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_not_retried(
    gateway: Gateway, lisoloo: LisolooApi, status: int
) -> None:
    gateway.answer({"detail": "Missing or invalid app-key"}, status)
    with pytest.raises(AuthError, match="Missing or invalid app-key") as caught:
        await lisoloo.status(MID)
    assert caught.value.status == status
    assert len(gateway.calls) == 1


async def test_message_ids_cannot_leave_their_path_segment(
    gateway: Gateway, lisoloo: LisolooApi
) -> None:
    gateway.answer(lisoloo_status())
    await lisoloo.status("a/../../balance?x=1#y")
    (call,) = gateway.calls
    assert call["raw_path"] == "/api/v1/lisoloo/sms-api/status/a%2F..%2F..%2Fbalance%3Fx%3D1%23y"
    for bad in ("", "  ", ".", ".."):
        with pytest.raises(ValueError):
            await lisoloo.status(bad)
    assert len(gateway.calls) == 1


async def test_redirects_are_not_followed(gateway: Gateway, lisoloo: LisolooApi) -> None:
    # The key header would follow the redirect to wherever it points.
    gateway.answer({}, 302, {"Location": "https://elsewhere.example/steal"})
    with pytest.raises(ApiError, match=re.escape("redirected to https://elsewhere.example/steal")):
        await lisoloo.status(MID)
    assert len(gateway.calls) == 1


# --- YeboLink --------------------------------------------------------------------------------

YEBO_MSG = {
    "message_id": "6f1c2a9e-3b7d-4c1e-9a2f-0d5e8b7c6a41",
    "channel": "sms",
    "recipient": "+26876123456",
    "status": "failed",
    "error_code": "30006",
    "error_message": "Landline or unreachable carrier",
    "provider_message_id": "SM0123456789abcdef0123456789abcdef",
    "metadata": {"campaign": "spring"},
    "credits_used": 1,
    "created_at": "2025-03-01T10:00:00.000Z",
    "failed_at": "2025-03-01T10:00:09.000Z",
}
YEBO_ID = YEBO_MSG["message_id"]


def camel(msg: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": msg["message_id"],
        "to": msg["recipient"],
        "status": msg["status"],
        "channel": msg["channel"],
        "errorCode": 30006,  # a number, not text: still the code
        "errorMessage": msg["error_message"],
        "providerMessageId": msg["provider_message_id"],
        "metadata": msg["metadata"],
        "creditsUsed": "1",
        "createdAt": msg["created_at"],
        "failedAt": msg["failed_at"],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "data": YEBO_MSG},
        {"success": True, "data": {"message": YEBO_MSG}},
        {"data": YEBO_MSG},
        {"status": "ok", "data": YEBO_MSG},
        YEBO_MSG,
        {"success": True, "data": camel(YEBO_MSG)},
        {"success": True, "data": [YEBO_MSG]},
    ],
    ids=["success-data", "data-message", "data", "status-ok", "bare", "camel", "list-of-one"],
)
async def test_yebolink_message_shapes(gateway: Gateway, yebolink: YeboLinkApi, body: Any) -> None:
    gateway.answer(body)
    msg = await yebolink.message(YEBO_ID)
    assert msg is not None
    assert msg.message_id == YEBO_ID
    assert msg.recipient == "+26876123456"
    assert (msg.status, msg.state) == ("failed", State.FAILED)
    assert (msg.error_code, msg.error_message) == ("30006", "Landline or unreachable carrier")
    assert msg.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert msg.metadata == {"campaign": "spring"}
    assert msg.credits_used == 1.0
    assert msg.created_at == us("2025-03-01T10:00:00+00:00")
    assert msg.failed_at == us("2025-03-01T10:00:09+00:00")
    assert msg.delivered_at is None
    call = gateway.calls[-1]
    assert call["path"] == f"/api/v1/messages/{YEBO_ID}"
    assert call["headers"]["X-API-Key"] == YEBOLINK_KEY


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", State.QUEUED),
        ("sent", State.SENT),
        ("delivered", State.DELIVERED),
        ("DELIVERED", State.DELIVERED),
        ("undelivered", State.FAILED),
        ("scheduled", None),
        ("cancelled", None),
        (None, None),
    ],
)
async def test_yebolink_statuses(
    gateway: Gateway, yebolink: YeboLinkApi, status: str | None, state: State | None
) -> None:
    gateway.answer({"success": True, "data": {**YEBO_MSG, "status": status, "metadata": "x"}})
    msg = await yebolink.message(YEBO_ID)
    assert msg is not None
    assert (msg.status, msg.state) == (status, state)  # unknown statuses keep their text
    assert msg.metadata is None  # not an object: left out rather than guessed at


async def test_yebolink_unknown_message(gateway: Gateway, yebolink: YeboLinkApi) -> None:
    gateway.answer({"success": False, "error": "Message not found"}, 404)
    assert await yebolink.message("nope") is None
    gateway.answer({"success": True, "data": None})
    assert await yebolink.message("nope") is None


async def test_yebolink_unreadable_message(gateway: Gateway, yebolink: YeboLinkApi) -> None:
    gateway.answer({"success": True, "data": {"hello": "world"}})
    with pytest.raises(ApiError, match="no message in any shape"):
        await yebolink.message(YEBO_ID)


async def test_yebolink_error_text(gateway: Gateway, yebolink: YeboLinkApi) -> None:
    gateway.answer({"success": False, "error": "startDate must be ISO-8601"}, 400)
    with pytest.raises(ApiError, match="HTTP 400: startDate must be ISO-8601") as caught:
        await yebolink.messages()
    assert caught.value.status == 400 and len(gateway.calls) == 1
    gateway.answer({"success": False, "error": "Invalid API key"}, 401)
    with pytest.raises(AuthError, match="Invalid API key"):
        await yebolink.messages()


def items(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{**YEBO_MSG, "message_id": f"m{start + i}", "status": "delivered"} for i in range(n)]


@pytest.mark.parametrize(
    ("body", "has_more", "total"),
    [
        (
            {"success": True, "data": {"messages": items(3), "pagination": {"totalPages": 4}}},
            True,
            None,
        ),
        (
            {"success": True, "data": {"messages": items(3), "pagination": {"pages": 2}}},
            False,
            None,
        ),
        ({"success": True, "data": items(3), "meta": {"hasMore": False}}, False, None),
        ({"success": True, "data": items(3), "total": 250}, True, 250),
        ({"data": {"items": items(3), "next": None}}, False, None),
        ({"data": {"messages": items(3), "next_page": 3}}, True, None),
        (items(3), False, None),  # bare list, shorter than the limit: the last page
        (items(100), True, None),  # bare list, full: probably more
        ({"success": True, "data": {"data": {"messages": items(3)}}}, False, None),
    ],
    ids=[
        "totalPages",
        "pages",
        "hasMore",
        "total",
        "next-null",
        "next_page",
        "bare-short",
        "bare-full",
        "nested",
    ],
)
async def test_yebolink_list_shapes(
    gateway: Gateway, yebolink: YeboLinkApi, body: Any, has_more: bool, total: int | None
) -> None:
    gateway.answer(body)
    limit = 100
    page = await yebolink.messages(page=2, limit=limit)
    assert page.page == 2 and page.has_more is has_more and page.total == total
    assert [m.message_id for m in page.messages][:3] == ["m0", "m1", "m2"]
    assert all(m.state == State.DELIVERED for m in page.messages)


async def test_yebolink_list_skips_what_is_not_a_message(
    gateway: Gateway, yebolink: YeboLinkApi
) -> None:
    gateway.answer({"success": True, "data": [*items(2), "junk", {"status": "sent"}, None]})
    page = await yebolink.messages(limit=10)
    assert [m.message_id for m in page.messages] == ["m0", "m1"]
    assert page.skipped == 3 and not page.has_more


async def test_yebolink_list_filters(gateway: Gateway, yebolink: YeboLinkApi) -> None:
    gateway.answer({"success": True, "data": {"messages": []}})
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    page = await yebolink.messages(
        status=State.FAILED, start=start, end=to_us(start) + 3_600_000_000, page=3, limit=50
    )
    assert page.messages == () and not page.has_more
    (call,) = gateway.calls
    assert call["path"] == "/api/v1/messages"
    assert call["query"] == {
        "status": "failed",
        "startDate": "2025-03-01T10:00:00Z",
        "endDate": "2025-03-01T11:00:00Z",
        "page": "3",
        "limit": "50",
    }
    for bad in ({"status": "undelivered"}, {"limit": 101}, {"limit": 0}, {"page": 0}):
        with pytest.raises(ValueError):
            await yebolink.messages(**bad)
    assert len(gateway.calls) == 1  # a bad filter never reaches the gateway


async def test_yebolink_list_unreadable(gateway: Gateway, yebolink: YeboLinkApi) -> None:
    gateway.answer({"success": True, "data": {"count": 3}})
    with pytest.raises(ApiError, match="no list in any shape"):
        await yebolink.messages()


# --- the rate limit, as the server counts it --------------------------------------------------


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


@pytest.mark.parametrize("slow_first", [False, True], ids=["even", "slow-first-arrival"])
async def test_never_more_than_the_limit_in_any_rolling_minute(
    gateway: Gateway, fake_time: FakeTime, slow_first: bool
) -> None:
    served = 0

    async def respond(_request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if slow_first and served == 1:
            # This request took 5 s to reach the gateway: its arrival counts 5 s after it was
            # sent, so spacing later calls from the *send* would put 121 into one minute.
            gateway.calls[-1]["at"] += 5
            fake_time.now += 5
        return raw_json(lisoloo_status())

    gateway.respond = respond
    async with LisolooApi(ApiKey(LISOLOO_KEY), gateway.url, **client_kwargs(fake_time)) as api:
        assert api.limiter.limit == 120
        fake_time.busy = lambda: api.limiter.in_flight > 0
        started = fake_time.now
        results = await asyncio.gather(*(api.status(MID) for _ in range(130)))
    assert all(r is not None for r in results)
    times = [c["at"] for c in gateway.calls]
    assert len(times) == 130
    assert most_in_any_window(times, 60.0) == 120
    # The 121st waited for the first to leave the window (it arrived 5 s late), no longer.
    assert fake_time.now - started == (65 if slow_first else 60)


async def test_yebolink_default_limit_is_60_and_configurable(
    gateway: Gateway, fake_time: FakeTime
) -> None:
    gateway.answer({"success": True, "data": YEBO_MSG})
    config = ApiConfig(yebolink_key=ApiKey(YEBOLINK_KEY), yebolink_url=gateway.url)
    (api,) = build(config, clock=fake_time.clock, sleep=fake_time.sleep).values()
    assert isinstance(api, YeboLinkApi) and api.limiter.limit == 60
    fake_time.busy = lambda: api.limiter.in_flight > 0
    async with api:
        await asyncio.gather(*(api.message(YEBO_ID) for _ in range(75)))
    assert most_in_any_window([c["at"] for c in gateway.calls], 60.0) == 60
    slower = ApiConfig(yebolink_key=ApiKey(YEBOLINK_KEY), yebolink_rate=10)
    assert build(slower)["yebolink"].limiter.limit == 10


async def test_a_call_in_flight_holds_its_place() -> None:
    """Every place taken by calls that have not answered yet: the next waits for an answer,
    then for a full window after it."""
    t = FakeTime()
    limiter = RollingWindow(2, 60.0, clock=t.clock, sleep=t.sleep)
    release = asyncio.Event()
    started: list[float] = []

    async def call() -> None:
        async with limiter.slot():
            started.append(t.now)
            await release.wait()

    first = [asyncio.create_task(call()) for _ in range(2)]
    third = asyncio.create_task(call())
    await asyncio.sleep(0.01)
    assert len(started) == 2 and limiter.used() == 2
    t.now += 100  # long after the window: still no place, both are in flight
    await asyncio.sleep(0.01)
    assert len(started) == 2
    release.set()
    await asyncio.gather(*first, third)
    assert started[2] == pytest.approx(1100 + 60)


# --- 429 and 5xx -------------------------------------------------------------------------------


def retry_after_answers(kind: str) -> tuple[dict[str, Any], dict[str, str] | None, float]:
    """A 429's body, headers and the least pause it asks for."""
    body: dict[str, Any] = {
        "success": False,
        "status_code": 429,
        "error_code": "1301",
        "message": "Too many requests",
        "retryable": True,
        "retry_after": None,
    }
    if kind == "seconds":
        return body, {"Retry-After": "7"}, 7.0
    if kind == "http-date":
        when = datetime.now(UTC) + timedelta(seconds=4)
        return body, {"Retry-After": format_datetime(when, usegmt=True)}, 2.0
    if kind == "body":
        return {**body, "retry_after": 9}, None, 9.0
    return body, None, 0.25  # backoff: at least half the base delay


@pytest.mark.parametrize("kind", ["seconds", "http-date", "body", "backoff"])
async def test_429_burst_pauses_the_key_and_every_call_survives(
    gateway: Gateway, fake_time: FakeTime, lisoloo: LisolooApi, kind: str
) -> None:
    body, headers, least = retry_after_answers(kind)
    limited = 10  # the gateway refuses the first ten requests, wherever they come from
    seen = 0

    async def respond(_request: web.Request) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if seen <= limited:
            return raw_json(body, 429, headers)
        return raw_json(lisoloo_status())

    gateway.respond = respond
    start = fake_time.now
    results = await asyncio.gather(*(lisoloo.status(MID) for _ in range(10)))
    assert all(r is not None and r.delivered == 2 for r in results)
    codes = ["429"] * limited + ["200"] * 10
    assert len(gateway.calls) == len(codes)  # one 429 per call: nobody hammered
    # Every retry came after the pause the gateway asked for.
    assert all(c["at"] >= start + least for c in gateway.calls[limited:])


async def test_429_that_does_not_end_raises_rate_limited(
    gateway: Gateway, fake_time: FakeTime, lisoloo: LisolooApi
) -> None:
    gateway.answer({"error_code": "1301", "retry_after": 2}, 429, {"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        await lisoloo.status(MID)
    assert len(gateway.calls) == 4  # RetryPolicy(attempts=4)
    assert caught.value.retry_after == 2 and caught.value.code == "1301"


async def test_a_long_retry_after_is_honoured_without_waiting(
    gateway: Gateway, fake_time: FakeTime, lisoloo: LisolooApi
) -> None:
    gateway.answer({"detail": "slow down"}, 429, {"Retry-After": "3600"})
    with pytest.raises(RateLimited, match="slow down"):
        await lisoloo.status(MID)
    assert len(gateway.calls) == 1
    assert lisoloo.limiter.paused_for() == pytest.approx(3600)  # the key stays paused
    gateway.answer(lisoloo_status())
    before = fake_time.now
    assert await lisoloo.status(MID) is not None
    assert gateway.calls[-1]["at"] >= before + 3600


async def test_5xx_is_retried_with_backoff(
    gateway: Gateway, fake_time: FakeTime, lisoloo: LisolooApi
) -> None:
    gateway.script(
        (500, {"detail": "oops"}, None),
        (502, "<html>bad gateway</html>", None),
        (200, lisoloo_status(), None),
    )
    assert await lisoloo.status(MID) is not None
    assert len(gateway.calls) == 3
    assert len(fake_time.sleeps) == 2 and 0.25 <= fake_time.sleeps[0] <= 0.5


async def test_5xx_gives_up_after_the_attempts(
    gateway: Gateway, fake_time: FakeTime, yebolink: YeboLinkApi
) -> None:
    gateway.answer({"success": False, "error": "database is down"}, 503)
    with pytest.raises(ApiError, match=r"database is down.*after 4 attempts") as caught:
        await yebolink.message(YEBO_ID)
    assert caught.value.status == 503 and len(gateway.calls) == 4


async def test_not_retryable_means_not_retried(gateway: Gateway, lisoloo: LisolooApi) -> None:
    gateway.answer({"error_code": "1402", "message": "maintenance", "retryable": False}, 503)
    with pytest.raises(ApiError, match="maintenance"):
        await lisoloo.status(MID)
    assert len(gateway.calls) == 1


async def test_503_retry_after_pauses(
    gateway: Gateway, fake_time: FakeTime, lisoloo: LisolooApi
) -> None:
    gateway.script((503, {}, {"Retry-After": "12"}), (200, lisoloo_status(), None))
    start = fake_time.now
    assert await lisoloo.status(MID) is not None
    assert gateway.calls[1]["at"] >= start + 12


async def test_connection_failures_are_retried_then_reported(fake_time: FakeTime) -> None:
    g = await Gateway(fake_time).start()
    url = g.url
    await g.stop()  # nobody listens there now
    async with LisolooApi(ApiKey(LISOLOO_KEY), url, **client_kwargs(fake_time)) as api:
        with pytest.raises(ApiError, match="cannot reach") as caught:
            await api.status(MID)
    assert caught.value.status is None
    assert len(fake_time.sleeps) == 3  # backoff between the 4 attempts


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120", None) == 120
    assert retry_after_seconds(" 1.5 ", None) == 1.5
    assert retry_after_seconds("-3", None) == 0
    past = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(past, None) == 0
    assert retry_after_seconds("soon", {"retry_after": 30}) == 30
    assert retry_after_seconds(None, {"retry_after": None}) is None
    assert retry_after_seconds(None, {"retry_after": True}) is None
    assert retry_after_seconds(None, ["retry_after"]) is None
    # Never a pause without end: capped at an hour, and infinity is no answer.
    assert retry_after_seconds("99999999", None) == 3600
    assert retry_after_seconds(None, {"retry_after": 10**9}) == 3600
    assert retry_after_seconds("inf", None) is None
    assert retry_after_seconds("nan", {"retry_after": 5}) == 5


# --- no key, no client; keys never leak ------------------------------------------------------


def test_no_key_no_client() -> None:
    assert ApiConfig.from_settings() is None
    assert ApiConfig.from_settings(lisoloo_api_url="https://lisoloo.example") is None
    assert build(None) == {}
    only_yebolink = ApiConfig(yebolink_key=ApiKey(YEBOLINK_KEY))
    assert LisolooApi.from_config(only_yebolink) is None
    assert list(build(only_yebolink)) == ["yebolink"]
    assert build(only_yebolink)["yebolink"].base_url == "https://api.yebolink.com"
    with pytest.raises(TypeError):
        LisolooApi(LISOLOO_KEY, "https://lisoloo.example")  # type: ignore[arg-type]
    for blank in ("", "   "):
        with pytest.raises(ApiConfigError, match="empty"):
            ApiKey(blank)


def test_a_lisoloo_key_needs_its_url() -> None:
    with pytest.raises(ApiConfigError, match=r"--lisoloo-api-url.*dashboard"):
        ApiConfig.from_settings(lisoloo_app_key=LISOLOO_KEY)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://lisoloo.example", "http\\(s\\) URL with a host"),
        ("lisoloo.example", "http\\(s\\) URL with a host"),
        ("https://", "http\\(s\\) URL with a host"),
        ("https://user:pw@lisoloo.example", "credentials"),
        ("https://lisoloo.example?x=1", "without \\?query"),
        ("https://lisoloo.example/api/v1/lisoloo/sms-api", "base URL only"),
        ("https://lisoloo.example:99999", "not a URL"),
    ],
)
def test_base_urls_are_checked(url: str, message: str) -> None:
    with pytest.raises(ApiConfigError, match=message):
        ApiConfig.from_settings(lisoloo_app_key=LISOLOO_KEY, lisoloo_api_url=url)


def test_base_urls_are_normalised() -> None:
    config = ApiConfig.from_settings(
        lisoloo_app_key=LISOLOO_KEY,
        lisoloo_api_url=" HTTPS://Sandbox.Lisoloo.example/ ",
        yebolink_api_key=YEBOLINK_KEY,
        yebolink_api_url="https://dev-api.yebolink.com/proxy/",
    )
    assert config is not None
    assert config.lisoloo_url == "https://sandbox.lisoloo.example"
    assert config.yebolink_url == "https://dev-api.yebolink.com/proxy"
    assert config.gateways == ("lisoloo", "yebolink")


def test_keys_print_redacted() -> None:
    key = ApiKey(LISOLOO_KEY)
    assert str(key) == f"{key}" == "sk_test_****S6dF"
    assert repr(key) == "ApiKey('sk_test_****S6dF')"
    assert str(ApiKey(YEBOLINK_KEY)) == "ybk_****b1a0"
    assert str(ApiKey("short")) == "****"
    assert key == ApiKey(LISOLOO_KEY) and key != ApiKey(YEBOLINK_KEY)
    assert key.reveal() == LISOLOO_KEY
    with pytest.raises(ApiConfigError, match="printable ASCII") as caught:
        ApiKey("sk_test_abc\r\nX-Evil: 1")
    assert "sk_test_abc" not in str(caught.value)


async def test_keys_never_leak(
    gateway: Gateway, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """Every way a key could get out of a client: the repr of everything that holds one, log
    records at DEBUG, exception texts, reprs, tracebacks and chains, including errors whose
    gateway answer echoes the key back."""
    caplog.set_level(logging.DEBUG)
    config = ApiConfig.from_settings(
        lisoloo_app_key=LISOLOO_KEY,
        lisoloo_api_url=gateway.url,
        yebolink_api_key=YEBOLINK_KEY,
        yebolink_api_url=gateway.url,
    )
    assert config is not None
    clients = build(config, **client_kwargs(fake_time, timeout=0.3))
    lisoloo, yebolink = clients["lisoloo"], clients["yebolink"]
    assert isinstance(lisoloo, LisolooApi) and isinstance(yebolink, YeboLinkApi)
    texts = [repr(config), str(config), repr(EngineConfig(gateway_api=config))]
    texts += [repr(c) for c in clients.values()]
    errors: list[BaseException] = []

    async def attempt(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except ApiError as exc:
            errors.append(exc)

    def echo(status: int, **extra: Any) -> None:
        async def respond(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("app-key") or request.headers.get("X-API-Key") or ""
            body = {"detail": f"bad key {key}", "error": f"key {key} refused", **extra}
            return raw_json(body, status, {"Location": f"https://evil.example/?k={key}"})

        gateway.respond = respond

    for status in (400, 401, 403, 404, 418, 429, 500, 302):
        echo(status, retry_after=0 if status == 429 else None)
        await attempt(lambda: lisoloo.status(MID))
        await attempt(lambda: yebolink.message(YEBO_ID))
        await attempt(lambda: yebolink.messages())

    async def echo_html(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("app-key") or request.headers.get("X-API-Key") or ""
        return raw_json(f"<html>{key}</html>", 503)

    gateway.respond = echo_html
    await attempt(lambda: lisoloo.status(MID))
    await attempt(lambda: yebolink.messages())

    async def hang(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)  # past the 0.3 s timeout
        return raw_json({})

    gateway.respond = hang
    await attempt(lambda: lisoloo.status(MID))
    await gateway.stop()  # connection refused
    await attempt(lambda: yebolink.message(YEBO_ID))
    for client in clients.values():
        await client.close()

    assert len(errors) >= 26
    assert any(isinstance(e, AuthError) for e in errors)
    assert any("no answer within" in str(e) for e in errors)
    assert any("cannot reach" in str(e) for e in errors)
    assert any("****" in str(e) for e in errors)  # an echoed key shows masked
    for exc in errors:
        assert exc.__context__ is None and exc.__cause__ is None  # no aiohttp error rides along
        texts += [str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)]
        # With every frame's local variables, as Textual's crash screen and pytest -l show.
        shown = traceback.TracebackException.from_exception(exc, capture_locals=True)
        texts += shown.format()
    texts.append(caplog.text)
    texts += [repr(r.args) + r.getMessage() for r in caplog.records]
    assert caplog.records  # the clients did log
    everything = "\n".join(texts)
    for key in KEYS:
        assert key not in everything
        assert key[8:24] not in everything  # nor a good part of one


# --- settings: flags, environment, config file ----------------------------------------------


def probe_command(seen: list[EngineConfig]) -> click.Command:
    """A command with the monitor's and serve's listener options, that only builds the
    engine's config: the settings path without starting anything."""

    @click.command()
    @config_option
    @listener_options
    def probe(**opts: Any) -> None:
        seen.append(engine_config(opts))

    return probe


@pytest.fixture
def no_api_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "SMSWATCH_LISOLOO_APP_KEY",
        "SMSWATCH_LISOLOO_API_URL",
        "SMSWATCH_YEBOLINK_API_KEY",
        "SMSWATCH_YEBOLINK_API_URL",
        "SMSWATCH_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.mark.usefixtures("no_api_env")
def test_settings_from_flags_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[EngineConfig] = []
    runner = CliRunner()
    probe = probe_command(seen)

    result = runner.invoke(probe, [])
    assert result.exit_code == 0, result.output
    assert seen[-1].gateway_api is None  # no key: nothing to poll

    result = runner.invoke(
        probe,
        ["--lisoloo-app-key", LISOLOO_KEY, "--lisoloo-api-url", "https://sandbox.lisoloo.example"],
    )
    assert result.exit_code == 0, result.output
    api = seen[-1].gateway_api
    assert api is not None and api.gateways == ("lisoloo",)
    assert api.lisoloo_key == ApiKey(LISOLOO_KEY)
    assert api.lisoloo_url == "https://sandbox.lisoloo.example"

    monkeypatch.setenv("SMSWATCH_YEBOLINK_API_KEY", YEBOLINK_KEY)
    monkeypatch.setenv("SMSWATCH_YEBOLINK_API_URL", "https://dev-api.yebolink.com")
    result = runner.invoke(probe, [])
    assert result.exit_code == 0, result.output
    api = seen[-1].gateway_api
    assert api is not None and api.gateways == ("yebolink",)
    assert api.yebolink_key == ApiKey(YEBOLINK_KEY)
    assert api.yebolink_url == "https://dev-api.yebolink.com"
    monkeypatch.delenv("SMSWATCH_YEBOLINK_API_KEY")
    monkeypatch.delenv("SMSWATCH_YEBOLINK_API_URL")

    config_file = tmp_path / "smswatch.toml"
    config_file.write_text(
        f'lisoloo_app_key = "{LISOLOO_KEY}"\n'
        'lisoloo-api-url = "https://file.lisoloo.example"\n'
        f'yebolink_api_key = "{YEBOLINK_KEY}"\n'
    )
    monkeypatch.setenv("SMSWATCH_LISOLOO_API_URL", "https://env.lisoloo.example")
    result = runner.invoke(probe, ["--config", str(config_file)])
    assert result.exit_code == 0, result.output
    api = seen[-1].gateway_api
    assert api is not None and api.gateways == ("lisoloo", "yebolink")
    assert api.lisoloo_url == "https://env.lisoloo.example"  # environment over file
    assert api.yebolink_url == "https://api.yebolink.com"  # the default
    result = runner.invoke(
        probe,
        ["--config", str(config_file), "--lisoloo-api-url", "https://flag.lisoloo.example"],
    )
    assert result.exit_code == 0, result.output
    assert seen[-1].gateway_api is not None
    assert seen[-1].gateway_api.lisoloo_url == "https://flag.lisoloo.example"  # flag over env

    # The file's [stuck] deadlines reach the reconciler too (a stuck recipient's message is
    # polled), not only the monitor's panels.
    config_file.write_text(config_file.read_text() + "[stuck]\nsent = 120\n")
    result = runner.invoke(probe, ["--config", str(config_file)])
    assert result.exit_code == 0, result.output
    deadlines = seen[-1].stuck_deadlines
    assert deadlines is not None and deadlines[State.SENT] == 120_000_000

    # --help shows no key, even one the config file sets.
    result = runner.invoke(probe, ["--config", str(config_file), "--help"])
    assert result.exit_code == 0 and "--lisoloo-app-key" in result.output
    assert not any(key in result.output for key in KEYS)


@pytest.mark.usefixtures("no_api_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lisoloo-app-key", LISOLOO_KEY], "--lisoloo-app-key needs --lisoloo-api-url"),
        (["--yebolink-api-key", YEBOLINK_KEY, "--yebolink-api-url", "ftp://x"], "http(s) URL"),
        (["--lisoloo-api-url", "https://x/api/v1/lisoloo"], "base URL only"),
        (["--yebolink-api-key", "ybk_ bad"], "printable ASCII without spaces"),
    ],
)
def test_serve_refuses_bad_api_settings(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not any(key in result.output for key in KEYS)


# --- answers the reconciler must not believe ---------------------------------------------------


class _Recipients:
    """The store's side of a YeboLink message: its one recipient, as the webhooks named it."""

    def __init__(self, recipient: str) -> None:
        self.recipient = recipient

    async def recipients(self, message_id: str, limit: int = 1) -> list[Any]:
        return [type("R", (), {"recipient": self.recipient})()]


@pytest.mark.parametrize(
    ("gateway_name", "body", "refused"),
    [
        (
            "yebolink",
            {
                "success": True,
                "data": {"message_id": "other", "status": "failed", "recipient": "+19999999999"},
            },
            "another message",
        ),
        (
            "yebolink",
            {
                "success": True,
                "data": {"message_id": "m-1", "status": "failed", "recipient": "+19999999999"},
            },
            "another recipient",
        ),
        ("lisoloo", lisoloo_status(message_id="other"), "another message"),
        ("lisoloo", {"status_code": 200, "data": {"status": "delivered"}}, "no delivered"),
        ("lisoloo", lisoloo_status(message_id="m-1", delivered=-5), "no delivered"),
        ("lisoloo", lisoloo_status(message_id="m-1", failed=10**12), "no delivered"),
    ],
)
async def test_an_answer_about_another_message_or_without_counts_is_not_stored(
    gateway: Gateway, fake_time: FakeTime, gateway_name: str, body: Any, refused: str
) -> None:
    from smswatch.reconcile.reconciler import Reconciler

    api = LisolooApi if gateway_name == "lisoloo" else YeboLinkApi
    key = ApiKey(LISOLOO_KEY if gateway_name == "lisoloo" else YEBOLINK_KEY)
    submitted: list[Any] = []

    async def submit(events: list[Any]) -> list[Any]:
        submitted.extend(events)
        return []

    gateway.answer(body)
    async with api(key, gateway.url, **client_kwargs(fake_time)) as client:
        reconciler = Reconciler({gateway_name: client}, submit, lambda: None, lambda: 0)
        reconciler._reader = _Recipients("+2782 494 0551")  # type: ignore[assignment]
        result = await reconciler.poll(gateway_name, "m-1")
    assert result.error is not None and refused in result.error, result
    assert not result.final  # asked again later: the gateway may answer right next time
    assert submitted == []


async def test_the_same_recipient_written_otherwise_is_believed(
    gateway: Gateway, fake_time: FakeTime
) -> None:
    from smswatch.reconcile.reconciler import Reconciler

    submitted: list[Any] = []

    async def submit(events: list[Any]) -> list[Any]:
        submitted.extend(events)
        return [type("O", (), {"duplicate": False})() for _ in events]

    gateway.answer(
        {
            "success": True,
            "data": {"message_id": "M-1", "status": "delivered", "recipient": "+27824940551"},
        }
    )
    async with YeboLinkApi(ApiKey(YEBOLINK_KEY), gateway.url, **client_kwargs(fake_time)) as c:
        reconciler = Reconciler({"yebolink": c}, submit, lambda: None, lambda: 0)
        reconciler._reader = _Recipients("+2782 494 0551")  # type: ignore[assignment]
        result = await reconciler.poll("yebolink", "m-1")
    assert result.error is None and result.final and result.stored
    assert [e.message_id for e in submitted] == ["m-1"]  # stored under the id asked about
