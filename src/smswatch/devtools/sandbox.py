"""A sandbox of the gateways' status APIs, answering from the simulator's own truth.

A reconciler polls the gateways for what their webhooks never brought (issue 14). To test it
without the real gateways, `smswatch simulate --api-port` (or the demo, or a test, in-process)
runs this server beside the simulated traffic. It knows every recipient the way the gateway does
(`smswatch.devtools.simulate.GatewayRecord`: each step with its time, whether or not the webhook was
sent) and answers as of the clock's now: a recipient delivered at t is delivered only once the
clock has passed t, so a poll during a run sees pending recipients. A message that the clock
has not reached yet (its send lies in the future) is unknown: 404.

Endpoints, base = `SandboxAPI.url`:

Lisoloo (shared/gateways.md §1.4–1.6), header `app-key`:
- `GET /api/v1/lisoloo/sms-api/status/{message_id}` → 200 `{"status_code": 200, "data":
  {"message_id", "status", "total_recipients", "delivered", "failed", "pending", "created_at",
  "updated_at"}}`; 404 `{"detail": "Message not found"}`; 401 `{"detail": "Missing or invalid
  app-key"}`; 429 with `Retry-After` and the error envelope of §1.5 (`error_code` "1301",
  `retryable` true, `retry_after`). 120 calls per key per rolling minute, as documented.
- `GET /api/v1/lisoloo/sms-api/health` → 200 `{"status": "ok"}`: no auth, never limited.

YeboLink (§2.5), header `X-API-Key`:
- `GET /api/v1/messages/{id}` → 200 `{"success": true, "data": {message}}`.
- `GET /api/v1/messages?channel=&status=&startDate=&endDate=&page=&limit=` → 200
  `{"success": true, "data": {"messages": [message, …], "page", "limit", "total"}}`.
- Errors `{"success": false, "error": "…"}`: 400 a bad filter (limit outside 1..100, unknown
  status or channel, a date that is not ISO 8601, page < 1), 401 a missing or wrong key, 404 an
  unknown id, 429 over the limit with `Retry-After`. Every answer to a key carries
  `RateLimit-Limit` / `RateLimit-Remaining`, as express-rate-limit (the usual Node limiter) does.

Sandbox: `GET /_sandbox/stats` → JSON counters (see `SandboxAPI.stats`), no auth.

YeboLink publishes neither the shape of these answers nor a limit for them; what this sandbox
does there is our guess, kept close to what the webhooks carry:
- A message is `{"message_id", "channel", "recipient", "status", "credits_used", "metadata",
  "created_at", "updated_at"}`, plus `"provider_message_id"` and `"sent_at"` once sent,
  `"delivered_at"` once delivered, `"error_code"`, `"error_message"` and `"failed_at"` once
  failed: as in the webhooks, a field that does not apply yet is absent, not null.
- The list is newest first (created_at, then message_id); the status filter is on the status as
  of now; startDate/endDate bound created_at, both inclusive (a bare date is its midnight UTC).
- 60 calls per key per rolling minute over both endpoints together (`--api-yebolink-limit`).

Lisoloo's aggregate `status` is not defined for a batch either: here it is `delivered` once every
recipient is final and at least one was delivered, `failed` if none was, and otherwise the least
advanced unfinished recipient's status (`pending` < `processing` < `sent`). Clients should read
the counts, which are exact.

Rate limits are per key over a rolling window (`SandboxLimits.window_s`, 60 s): a call is
answered if fewer than the limit were answered in the window before it, else 429 with a
`Retry-After` of the seconds until the oldest answered call leaves the window. Refused calls do
not use up the limit, but every call is counted: `max_in_window`, the most calls a key made in
any rolling window, is what a test compares with the limit to prove a client never went over.
With no key configured for a gateway, any non-empty key is accepted (each its own bucket).

The 429 burst (`SandboxLimits.burst_429`, `--api-429-burst N`) is a fault for testing backoff:
after the first `burst_after` calls to a gateway's API, its next N calls get 429 with
`Retry-After: burst_retry_after`, whatever the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from smswatch.devtools.simulate import GatewayRecord, Plan
from smswatch.timefmt import iso, now_us, to_us
from smswatch.words import plural

Clock = Callable[[], int]  # epoch microseconds

LISOLOO_PREFIX = "/api/v1/lisoloo/sms-api"
YEBOLINK_PREFIX = "/api/v1/messages"
STATS_PATH = "/_sandbox/stats"
GATEWAYS = ("lisoloo", "yebolink")
YEBOLINK_STATUSES = ("queued", "sent", "delivered", "failed")
YEBOLINK_CHANNELS = ("sms", "whatsapp", "email", "voice")
FINAL = ("delivered", "failed")
# How far along an unfinished Lisoloo recipient is, for the message's aggregate status.
PROGRESS = {"pending": 0, "processing": 1, "sent": 2}
MAX_LIMIT = 100  # YeboLink's documented page size cap
DEFAULT_LIMIT = 50


class ManualClock:
    """A clock a test moves by hand, so a rolling minute need not take a minute."""

    def __init__(self, us: int) -> None:
        self.us = us

    def __call__(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


@dataclass(frozen=True)
class SandboxKeys:
    """The keys the sandbox accepts; None accepts any non-empty key."""

    lisoloo_app_key: str | None = None
    yebolink_api_key: str | None = None


@dataclass(frozen=True)
class SandboxLimits:
    lisoloo_per_window: int = 120  # GET /status per key (gateways.md §1.6)
    yebolink_per_window: int = 60  # not published: our guess for a polling endpoint
    window_s: float = 60.0
    burst_429: int = 0  # fault: this many calls to each gateway's API get 429 ...
    burst_after: int = 3  # ... once this many have been made
    burst_retry_after: int = 1  # seconds, in the burst's Retry-After

    def limit(self, gateway: str) -> int:
        return self.lisoloo_per_window if gateway == "lisoloo" else self.yebolink_per_window


def key_label(key: str) -> str:
    """How stats name a key: enough to tell keys apart, not enough to reuse one."""
    return key if len(key) <= 12 else f"{key[:8]}…{key[-4:]}"


@dataclass
class _Bucket:
    """One key's calls to one gateway's API."""

    attempts: deque[int] = field(default_factory=deque)  # every call in the window
    answered: deque[int] = field(default_factory=deque)  # calls within the limit, in the window
    calls: int = 0
    served: int = 0
    limited: int = 0
    burst: int = 0
    not_found: int = 0
    max_in_window: int = 0
    max_served_in_window: int = 0
    per_minute: Counter[int] = field(default_factory=Counter)  # minute since epoch → calls

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "served": self.served,
            "limited": self.limited,
            "burst": self.burst,
            "not_found": self.not_found,
            "max_in_window": self.max_in_window,
            "max_served_in_window": self.max_served_in_window,
            "per_minute": {iso(m * 60_000_000): n for m, n in sorted(self.per_minute.items())},
        }


@dataclass
class _LisolooMessage:
    message_id: str
    created_us: int
    total: int
    recipients: list[GatewayRecord]


class _Refused(Exception):
    """A call answered 429: by the rate limit, or by the burst fault."""

    def __init__(self, retry_after: int, remaining: int = 0) -> None:
        self.retry_after = retry_after
        self.remaining = remaining


def status_at(record: GatewayRecord, now: int) -> tuple[str, int]:
    """The gateway's status of one recipient as of `now`, and since when."""
    status = "pending" if record.truth.provider == "lisoloo" else "queued"
    since = record.created_us
    for at, step in record.steps:
        if at > now:
            break
        status, since = step, at
    return status, since


