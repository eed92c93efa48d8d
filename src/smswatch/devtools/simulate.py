"""Realistic campaign traffic for each gateway (Lisoloo, YeboLink, Twilio, Vonage, Africa's
Talking, Infobip, Telnyx, Plivo, Sinch), sent over real HTTP.

A campaign is planned up front from a seeded RNG, so `--seed` makes it repeatable and `--truth`
can say exactly how every recipient must end:

- Lisoloo: one `sms.queued` per message (totals, cost), then per recipient `sms.processing` →
  `sms.sent` → `sms.delivered`, or `sms.failed` (before or after sent) with 15xx codes.
- YeboLink: a bulk send is one message per recipient, each `message.queued` → `message.sent` →
  `message.delivered | message.failed` with Twilio-style codes and the sender's `metadata`.
- Twilio: a bulk send is one message per recipient, its status callbacks posted as signed forms
  (`queued` → `sending` → `sent` → `delivered | undelivered`, or `failed`), with 30xxx codes.
- Vonage: a send is one message id per SMS part and recipient, sharing a `client-ref`, with
  signed receipts (GET queries by default, or forms or JSON: `accepted | buffered` →
  `delivered | expired | failed | rejected | undelivered | unknown`) and err-codes; or through
  the Messages API, one message per recipient with JWT-signed JSON callbacks.
- Africa's Talking: a bulk send is one message (one `id`) per recipient, its delivery reports
  posted as forms to the callback URL with its `?token=` (`Sent` → `Submitted` → `Buffered` →
  `Success | Failed | Rejected`), with its `failureReason`s.
- Infobip: a bulk send (one `bulkId`) is one message per destination, its delivery reports
  batched as Infobip posts them: every report ready within the same second, up to 100 a post,
  in one `{"results": [...]}` with Basic auth (`PENDING_ENROUTE` → `DELIVERED_TO_OPERATOR` →
  `DELIVERED_TO_HANDSET`, or `UNDELIVERABLE_*`, `EXPIRED_*`, `REJECTED_*` with their errors).
- Telnyx: a bulk send is one message (one `payload.id`) per recipient, or now and then a group
  MMS to several, its `message.sent` and `message.finalized` signed with Ed25519 by
  `--telnyx-signing-key` (`queued | sending | sent` → `delivered | delivery_failed | expired |
  sending_failed | delivery_unconfirmed`), with its 40xxx codes.
- Plivo: a bulk send is one message (one `MessageUUID`) per destination, from a number or a
  Powerpack, its status callbacks posted as forms signed with X-Plivo-Signature-V3 and a fresh
  nonce (`queued` → `sent` → `delivered | undelivered`, or `failed`, each with its Sequence),
  with its ErrorCodes.
- Sinch: a batch (one `batch_id`) to many recipients, its reports signed with HMAC-SHA256 by
  `--sinch-webhook-secret` (or sent with `--sinch-basic-auth`): per recipient (`Queued` →
  `Dispatched` → `Delivered | Failed | Rejected | Expired | Deleted | Aborted | Unknown`), or
  one `full` batch report listing the recipients of each status.

Delays follow what the gateways describe (seconds to reach the carrier, a long tail to the
handset), divided by `--speed`. Each delivery gets network jitter and a few get held back for
seconds, so arrival order differs from event order as the Lisoloo docs warn; `--duplicate-rate`
resends some events with the same bytes (same event_id), as a gateway retry would; for a
gateway that batches, the whole post is sent again. Like a
gateway, the sender retries on 5xx, timeouts and refused connections with backoff, and gives up
after `--max-attempts`; a 4xx is not retried. Until something has answered, though, refused
connections mean nothing listens at the URL: the run stops within seconds and says so.

`--drop-rate` plays the webhooks a gateway gave up on after its own retries failed: for that
share of recipients the final event (`sms.delivered|failed`, `message.delivered|failed`), and
for some of them the one before it too, is never sent. The gateway still knows how they ended:
`Plan.ledger` holds what it knows of every recipient, with the time of each step, and the
sandbox status APIs (smswatch.devtools.sandbox) answer from it; the truth file says which recipients
lost their final webhook, so a test knows exactly what a reconciler must recover.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import json
import math
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from yarl import URL

from smswatch.config import Credentials
from smswatch.gateways.base import outgoing
from smswatch.gateways.registry import GATEWAYS, gateway
from smswatch.gateways.sandboxing import GatewayRecord
from smswatch.timefmt import iso, now_us

PROVIDERS = tuple(GATEWAYS)
# What `--provider mixed` alternates over: the seeds, as it did before Twilio. The suites that
# run mixed traffic check forwards byte for byte as JSON and count the seeds' messages; posting
# JSON is not enough to join (Telnyx does, signed by a key those suites do not set): a gateway's
# own traffic is `--provider NAME`. The seeds are the gateways whose credentials are
# Credentials' own fields. (Infobip posts JSON too, but in batches, which a forward, one a
# report, does not copy byte for byte.)
MIXED = tuple(name for name, g in GATEWAYS.items() if g.credential is None)

# Of the recipients whose final webhook is dropped, the share that lost the one before it too
# (the receiving end was down for a while, not for one request).
ALSO_DROP_PREVIOUS = 0.3
# A gateway that batches (Infobip) posts the reports that became ready within this many
# simulated seconds of the first one together, up to its own most per post.
BATCH_WINDOW_S = 1.0


@dataclass(frozen=True)
class SimConfig:
    url: str = "http://127.0.0.1:8787"
    provider: str = "lisoloo"  # a gateway's name (the registry's), or mixed
    messages: int = 10
    recipients: int = 20
    rate: float = 500.0  # events per second at most
    fail_rate: float = 0.08
    duplicate_rate: float = 0.05
    seed: int | None = None
    speed: float = 1.0  # divide realistic delays by this
    spread: float = 0.0  # seconds over which message starts are spread (before --speed)
    concurrency: int = 16
    max_attempts: int = 8
    timeout: float = 10.0
    basic_auth: tuple[str, str] | None = None
    yebolink_secret: str | None = None
    drop_rate: float = 0.0  # share of recipients whose final webhook the gateway gave up on
    # The other gateways' credentials, by setting (core/credentials.py GATEWAY_CREDENTIALS):
    # what they sign with, like yebolink_secret.
    tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def credentials(self) -> Credentials:
        """What each gateway signs the simulated posts with (`Gateway.resign`)."""
        return Credentials(self.basic_auth, self.yebolink_secret, self.tokens)


@dataclass(order=True)
class Delivery:
    """One POST to make: a webhook body and when to send it."""

    due: float  # seconds after the run starts
    seq: int
    provider: str = field(compare=False)
    body: bytes = field(compare=False)
    label: str = field(compare=False)
    attempt: int = field(default=1, compare=False)
    line: int | None = field(default=None, compare=False)  # in a replayed file


@dataclass(frozen=True)
class Truth:
    """How one recipient of the plan must end. Fields are only ever added (at the end, with a
    default), as `--truth` files are read by tests and scripts."""

    provider: str
    message_id: str
    recipient: str
    state: str
    error_code: str | None
    carrier: str | None
    # A failure because the number is bad for good: it belongs on the do-not-send list.
    permanent: bool = False
    # The campaign the sender named for the message (YeboLink metadata); None when the
    # traffic names none (Lisoloo's webhooks carry no metadata).
    campaign: str | None = None
    # The gateway gave up on the final webhook (--drop-rate): `state` is known only to its
    # status API, and the webhooks that were sent end at `webhook_state`.
    dropped: bool = False
    # The state the webhooks actually sent bring the recipient to (None: `state`).
    webhook_state: str | None = None
    # When the gateway reached `state` (ISO 8601), whether or not its webhook was sent.
    final_at: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "recipient": self.recipient,
            "state": self.state,
            "error_code": self.error_code,
            "carrier": self.carrier,
            "permanent": self.permanent,
            "campaign": self.campaign,
            "dropped": self.dropped,
            "webhook_state": self.webhook_state or self.state,
            "final_at": self.final_at,
        }


@dataclass
class Plan:
    deliveries: list[Delivery]
    truth: list[Truth]
    events: int  # unique events sent (deliveries minus duplicate copies; dropped ones excluded)
    ledger: list[GatewayRecord] = field(default_factory=list)  # one per recipient, like truth
    dropped_events: int = 0  # events the gateway gave up on (--drop-rate), never sent


@dataclass
class Result:
    planned: int = 0
    acked: int = 0
    acked_duplicate: int = 0
    retried: int = 0
    rejected: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    in_flight: int = 0  # sent and not answered yet
    # Replayed lines not acknowledged (nor refused with a 4xx) yet: where to resume.
    open_lines: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and self.dropped == 0

    def note(self, kind: str, detail: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.first_errors) < 5:
            self.first_errors.append(detail)


class _Planner:
    def __init__(self, config: SimConfig, t0_us: int) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.t0 = t0_us
        # (sim time, provider, body, label, batch): `batch`, for a report a gateway posts in
        # batches, is (the batch's list key, its most reports a post).
        self.events: list[tuple[float, str, dict[str, Any], str, tuple[str, int] | None]] = []
        self.truth: list[Truth] = []
        self.ledger: list[GatewayRecord] = []
        self.dropped: set[int] = set()  # indexes into `events` that are never sent
        # Drops draw from their own generator, the same number of draws per recipient, so a
        # seed plans the same traffic at any drop rate and a higher rate drops a superset.
        self.drop_rng = random.Random(None if config.seed is None else f"drop:{config.seed}")

    @property
    def recipients(self) -> int:
        return self.c.recipients

    @property
    def fail_rate(self) -> float:
        return self.c.fail_rate

    def emit(
        self,
        at: float,
        provider: str,
        body: dict[str, Any],
        label: str,
        batch: tuple[str, int] | None = None,
    ) -> int:
        self.events.append((at, provider, body, label, batch))
        return len(self.events) - 1

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def us(self, sim_s: float) -> int:
        # Event times follow the compressed clock, so they never lie in the future.
        return self.t0 + int(sim_s / self.c.speed * 1e6) // 1000 * 1000

    def stamp(self, sim_s: float) -> str:
        return iso(self.us(sim_s)) or ""

    def close(
        self,
        how: tuple[Any, ...],
        marks: list[tuple[int, float, str]],
        created: float,
        total: int = 1,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Settle one recipient: whether the gateway gave up on its last webhooks, and what the
        gateway knows of it. `how` is the Truth's leading fields; `marks` are the recipient's own
        events: (index in events, sim time, status)."""
        drop = self.drop_rng.random() < self.c.drop_rate
        also_previous = self.drop_rng.random() < ALSO_DROP_PREVIOUS
        # A recipient whose only webhook is its final one (a Twilio message refused at once)
        # keeps it: dropped, it would be unknown to the monitor, with nothing to reconcile.
        drop = drop and len(marks) > 1
        kept = len(marks)
        if drop:
            kept -= 1
            # Keep the recipient's first event at least, so the monitor knows the recipient.
            if also_previous and kept >= 2:
                kept -= 1
            self.dropped.update(index for index, _, _ in marks[kept:])
        final_at = self.stamp(marks[-1][1])  # the final event's own time
        truth = Truth(*how, dropped=drop, webhook_state=marks[kept - 1][2], final_at=final_at)
        self.truth.append(truth)
        steps = tuple((self.us(at), status) for _, at, status in marks)
        self.ledger.append(
            GatewayRecord(truth, self.us(created), steps, total, fields if fields else {})
        )

    def handset_delay(self, pace: float = 1.0) -> float:
        return min(self.rng.lognormvariate(math.log(3.0 * pace), 0.6), 25.0)

    def pick(self, table: tuple[Any, ...]) -> Any:
        weights = [row[-1] for row in table]
        return self.rng.choices(table, weights=weights)[0]

    def plan(self) -> None:
        for i in range(self.c.messages):
            provider = self.c.provider
            if provider == "mixed":
                provider = MIXED[i % len(MIXED)]
            start = self.rng.uniform(0, self.c.spread) if self.c.spread else 0.0
            GATEWAYS[provider].simulate(self, start)

    # --- arrival order ----------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        out: list[Delivery] = []
        seq = 0
        batched: dict[tuple[str, str, int], list[tuple[float, int, dict[str, Any], str]]] = {}
        for index, (at, provider, body, label, batch) in enumerate(self.events):
            if batch is not None:
                # Posted with its neighbours (below); a dropped one is in no post.
                if index not in self.dropped:
                    batched.setdefault((provider, *batch), []).append((at, index, body, label))
                continue
            arrive = at + self.rng.expovariate(1 / 0.15)
            if self.rng.random() < 0.05:  # held back: a slow response upstream
                arrive += self.rng.uniform(0.5, 4.0)
            copies = [arrive]
            if self.rng.random() < self.c.duplicate_rate:
                copies.append(arrive + self.rng.uniform(0.05, 2.0))
            if index in self.dropped:
                # Drawn for all the same, so every other event arrives as it would undropped.
                continue
            # As the gateway posts it: the JSON as it is, a form gateway's fields as a form.
            raw = GATEWAYS[provider].post_body(json.dumps(body, separators=(",", ":")))
            for when in copies:
                out.append(Delivery(when / self.c.speed, seq, provider, raw, label))
                seq += 1
        for (provider, key, most), reports in batched.items():
            reports.sort()
            posts = 0
            while reports:
                first = reports[0][0]
                size = 0
                while size < min(most, len(reports)) and reports[size][0] <= first + BATCH_WINDOW_S:
                    size += 1
                group, reports = reports[:size], reports[size:]
                posts += 1
                arrive = group[-1][0] + self.rng.expovariate(1 / 0.15)
                if self.rng.random() < 0.05:
                    arrive += self.rng.uniform(0.5, 4.0)
                copies = [arrive]
                if self.rng.random() < self.c.duplicate_rate:  # the whole post, sent again
                    copies.append(arrive + self.rng.uniform(0.05, 2.0))
                post = {key: [body for _, _, body, _ in group]}
                raw = GATEWAYS[provider].post_body(json.dumps(post, separators=(",", ":")))
                label = f"batch {posts} of {len(group)} ({group[0][3]}, ...)"
                for when in copies:
                    out.append(Delivery(when / self.c.speed, seq, provider, raw, label))
                    seq += 1
        out.sort()
        return out


