"""The forwarder: takes due forwards from the outbox, POSTs them, records what the app answered.

Runs in a child process (`python -m smswatch.forward`), at a lower priority. It reads its
configuration, credentials included, as one JSON line on stdin (never argv, which `ps` shows),
then keeps stdin open as its lifeline: when the engine stops, or dies, stdin closes and the
forwarder finishes the attempts in flight, records them and exits.

Delivery is at least once: an attempt whose answer was not recorded (the process killed) is
made again. The app can tell by the `X-Smswatch-Event-Id` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from smswatch import __version__
from smswatch.core.domain import POLLED_PREFIX
from smswatch.core.forwarding import Attempt, Job, Outcome
from smswatch.forward.config import ForwardConfig
from smswatch.gateways.base import JSON, Gateway, Resigned, outgoing
from smswatch.gateways.registry import gateway
from smswatch.store import backend_for
from smswatch.store.queries.outbox import EXCERPT
from smswatch.timefmt import now_us

log = logging.getLogger(__name__)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """A target URL without its user:password, and those (sent as Basic auth, not in the URL)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    creds = (unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), creds


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _wired(job: Job) -> Gateway | None:
    """The gateway whose own way a forward is posted and signed: the stored JSON as it came, a
    form gateway's payload as a form again. None for a status API's answer to a form gateway
    (JSON that gateway never posts, so nothing it could sign): that goes as the JSON it is."""
    origin = gateway(job.provider)
    polled = job.event_type.startswith(POLLED_PREFIX)
    if origin is not None and polled and origin.adapter.body_format != JSON:
        return None
    return origin


IDLE_POLL = 0.1  # seconds between looks at the outbox with nothing in flight
RETRY_STORE = 1.0  # seconds before trying an outbox that failed again