class SandboxAPI:
    """The gateways' status APIs over HTTP, answering from the simulator's ledger.

    `add` / `add_plan` may be called at any time, from any thread (the demo adds each send as
    it launches it). Run it in the caller's event loop (`start` / `stop`) or in a thread of its
    own (`start_background` / `stop_background`, for the synchronous command line).
    """

    def __init__(
        self,
        records: Iterable[GatewayRecord] = (),
        *,
        clock: Clock = now_us,
        keys: SandboxKeys | None = None,
        limits: SandboxLimits | None = None,
    ) -> None:
        self.clock = clock
        self.keys = keys or SandboxKeys()
        self.limits = limits or SandboxLimits()
        self._lock = threading.Lock()
        self._lisoloo: dict[str, _LisolooMessage] = {}
        self._yebolink: dict[str, GatewayRecord] = {}
        self._yebolink_newest: list[GatewayRecord] = []  # newest first, for the list endpoint
        self._last_step_us = 0
        self._buckets: dict[str, dict[str, _Bucket]] = {g: {} for g in GATEWAYS}
        self._gateway_calls = dict.fromkeys(GATEWAYS, 0)  # authenticated calls, for the burst
        self._unauthorized = dict.fromkeys(GATEWAYS, 0)
        self._health = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.add(records)

    # --- truth --------------------------------------------------------------------------------

    def add(self, records: Iterable[GatewayRecord]) -> None:
        """Make more recipients known (a new send)."""
        with self._lock:
            added_yebolink = False
            for r in records:
                t = r.truth
                if r.steps:
                    self._last_step_us = max(self._last_step_us, r.steps[-1][0])
                if t.provider == "lisoloo":
                    msg = self._lisoloo.get(t.message_id)
                    if msg is None:
                        msg = _LisolooMessage(t.message_id, r.created_us, r.total_recipients, [])
                        self._lisoloo[t.message_id] = msg
                    msg.recipients.append(r)
                else:
                    self._yebolink[t.message_id] = r
                    added_yebolink = True
            if added_yebolink:
                # A new list, not an in-place sort: a reader mid-iteration keeps the old one.
                self._yebolink_newest = sorted(
                    self._yebolink.values(),
                    key=lambda r: (r.created_us, r.truth.message_id),
                    reverse=True,
                )

    def add_plan(self, plan: Plan) -> None:
        self.add(plan.ledger)

    @property
    def settled_us(self) -> int:
        """When the last known recipient reaches its final state (epoch µs; 0 with none)."""
        return self._last_step_us

    # --- running ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox API is not running")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port) in the running loop; returns the base URL."""
        app = web.Application(middlewares=[self._json_errors])
        app.router.add_get(f"{LISOLOO_PREFIX}/status/{{message_id}}", self._lisoloo_status)
        app.router.add_get(f"{LISOLOO_PREFIX}/health", self._lisoloo_health)
        app.router.add_get(f"{YEBOLINK_PREFIX}/{{message_id}}", self._yebolink_message)
        app.router.add_get(YEBOLINK_PREFIX, self._yebolink_list)
        app.router.add_get(STATS_PATH, self._stats)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{shown}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_background(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from a thread of its own; returns the base URL once it is listening."""
        loop = asyncio.new_event_loop()
        started: list[BaseException | str] = []
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                started.append(loop.run_until_complete(self.start(host, port)))
            except BaseException as exc:  # handed to the caller, who sees the failed bind
                started.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread_loop = loop
        self._thread = threading.Thread(target=main, name="smswatch-sandbox-api", daemon=True)
        self._thread.start()
        ready.wait()
        outcome = started[0]
        if isinstance(outcome, BaseException):
            self._thread.join()
            self._thread = self._thread_loop = None
            raise outcome
        return outcome

    def stop_background(self) -> None:
        if self._thread is not None and self._thread_loop is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(10)
            self._thread = self._thread_loop = None

    def linger(self, seconds: float) -> None:
        """Block until `seconds` after the last known recipient settled, so a reconciler can
        poll after the run; Ctrl-C ends the wait early."""
        until_us = max(self.clock(), self._last_step_us) + int(seconds * 1_000_000)
        with contextlib.suppress(KeyboardInterrupt):
            while (left := until_us - self.clock()) > 0:
                time.sleep(min(left / 1e6, 0.5))

    # --- accounting ---------------------------------------------------------------------------

    def _admit(self, gateway: str, key: str, now: int) -> _Bucket:
        """Count one authenticated call; raise _Refused if it gets a 429."""
        limits = self.limits
        window = int(limits.window_s * 1_000_000)
        limit = limits.limit(gateway)
        with self._lock:
            bucket = self._buckets[gateway].setdefault(key, _Bucket())
            bucket.calls += 1
            bucket.per_minute[now // 60_000_000] += 1
            for calls in (bucket.attempts, bucket.answered):
                while calls and calls[0] <= now - window:
                    calls.popleft()
            bucket.attempts.append(now)
            bucket.max_in_window = max(bucket.max_in_window, len(bucket.attempts))
            self._gateway_calls[gateway] += 1
            nth = self._gateway_calls[gateway]
            if limits.burst_after < nth <= limits.burst_after + limits.burst_429:
                bucket.burst += 1
                raise _Refused(limits.burst_retry_after, max(limit - len(bucket.answered), 0))
            if len(bucket.answered) >= limit:
                bucket.limited += 1
                wait_us = bucket.answered[0] + window - now
                raise _Refused(max(1, math.ceil(wait_us / 1_000_000)))
            bucket.answered.append(now)
            bucket.served += 1
            bucket.max_served_in_window = max(bucket.max_served_in_window, len(bucket.answered))
            return bucket

    def _remaining(self, gateway: str, bucket: _Bucket) -> int:
        return max(self.limits.limit(gateway) - len(bucket.answered), 0)

    def _key(self, gateway: str, given: str | None) -> str | None:
        """The caller's key if the gateway would accept it."""
        if not given:
            return None
        expected = self.keys.lisoloo_app_key if gateway == "lisoloo" else self.keys.yebolink_api_key
        if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return given

    def stats(self) -> dict[str, Any]:
        """Calls per gateway and per key: `calls` (every authenticated call), `served` (answered
        within the limit, 404s included), `limited` and `burst` (429s), `not_found`,
        `max_in_window` (most calls a key made in any rolling window; what a client's limit is
        checked against), `max_served_in_window`, and `per_minute` (calls per calendar minute)."""
        with self._lock:
            out: dict[str, Any] = {
                "now": iso(self.clock()),
                "window_s": self.limits.window_s,
                "burst": {
                    "calls": self.limits.burst_429,
                    "after": self.limits.burst_after,
                    "retry_after": self.limits.burst_retry_after,
                },
                "health": self._health,
            }
            for gateway in GATEWAYS:
                keys = {key_label(k): b.as_dict() for k, b in self._buckets[gateway].items()}
                per_minute: Counter[str] = Counter()
                for b in keys.values():
                    per_minute.update(b["per_minute"])
                total = {
                    name: sum(b[name] for b in keys.values())
                    for name in ("calls", "served", "limited", "burst", "not_found")
                }
                out[gateway] = {
                    "limit": self.limits.limit(gateway),
                    **total,
                    "max_in_window": max((b["max_in_window"] for b in keys.values()), default=0),
                    "max_served_in_window": max(
                        (b["max_served_in_window"] for b in keys.values()), default=0
                    ),
                    "unauthorized": self._unauthorized[gateway],
                    "per_minute": dict(sorted(per_minute.items())),
                    "keys": keys,
                }
            return out

    def summary(self) -> str:
        """One line per gateway that was called, for the command line's end."""
        stats = self.stats()
        lines = []
        for gateway in GATEWAYS:
            s = stats[gateway]
            if s["calls"] or s["unauthorized"]:
                lines.append(
                    f"sandbox API {gateway}: {plural(s['calls'], 'call')}, "
                    f"at most {s['max_in_window']} "
                    f"in {self.limits.window_s:g} s (limit {s['limit']}), "
                    f"{s['limited']} over the limit, {s['burst']} in the 429 burst, "
                    f"{s['unauthorized']} unauthorized"
                )
        return "\n".join(lines) or "sandbox API: no calls"

    # --- HTTP ---------------------------------------------------------------------------------

    @web.middleware
    async def _json_errors(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Unknown paths and methods answer in the gateway's own error shape, as theirs do."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException as exc:
            if exc.status not in (404, 405):
                raise
            if request.path.startswith(LISOLOO_PREFIX):
                detail = "Not Found" if exc.status == 404 else "Method Not Allowed"
                return web.json_response({"detail": detail}, status=exc.status)
            return web.json_response(
                {"success": False, "error": f"Cannot {request.method} {request.path}"},
                status=exc.status,
            )

    async def _lisoloo_health(self, request: web.Request) -> web.Response:
        with self._lock:
            self._health += 1
        return web.json_response({"status": "ok"})

    async def _lisoloo_status(self, request: web.Request) -> web.Response:
        now = self.clock()
        key = self._key("lisoloo", request.headers.get("app-key"))
        if key is None:
            with self._lock:
                self._unauthorized["lisoloo"] += 1
            return web.json_response({"detail": "Missing or invalid app-key"}, status=401)
        try:
            bucket = self._admit("lisoloo", key, now)
        except _Refused as refused:
            return self._lisoloo_429(refused, now)
        msg = self._lisoloo.get(request.match_info["message_id"])
        if msg is None or msg.created_us > now:
            with self._lock:
                bucket.not_found += 1
            return web.json_response({"detail": "Message not found"}, status=404)
        return web.json_response({"status_code": 200, "data": self._lisoloo_view(msg, now)})

    def _lisoloo_429(self, refused: _Refused, now: int) -> web.Response:
        seconds = refused.retry_after
        body = {
            "success": False,
            "status_code": 429,
            "error_code": "1301",
            "message": f"Rate limit exceeded: retry after {seconds} s.",
            "details": None,
            "timestamp": iso(now),
            "request_id": str(uuid.uuid4()),
            "retryable": True,
            "retry_after": seconds,
        }
        return web.json_response(body, status=429, headers={"Retry-After": str(seconds)})

    @staticmethod
    def _lisoloo_view(msg: _LisolooMessage, now: int) -> dict[str, Any]:
        delivered = failed = 0
        least: str | None = None
        updated = msg.created_us
        for r in list(msg.recipients):  # a copy: the demo may add recipients meanwhile
            status, since = status_at(r, now)
            updated = max(updated, since)
            if status == "delivered":
                delivered += 1
            elif status == "failed":
                failed += 1
            elif least is None or PROGRESS[status] < PROGRESS[least]:
                least = status
        pending = msg.total - delivered - failed
        if pending == 0:
            least = "delivered" if delivered else "failed"
        return {
            "message_id": msg.message_id,
            "status": least or "pending",
            "total_recipients": msg.total,
            "delivered": delivered,
            "failed": failed,
            "pending": pending,
            "created_at": iso(msg.created_us),
            "updated_at": iso(updated),
        }

    def _yebolink_auth(self, request: web.Request, now: int) -> _Bucket | web.Response:
        key = self._key("yebolink", request.headers.get("X-API-Key"))
        if key is None:
            with self._lock:
                self._unauthorized["yebolink"] += 1
            return web.json_response(
                {"success": False, "error": "Invalid or missing API key"}, status=401
            )
        try:
            return self._admit("yebolink", key, now)
        except _Refused as refused:
            headers = {
                "Retry-After": str(refused.retry_after),
                "RateLimit-Limit": str(self.limits.yebolink_per_window),
                "RateLimit-Remaining": str(refused.remaining),
                "RateLimit-Reset": str(refused.retry_after),
            }
            return web.json_response(
                {"success": False, "error": "Too many requests, please try again later."},
                status=429,
                headers=headers,
            )

    def _yebolink_headers(self, bucket: _Bucket) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limits.yebolink_per_window),
            "RateLimit-Remaining": str(self._remaining("yebolink", bucket)),
        }

    async def _yebolink_message(self, request: web.Request) -> web.Response:
        now = self.clock()
        bucket = self._yebolink_auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        headers = self._yebolink_headers(bucket)
        record = self._yebolink.get(request.match_info["message_id"])
        if record is None or record.created_us > now:
            with self._lock:
                bucket.not_found += 1
            return web.json_response(
                {"success": False, "error": "Message not found"}, status=404, headers=headers
            )
        return web.json_response(
            {"success": True, "data": yebolink_view(record, now)}, headers=headers
        )

    async def _yebolink_list(self, request: web.Request) -> web.Response:
        now = self.clock()
        bucket = self._yebolink_auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        headers = self._yebolink_headers(bucket)
        try:
            query = ListQuery.parse(request.query)
        except ValueError as exc:
            return web.json_response(
                {"success": False, "error": str(exc)}, status=400, headers=headers
            )
        matching = []
        for record in self._yebolink_newest:
            if record.created_us > now or not query.created_ok(record.created_us):
                continue
            if query.channel and record.fields.get("channel", "sms") != query.channel:
                continue
            if query.status and status_at(record, now)[0] != query.status:
                continue
            matching.append(record)
        first = (query.page - 1) * query.limit
        page = [yebolink_view(r, now) for r in matching[first : first + query.limit]]
        data = {"messages": page, "page": query.page, "limit": query.limit, "total": len(matching)}
        return web.json_response({"success": True, "data": data}, headers=headers)

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())