def plan_campaign(config: SimConfig, t0_us: int | None = None) -> Plan:
    planner = _Planner(config, now_us() if t0_us is None else t0_us)
    planner.plan()
    dropped = len(planner.dropped)
    return Plan(
        planner.deliveries(),
        planner.truth,
        len(planner.events) - dropped,
        planner.ledger,
        dropped,
    )


def webhook_url(base: str, provider: str) -> str:
    """The URL to post a gateway's events to: `base` may be the server's root, its /webhooks
    route, or a full gateway URL."""
    base = base.rstrip("/")
    if base.endswith("/webhooks"):
        return f"{base}/{provider}"
    if "/webhooks/" in base:
        return base
    return f"{base}/webhooks/{provider}"


def signed_request(
    provider: str, body: bytes, credentials: Credentials, url: str
) -> tuple[str, str, dict[str, str], bytes | None]:
    """A post of `body` to `url` as `provider` posts it: (method, URL, headers, data), signed as
    the gateway signs its posts (the same re-signing as a forward's), a GET for a query body."""
    headers = {"Content-Type": "application/json", "User-Agent": "smswatch-simulate"}
    origin = gateway(provider)
    if origin is not None:
        signed = origin.resign(body, credentials, url)
        if signed.basic_auth:
            token = base64.b64encode(":".join(signed.basic_auth).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        headers.update(signed.headers)
        body = signed.body if signed.body is not None else body
    method, target, data = outgoing(url, body)
    if data is None:
        headers.pop("Content-Type", None)  # a GET has no body to type
    return method, target, headers, data


def request_headers(
    provider: str, body: bytes, credentials: Credentials, url: str
) -> dict[str, str]:
    """The headers of a post of `body` to `url` as `provider` posts it."""
    return signed_request(provider, body, credentials, url)[2]


# Before anything has answered, refused connections are retried this long (a listener that is
# just starting), then the run stops: nothing listens at the URL. Once one request was answered,
# refusals are a restart mid-run, retried on the full schedule.
UNREACHABLE_AFTER_S = 2.0
FIRST_RETRY_S = 0.25


class Unreachable(Exception):
    """Nothing answered at the URL: every connection so far was refused (or its name unknown)."""


def backoff(attempt: int) -> float:
    """A gateway's 30s → 2m → 10m → 1h schedule, compressed to seconds."""
    return min(0.25 * 2 ** (attempt - 1), 8.0)


class Sender:
    """Sends planned deliveries in due order at a capped rate, retrying like a gateway."""

    def __init__(
        self,
        config: SimConfig,
        acked_out: TextIO | None = None,
        on_progress: Callable[[Result], None] | None = None,
        result: Result | None = None,
    ) -> None:
        """`result` is filled in as the run goes, so a caller interrupted mid-run can still
        say what was acknowledged."""
        self.c = config
        self.credentials = config.credentials
        self.acked_out = acked_out
        self.on_progress = on_progress
        self.result = result if result is not None else Result()
        self.answered = False
        self.refused_since: float | None = None
        self.refusal = ""  # the last refused connection's reason
        self.unreachable: str | None = None

    async def run(self, deliveries: list[Delivery]) -> Result:
        heap = list(deliveries)
        heapq.heapify(heap)
        self.result.planned = len(heap)
        self.result.open_lines = {d.line for d in heap if d.line is not None}
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_slot = start
        wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        active = 0
        limit = asyncio.Semaphore(self.c.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.c.timeout)
        connector = aiohttp.TCPConnector(limit=self.c.concurrency, force_close=False)
        seq = len(heap)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def post(d: Delivery) -> None:
                nonlocal seq, active
                try:
                    retry = await self._post(session, d)
                finally:
                    limit.release()
                    active -= 1
                    self.result.in_flight = active
                    wake.set()
                if not retry and d.line is not None:
                    self.result.open_lines.discard(d.line)
                if retry:
                    if d.attempt >= self.c.max_attempts:
                        self.result.dropped += 1
                        if not self.answered and self.refused_since is not None:
                            self.unreachable = self.refusal
                    else:
                        self.result.retried += 1
                        wait = backoff(d.attempt) if self.answered else FIRST_RETRY_S
                        again = Delivery(
                            loop.time() - start + wait,
                            seq,
                            d.provider,
                            d.body,
                            d.label,
                            d.attempt + 1,
                            d.line,
                        )
                        heapq.heappush(heap, again)
                        seq += 1
                        wake.set()
                if self.on_progress:
                    self.on_progress(self.result)

            while heap or active:
                if self.unreachable is not None:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise Unreachable(f"nothing answers at {self.c.url} ({self.unreachable})")
                if not heap:
                    wake.clear()
                    await wake.wait()
                    continue
                send_at = max(start + heap[0].due, next_slot)
                delay = send_at - loop.time()
                if delay > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=delay)
                    continue
                d = heapq.heappop(heap)
                next_slot = max(next_slot, loop.time()) + 1.0 / self.c.rate
                await limit.acquire()
                active += 1
                self.result.in_flight = active
                task = asyncio.create_task(post(d))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        return self.result

    async def _post(self, session: aiohttp.ClientSession, d: Delivery) -> bool:
        """Send one delivery; True if it should be retried."""
        # As the gateway calls it: with the token its callback URL carries (Africa's Talking).
        url = self.credentials.in_url(d.provider, webhook_url(self.c.url, d.provider))
        method, target, headers, data = signed_request(d.provider, d.body, self.credentials, url)
        try:
            # Encoded already: the query a gateway signs must go as it is.
            request = session.request(method, URL(target, encoded=True), data=data, headers=headers)
            async with request as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.result.note("connection", f"{d.label}: {type(exc).__name__}: {exc}")
            if not self.answered and isinstance(exc, aiohttp.ClientConnectorError):
                self.refused(exc)
            return True
        self.answered = True
        if 200 <= status < 300:
            self.result.acked += 1
            try:
                answer = json.loads(text)
            except ValueError:
                answer = {}
            if answer.get("status") == "duplicate":
                self.result.acked_duplicate += 1
            if self.acked_out is not None:
                record = {"provider": d.provider, "label": d.label, "status": status, **answer}
                self.acked_out.write(json.dumps(record) + "\n")
            return False
        if status >= 500 or status in (408, 429):
            self.result.note(f"http {status}", f"{d.label}: {status} {text[:200]}")
            return True
        self.result.rejected += 1
        self.result.note(f"http {status}", f"{d.label}: {status} {text[:200]}")
        return False

    def refused(self, exc: aiohttp.ClientConnectorError) -> None:
        now = asyncio.get_running_loop().time()
        if self.refused_since is None:
            self.refused_since = now
        error = exc.os_error
        # "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', …)".
        known = (error.errno or 0) > 0  # a DNS failure's is negative: its strerror says it
        self.refusal = os.strerror(error.errno) if known else str(error.strerror or error)
        if now - self.refused_since >= UNREACHABLE_AFTER_S:
            self.unreachable = self.refusal


def write_truth(truth: list[Truth], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for t in truth:
            f.write(json.dumps(t.record()) + "\n")