class Forwarder:
    def __init__(
        self, db: str | Path, config: ForwardConfig, clock: Callable[[], int] = now_us
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        # With a shared PostgreSQL store, this process's claims are leased for longer than an
        # attempt can take: another instance's forwarder takes them over only if this one died.
        lease = int((2 * config.timeout + 5) * 1_000_000)
        self.outbox = backend_for(db).open_outbox(instance_name(), lease)
        self._inflight: dict[tuple[int, str], asyncio.Task[Outcome]] = {}
        self._done: list[Outcome] = []
        self._wake = asyncio.Event()
        self._trouble: str | None = None  # why the outbox failed last, until it works again
        self._failing: dict[str, bool] = {}  # a target whose last recorded attempt failed
        self.credentials = config.credentials()

    def _headers(
        self, job: Job, body: bytes, url_auth: tuple[str, str] | None, url: str | None = None
    ) -> dict[str, str]:
        """The headers of a forward of `body` to `url` (the job's target without its
        credentials, by default)."""
        return self._request(job, body, url_auth, url)[0]

    def _request(
        self, job: Job, body: bytes, url_auth: tuple[str, str] | None, url: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and the body of a forward of `body` to `url`: the body as given, or
        as its gateway re-signed it (a signature inside the fields, Vonage's)."""
        if url is None:
            url = split_credentials(job.target)[0]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"smswatch/{__version__} (forward)",
            "X-Smswatch-Event-Id": job.event_id,
            **self.config.headers,
        }
        # Each gateway re-signs its own forwards as its posts are signed (the app checks them
        # as it checks the gateway's); credentials in the target's URL are that app's own, and
        # win over a gateway's Basic auth for every forward.
        origin = _wired(job)
        signed = origin.resign(body, self.credentials, url) if origin is not None else Resigned()
        basic = url_auth or signed.basic_auth
        if basic:
            token = base64.b64encode(":".join(basic).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        headers.update(signed.headers)
        if job.event_type.startswith(POLLED_PREFIX):
            # A status API's answer (only with --forward-polled): the gateway never sent it as
            # a webhook, so the app can tell it apart. The auth stays, so the app's route takes it.
            headers["X-Smswatch-Polled"] = "1"
        return headers, signed.body if signed.body is not None else body

    async def send(self, session: aiohttp.ClientSession, job: Job) -> Outcome:
        at = self.clock()
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        url, url_auth = split_credentials(job.target)
        try:
            origin = _wired(job)
            body = origin.post_body(job.payload) if origin is not None else job.payload.encode()
            headers, body = self._request(job, body, url_auth, url)
            # A query body goes as a GET, as its gateway sent it (Vonage's receipts).
            method, target, data = outgoing(url, body)
            if data is None:
                headers.pop("Content-Type", None)
            async with session.request(
                method, URL(target, encoded=True), data=data, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                answer = await resp.content.read(EXCERPT * 4)
                error = None if 200 <= status < 300 else answer.decode("utf-8", "replace")[:EXCERPT]
                with contextlib.suppress(TypeError, ValueError):
                    retry_after = float(resp.headers.get("Retry-After", ""))
        except TimeoutError:
            error = f"no answer within {self.config.timeout:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:EXCERPT]
        except Exception as exc:  # a request that cannot even be made (a bad URL): final
            error = f"cannot send: {type(exc).__name__}: {exc}"[:EXCERPT]
            ms = int((time.monotonic() - started) * 1000)
            return Outcome(job, Attempt(job.event, job.target, at, None, error, ms), False)
        ms = int((time.monotonic() - started) * 1000)
        attempt = Attempt(job.event, job.target, at, status, error, ms)
        if status is not None and 200 <= status < 300:
            return Outcome(job, attempt, delivered=True)
        tries = job.attempts + 1
        if self.config.retryable(status) and tries < self.config.max_attempts:
            wait = self.config.delay(tries, retry_after)
            return Outcome(job, attempt, delivered=False, retry_at=at + int(wait * 1_000_000))
        return Outcome(job, attempt, delivered=False)

    async def run(self, stop: asyncio.Event) -> None:
        while True:  # a store that cannot be reached yet (an outage): wait for it
            try:
                await self.outbox.open()
                break
            except Exception as exc:
                log.warning("cannot open the outbox: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_STORE)
                if stop.is_set():
                    return
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        limit = self.config.concurrency * max(len(self.config.targets), 1)
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=self.config.concurrency)
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                while not stop.is_set():
                    try:
                        await self._step(session)
                    except Exception as exc:  # the store is away or busy: wait, and again
                        if self._trouble is None:
                            log.warning("cannot read or write the outbox: %s", exc)
                        self._trouble = str(exc)
                        await asyncio.sleep(RETRY_STORE)
                        with contextlib.suppress(Exception):
                            await self.outbox.reopen()
                        continue
                    self._trouble = None
                    await self._pause(stop)
                # Stopping: let what is in flight finish (bounded by the timeout), keep it.
                if self._inflight:
                    await asyncio.wait(list(self._inflight.values()))
                await self._record()
        finally:
            await self.outbox.close()

    async def _step(self, session: aiohttp.ClientSession) -> None:
        now = self.clock()
        await self.outbox.enqueue(self.config.targets, now)
        await self._record()
        for target in self.config.targets:
            busy = sum(1 for key in self._inflight if key[1] == target.url)
            free = self.config.concurrency - busy
            if free <= 0:
                continue
            # Not those in flight, nor those finished whose outcome is not recorded yet (they
            # finished during an await above): both are still pending in the outbox.
            skip = [*self._inflight, *((o.job.event, o.job.target) for o in self._done)]
            jobs = await self.outbox.due(now, free, skip, target.url)
            for job in jobs:
                task = asyncio.create_task(self.send(session, job))
                key = (job.event, job.target)
                self._inflight[key] = task
                task.add_done_callback(lambda t, key=key: self._finished(key, t))

    def _finished(self, key: tuple[int, str], task: asyncio.Task[Outcome]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self._done.append(task.result())
        self._wake.set()

    async def _record(self) -> None:
        done, self._done = self._done, []
        if done:
            try:
                await self.outbox.record(done)
            except BaseException:
                self._done = done + self._done  # recorded at the next try
                raise
            # An app that answers again after failing: what waits out a backoff (up to
            # minutes) goes now, not when its timer says.
            for target in {o.job.target for o in done if o.delivered}:
                if self._failing.get(target):
                    await self.outbox.hurry(target, self.clock())
            for o in done:
                self._failing[o.job.target] = not o.delivered

    async def _pause(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=IDLE_POLL, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


def main() -> None:
    """The child process: `python -m smswatch.forward DB` with the configuration on stdin."""
    logging.basicConfig(level=logging.WARNING, format="smswatch forwarder: %(message)s")
    db = sys.argv[1]
    config = ForwardConfig.from_json(sys.stdin.readline())
    with contextlib.suppress(OSError):
        os.nice(config.nice)

    # ^C and a closed terminal reach the whole process group: the engine decides when this
    # process stops (by closing stdin), so that the attempts in flight are recorded first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The lifeline: stdin closes when the engine stops or dies.
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 4096) else None)
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # a service manager stopping us all
        await Forwarder(db, config).run(stop)

    from smswatch.loops import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run())
