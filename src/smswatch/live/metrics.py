"""Prometheus metrics for `smswatch serve`, on a port of their own (never the webhook port).

Nearly everything is read when Prometheus scrapes, from counters the engine keeps anyway: the
hub's (events, duplicates, rejections by reason, messages, recipients by state, store health),
the writer's queue and the feed's viewers. A scrape runs on the metrics server's own thread and
only reads attributes (single loads and dict copies, atomic under the GIL): it never waits for,
or runs on, the engine's loop. Two numbers exist nowhere else and cost each webhook a little:
requests per gateway route (a dict increment in the listener, always on) and the commit latency
(a `perf_counter()` pair and `observe` below, only while metrics are on). `observe` is a bisect
into a list of bucket counts: prometheus_client's `Histogram.observe` takes a lock per call and
measured about 650 ns here, this about 100 ns; only the engine's loop writes the list.

The registry is private to each `Metrics`, not prometheus_client's global one, so tests and
several engines in one process do not clash.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from smswatch import __version__
from smswatch.core.forwarding import TargetStatus
from smswatch.ingest.addresses import local_url
from smswatch.sanitize import without_password as describe_url

if TYPE_CHECKING:
    from prometheus_client import Metric

    from smswatch.live.engine import Engine

# Seconds. Commits are fsynced group commits: a few ms when idle, tens under load; seconds mean
# the disk or the store is in trouble.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class CommitLatency:
    """A histogram kept as plain bucket counts, written by the engine's loop only."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(bounds) + 1)  # the last one: over the largest bound
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # `le`: a value on a bound is in it
        self.sum += seconds

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, n in zip([*map(floatToGoString, self.bounds), "+Inf"], counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=total)


class EngineCollector(Collector):
    """Reads the engine's counters at scrape time."""

    def __init__(self, engine: Engine, latency: CommitLatency) -> None:
        self.engine = engine
        self.latency = latency

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        hub = engine.hub
        events = hub.events

        requests = CounterMetricFamily(
            "smswatch_requests",
            "Webhook requests received (POSTs to a webhook route, answered or not), by route.",
            labels=["route"],
        )
        for name, n in dict(engine.listener.requests).items():
            requests.add_metric([f"/webhooks/{name}" if name else "/webhooks"], n)
        yield requests
        yield CounterMetricFamily(
            "smswatch_events_stored",
            "Webhook events committed to the store by this process (duplicates not included).",
            value=engine.writer.stored,
        )
        yield CounterMetricFamily(
            "smswatch_duplicates",
            "Webhook events this process received again and did not store twice (answered 200).",
            value=engine.writer.duplicates,
        )
        rejected = CounterMetricFamily(
            "smswatch_rejected",
            "Webhook requests refused, by reason and HTTP status (4xx: the gateway drops them).",
            labels=["reason", "status"],
        )
        counts = dict(hub.rejected_by_code)
        statuses = dict(hub.rejected_status)  # after the counts: the hub writes it before them
        for reason, n in sorted(counts.items()):
            rejected.add_metric([reason, str(statuses[reason])], n)
        yield rejected
        yield self.latency.family(
            "smswatch_commit_latency_seconds",
            "Seconds from handing a webhook's events to the store writer until their commit "
            "resolved (the wait before the answer).",
        )
        yield GaugeMetricFamily(
            "smswatch_writer_queue_depth",
            "Requests queued for the store writer and not yet committed.",
            value=engine.writer.depth,
        )
        error = hub.store_error
        yield GaugeMetricFamily(
            "smswatch_store_up",
            "1 while the store commits, 0 while it fails (webhooks then get 503).",
            value=0 if error else 1,
        )
        if error:
            yield InfoMetricFamily(
                "smswatch_store_error", "Why the store is failing.", value={"error": error}
            )
        yield GaugeMetricFamily(
            "smswatch_store_events", "Webhook events in the store.", value=events
        )
        yield GaugeMetricFamily("smswatch_messages", "Messages in the store.", value=hub.messages)
        yield GaugeMetricFamily(
            "smswatch_messages_in_flight",
            "Messages with recipients not yet delivered or failed.",
            value=hub.in_flight,
        )
        recipients = GaugeMetricFamily(
            "smswatch_recipients", "Recipients by current state.", labels=["state"]
        )
        for state, n in dict(hub.funnel).items():
            recipients.add_metric([str(state)], n)
        yield recipients
        yield GaugeMetricFamily(
            "smswatch_conflicts",
            "Recipients reported both delivered and failed.",
            value=hub.conflicts,
        )
        last = hub.last_request_at
        if last is not None:
            yield GaugeMetricFamily(
                "smswatch_last_request_timestamp_seconds",
                "When the last webhook request arrived (Unix time): alert on a silent gateway.",
                value=last / 1e6,
            )
        yield from forwarding_metrics(hub.forwarding)
        feed = engine.feed
        yield GaugeMetricFamily(
            "smswatch_feed_viewers",
            "Viewers attached to the live feed (smswatch attach).",
            value=len(feed.clients) if feed is not None else 0,
        )
        yield InfoMetricFamily(
            "smswatch_build", "smswatch version.", value={"version": __version__}
        )


def forwarding_metrics(targets: tuple[TargetStatus, ...]) -> Iterator[Metric]:
    """Each forward target's outbox (`--forward-to`), labelled by its URL without a password."""
    if not targets:
        return
    names = [describe_url(t.target) for t in targets]
    families = (
        (GaugeMetricFamily, "smswatch_forward_backlog", "Stored events waiting to reach the app."),
        (CounterMetricFamily, "smswatch_forward_delivered", "Events the app answered 2xx to."),
        (GaugeMetricFamily, "smswatch_forward_failed", "Forwards given up on (resend by hand)."),
    )
    for kind, name, text in families:
        family = kind(name, text, labels=["target"])
        for label, t in zip(names, targets, strict=True):
            value = {"smswatch_forward_backlog": t.backlog, "smswatch_forward_failed": t.failed}
            family.add_metric([label], value.get(name, t.delivered))
        yield family
    status = GaugeMetricFamily(
        "smswatch_forward_last_status",
        "The app's last HTTP status (0: no answer; absent before the first attempt).",
        labels=["target"],
    )
    for label, t in zip(names, targets, strict=True):
        if t.last is not None:
            status.add_metric([label], t.last.status or 0)
    yield status


def metrics_url(host: str, port: int) -> str:
    return local_url("http", host, port, "/metrics")


class Metrics:
    """The engine's metrics and the HTTP server that exposes them, on a daemon thread.

    Make it before `engine.start()`: a request submitted before the listener had the latency
    callback would be observed with a nonsense latency. `start()` it after (the store's counters
    are loaded by then), `stop()` it on shutdown."""

    def __init__(self, engine: Engine) -> None:
        self.latency = CommitLatency()
        self.collector = EngineCollector(engine, self.latency)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)  # CPU, memory, open files (Linux)
        engine.listener.observe_commit = self.latency.observe
        self.engine = engine
        self.url: str | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the metrics on host:port (0: a free port); returns their URL. Raises OSError
        when the port cannot be bound."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        self.url = metrics_url(host, self._server.server_port)
        return self.url

    def stop(self) -> None:
        """Stop serving (blocks up to half a second: the server polls for shutdown)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.engine.listener.observe_commit == self.latency.observe:
            self.engine.listener.observe_commit = None
