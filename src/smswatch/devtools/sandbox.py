"""A sandbox of the gateways' status APIs, answering from the simulator's own truth.

A reconciler polls the gateways for what their webhooks never brought (issue 14). To test it
without the real gateways, `smswatch simulate --api-port` (or the demo, or a test, in-process)
runs this server beside the simulated traffic. It knows every recipient the way the gateway does
(`smswatch.devtools.simulate.GatewayRecord`: each step with its time, whether or not the webhook was
sent) and answers as of the clock's now: a recipient delivered at t is delivered only once the
clock has passed t, so a poll during a run sees pending recipients. A message that the clock
has not reached yet (its send lies in the future) is unknown: 404.

Each gateway's endpoints and answers live in its package (`smswatch.gateways.<name>.sandbox`,
e.g. Lisoloo's status API, YeboLink's messages API); this module is what they share: the truth,
the keys, the rate limits, the counters and the server. Base = `SandboxAPI.url`.

Sandbox: `GET /_sandbox/stats` → JSON counters (see `SandboxAPI.stats`), no auth.

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
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from smswatch.devtools.simulate import Plan
from smswatch.gateways.registry import GATEWAYS as REGISTRY
from smswatch.gateways.sandboxing import (
    Bucket,
    Clock,
    GatewayRecord,
    GatewaySandbox,
    Refused,
    SandboxKeys,
    key_label,
)
from smswatch.timefmt import iso, now_us
from smswatch.words import plural

STATS_PATH = "/_sandbox/stats"


class ManualClock:
    """A clock a test moves by hand, so a rolling minute need not take a minute."""

    def __init__(self, us: int) -> None:
        self.us = us

    def __call__(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


@dataclass(frozen=True)
class SandboxLimits:
    lisoloo_per_window: int = 120  # GET /status per key (gateways.md §1.6)
    yebolink_per_window: int = 60  # not published: our guess for a polling endpoint
    # Twilio limits concurrent requests, not a rate (error 20429): a rate that a client
    # pacing itself at reconcile.config.TWILIO_RATE stays within.
    twilio_per_window: int = 60
    # Vonage's Reports API answers 10 synchronous requests a second.
    vonage_per_window: int = 600
    # Infobip publishes no limit for its reports and logs: the client's own pace.
    infobip_per_window: int = 60
    # Telnyx publishes none for its detail records: one that keeps a runaway client in check.
    telnyx_per_window: int = 600
    # Plivo limits per account and publishes no figure for its Message API: a guess.
    plivo_per_window: int = 60
    # Sinch's limit is per service plan and not published for these endpoints: one a second.
    sinch_per_window: int = 60
    window_s: float = 60.0
    burst_429: int = 0  # fault: this many calls to each gateway's API get 429 ...
    burst_after: int = 3  # ... once this many have been made
    burst_retry_after: int = 1  # seconds, in the burst's Retry-After

    def limit(self, gateway: str) -> int:
        return _sandbox_class(gateway).limit(self)


def _sandbox_class(gateway: str) -> type[GatewaySandbox]:
    cls = REGISTRY[gateway].sandbox()
    if cls is None:
        raise KeyError(f"{gateway} has no sandbox")
    return cls


def _sandboxed() -> tuple[str, ...]:
    return tuple(name for name, g in REGISTRY.items() if g.sandbox() is not None)


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
        self.lock = threading.Lock()
        self.gateways = _sandboxed()
        self._sandboxes = {g: _sandbox_class(g)(self) for g in self.gateways}
        self._last_step_us = 0
        self._buckets: dict[str, dict[str, Bucket]] = {g: {} for g in self.gateways}
        self._gateway_calls = dict.fromkeys(self.gateways, 0)  # authenticated calls, for the burst
        self._unauthorized = dict.fromkeys(self.gateways, 0)
        self._health = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.add(records)

    # --- truth --------------------------------------------------------------------------------

    def add(self, records: Iterable[GatewayRecord]) -> None:
        """Make more recipients known (a new send)."""
        with self.lock:
            touched = set()
            for r in records:
                sandbox = self._sandboxes.get(r.truth.provider)
                if sandbox is None:  # a gateway with no status API (Africa's Talking)
                    continue
                if r.steps:
                    self._last_step_us = max(self._last_step_us, r.steps[-1][0])
                sandbox.add(r)
                touched.add(sandbox.name)
            for name in self.gateways:
                if name in touched:
                    self._sandboxes[name].added()

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
        for sandbox in self._sandboxes.values():
            sandbox.route(app)
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
        # Ctrl-C gets a handler of its own for the wait: under the parallel test suite the
        # process was once seen sleeping on after a SIGINT (its handler no longer Python's).
        interrupted = threading.Event()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if main else None
        try:
            with contextlib.suppress(KeyboardInterrupt):
                while (left := until_us - self.clock()) > 0 and not interrupted.is_set():
                    interrupted.wait(min(left / 1e6, 0.5))
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    # --- accounting ---------------------------------------------------------------------------

    def admit(self, gateway: str, key: str, now: int) -> Bucket:
        """Count one authenticated call; raise Refused if it gets a 429."""
        limits = self.limits
        window = int(limits.window_s * 1_000_000)
        limit = limits.limit(gateway)
        with self.lock:
            bucket = self._buckets[gateway].setdefault(key, Bucket())
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
                raise Refused(limits.burst_retry_after, max(limit - len(bucket.answered), 0))
            if len(bucket.answered) >= limit:
                bucket.limited += 1
                wait_us = bucket.answered[0] + window - now
                raise Refused(max(1, math.ceil(wait_us / 1_000_000)))
            bucket.answered.append(now)
            bucket.served += 1
            bucket.max_served_in_window = max(bucket.max_served_in_window, len(bucket.answered))
            return bucket

    def remaining(self, gateway: str, bucket: Bucket) -> int:
        return max(self.limits.limit(gateway) - len(bucket.answered), 0)

    def key(self, gateway: str, given: str | None) -> str | None:
        """The caller's key if the gateway would accept it."""
        if not given:
            return None
        expected = self._sandboxes[gateway].expected_key(self.keys)
        if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return given

    def count_unauthorized(self, gateway: str) -> None:
        with self.lock:
            self._unauthorized[gateway] += 1

    def count_health(self) -> None:
        with self.lock:
            self._health += 1

    def stats(self) -> dict[str, Any]:
        """Calls per gateway and per key: `calls` (every authenticated call), `served` (answered
        within the limit, 404s included), `limited` and `burst` (429s), `not_found`,
        `max_in_window` (most calls a key made in any rolling window; what a client's limit is
        checked against), `max_served_in_window`, and `per_minute` (calls per calendar minute)."""
        with self.lock:
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
            for gateway in self.gateways:
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
        for gateway in self.gateways:
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
            for sandbox in self._sandboxes.values():
                answer = sandbox.unrouted(request, exc.status)
                if answer is not None:
                    return answer
            # Elsewhere, Express's default answer (what a Node gateway's API gives).
            return web.json_response(
                {"success": False, "error": f"Cannot {request.method} {request.path}"},
                status=exc.status,
            )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())