def yebolink_view(record: GatewayRecord, now: int) -> dict[str, Any]:
    """One YeboLink message as of `now`, with the fields its webhooks would have carried."""
    t = record.truth
    f = record.fields
    status, since = status_at(record, now)
    data: dict[str, Any] = {
        "message_id": t.message_id,
        "channel": f.get("channel", "sms"),
        "recipient": t.recipient,
        "status": status,
        "credits_used": f.get("credits_used", 1),
    }
    if f.get("metadata"):
        data["metadata"] = f["metadata"]
    data["created_at"] = iso(record.created_us)
    data["updated_at"] = iso(since)
    if status != "queued":
        data["provider_message_id"] = f.get("provider_message_id")
        sent = next((at for at, step in record.steps if step == "sent"), None)
        if sent is not None:
            data["sent_at"] = iso(sent)
    if status == "delivered":
        data["delivered_at"] = iso(since)
    elif status == "failed":
        data["error_code"] = t.error_code
        data["error_message"] = f.get("error_message")
        data["failed_at"] = iso(since)
    return data


@dataclass(frozen=True)
class ListQuery:
    """`GET /api/v1/messages`' filters, validated as the documented ranges say."""

    status: str | None = None
    channel: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    page: int = 1
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, query: Any) -> ListQuery:
        status = query.get("status") or None
        if status is not None and status not in YEBOLINK_STATUSES:
            raise ValueError(f"status must be one of {', '.join(YEBOLINK_STATUSES)}")
        channel = query.get("channel") or None
        if channel is not None and channel not in YEBOLINK_CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(YEBOLINK_CHANNELS)}")
        page = _integer(query.get("page"), "page", 1, None, 1)
        limit = _integer(query.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
        return cls(
            status,
            channel,
            _date(query.get("startDate"), "startDate"),
            _date(query.get("endDate"), "endDate"),
            page,
            limit,
        )

    def created_ok(self, created_us: int) -> bool:
        if self.start_us is not None and created_us < self.start_us:
            return False
        return self.end_us is None or created_us <= self.end_us


def _integer(text: str | None, name: str, low: int, high: int | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}")
    return value


def _date(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        return to_us(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date") from None
