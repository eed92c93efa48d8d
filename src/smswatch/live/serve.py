"""`smswatch serve`: the engine without a UI, for servers and scripts.

Prints the URLs to paste into each gateway, then one summary line every few seconds while
anything changes (and a heartbeat a minute when idle), a warning the first time each kind of
rejection or store failure shows up, and the same as JSON lines with `--log-format json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
import sys
from typing import Any, TextIO

from smswatch import __version__
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.live import Counters, Delta
from smswatch.ingest.addresses import is_wildcard
from smswatch.live.engine import CannotListen, Engine, bind_problem
from smswatch.live.metrics import Metrics
from smswatch.runtime import tune_gc
from smswatch.sanitize import safe, without_password
from smswatch.store.errors import CannotOpen
from smswatch.store.location import describe, display
from smswatch.timefmt import iso, now_us
from smswatch.words import plural

HEARTBEAT_S = 60.0


def public_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, for a wildcard bind's banner."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return found
    for info in infos:
        addr = str(info[4][0])
        if not addr.startswith("127.") and addr not in found:
            found.append(addr)
    return found


class Log:
    """Writes human lines or JSON lines to a stream."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.broken = False

    def emit(self, level: str, event: str, text: str, **fields: Any) -> None:
        if self.broken:
            return
        try:
            self._write(level, event, text, fields)
        except (OSError, ValueError):
            # The terminal or the pipe behind stdout is gone. The log is advisory and the
            # webhooks are not: keep serving, silently (SIGHUP, a closed terminal, stops it).
            self.broken = True

    def _write(self, level: str, event: str, text: str, fields: dict[str, Any]) -> None:
        if self.json:
            record = {"ts": iso(now_us()), "level": level, "event": event, "msg": text, **fields}
            # ASCII only: the values stay exact for a log shipper, and a log tailed in a
            # terminal shows webhook text's control and invisible characters as escapes.
            self.stream.write(json.dumps(record, ensure_ascii=True, default=str) + "\n")
        else:
            stamp = iso(now_us())[11:19]  # type: ignore[index]
            prefix = "" if level == "info" else f"{level}: "
            self.stream.write(f"{stamp}  {prefix}{text}\n")
        self.stream.flush()


def forward_targets(engine: Engine) -> list[dict[str, Any]]:
    """Where `--forward-to` sends the events, each URL without its password."""
    forward = engine.config.forward
    if forward is None:
        return []
    return [
        {"url": without_password(t.url), "gateways": sorted(t.gateways) if t.gateways else None}
        for t in forward.targets
    ]


def polled_apis(engine: Engine) -> dict[str, dict[str, str | None]]:
    """The status APIs polled to reconcile, per gateway: the base URL and the key in its
    redacted form (`sk_test_****1234`: which environment, never the key)."""
    api = engine.config.gateway_api
    if api is None:
        return {}
    polled: dict[str, dict[str, str | None]] = {}
    for name in api.gateways:
        access = api.access(name)
        assert access is not None
        url = without_password(access.url) if access.url else None
        key = access.key.masked
        polled[name] = {"url": url, "key": f"{access.user}:{key}" if access.user else key}
    return polled


NOT_POLLED = "no status API: not polled"


def unpolled(engine: Engine) -> tuple[str, ...]:
    """The gateways that have no status API, said so wherever polling is (only then: it is
    where the reconciler's clients are loaded anyway)."""
    if engine.config.gateway_api is None:
        return ()
    from smswatch.gateways.registry import file_gateways
    from smswatch.reconcile.clients import UNPOLLED

    return (*UNPOLLED, *file_gateways())  # a gateway from a file has no status API


def banner(engine: Engine, metrics_url: str | None = None) -> list[str]:
    cfg = engine.config
    lines = [
        f"smswatch {__version__} serving webhooks on {engine.listener.base_url}",
        f"  database  {display(cfg.db_path)} (durability {cfg.durability})",
        "",
        "  Paste into each gateway's webhook setting:",
    ]
    hosts = [engine.listener.base_url]
    scheme = engine.listener.base_url.split("://", 1)[0]
    if cfg.public_url:  # what the gateways call: the address of this listener is not it
        hosts = [cfg.public_url]
        scheme = cfg.public_url.split("://", 1)[0].lower()
    elif is_wildcard(cfg.host):
        hosts += [f"{scheme}://{a}:{engine.listener.port}" for a in public_addresses()]
    credentials = cfg.credentials
    for gw in engine.gateways():
        for i, base in enumerate(hosts):
            name = gw.title if i == 0 else ""
            auth = gw.auth if i == 0 else ""
            url = credentials.in_url(gw.name, f"{base}/webhooks/{gw.name}", shown=True)
            lines.append(f"    {name:<9} {url:<{len(base) + 20}} {auth}".rstrip())
    if engine.feed is not None:
        lines += [
            "",
            "  Watch it live (read-only; the feed is on loopback: tunnel it for other machines):",
            f"    smswatch attach {engine.feed.url} --token {engine.feed.token}",
        ]
    targets = forward_targets(engine)
    if targets:
        lines += ["", "  Forwarding every stored event to (see `smswatch forward status`):"]
        for t in targets:
            only = f"   {', '.join(t['gateways'])} only" if t["gateways"] else ""
            lines.append(f"    {safe(t['url'], 200)}{only}")
    polled = polled_apis(engine)
    if polled:
        lines += ["", "  Polling the status APIs for what the webhooks miss:"]
        titles = {gw.name: gw.title for gw in engine.gateways()}
        for name, api in polled.items():
            lines.append(
                f"    {titles.get(name, name):<9} {safe(api['url'] or '', 200)}   key {api['key']}"
            )
        lines += [f"    {titles.get(name, name):<9} {NOT_POLLED}" for name in unpolled(engine)]
    if metrics_url is not None:
        lines += [
            "",
            "  Prometheus metrics (no auth: keep the port private):",
            f"    {metrics_url}",
        ]
    if scheme != "https":
        lines += [
            "",
            "  Lisoloo and YeboLink only call https:// URLs: give smswatch a certificate",
            "  (--tls-cert/--tls-key), or put a TLS reverse proxy or tunnel in front of this",
            "  address and give the gateway its public https URL with the same path.",
        ]
        carried = {c.gateway for c in GATEWAY_CREDENTIALS if c.query and credentials.token(c.key)}
        in_urls = [gw.title for gw in engine.gateways() if gw.name in carried]
        if in_urls:
            lines.append(
                f"  {' and '.join(in_urls)}: the token is in the URL, readable by anyone on the "
                "way over plain http."
            )
    lines += [
        "",
        f"  Health check: {engine.listener.base_url}/healthz    Stop: Ctrl-C",
    ]
    return lines


def summary(c: Counters, previous_events: int, seconds: float) -> str:
    f = c.funnel
    rate = (c.events - previous_events) / seconds if seconds > 0 else 0.0
    parts = [
        f"events {c.events} (+{c.events - previous_events}, {rate:.1f}/s)",
        f"dup {c.duplicates}",
    ]
    if c.rejected:
        by_code = ", ".join(f"{code} {n}" for code, n in sorted(c.rejected_by_code.items()))
        parts.append(f"rejected {c.rejected} ({by_code})")
    else:
        parts.append("rejected 0")
    parts.append(f"| messages {c.messages}, in flight {c.in_flight}")
    rate_text = f" ({c.delivery_rate:.1%})" if c.delivery_rate is not None else ""
    parts.append(
        f"| queued {f['queued']} processing {f['processing']} sent {f['sent']} "
        f"delivered {f['delivered']} failed {f['failed']}"
        + (f" unconfirmed {f['unconfirmed']}" if f["unconfirmed"] else "")
        + rate_text
    )
    if c.store_error:
        parts.append(f"| STORE FAILING: {c.store_error}")
    return " ".join(parts)


def counter_fields(c: Counters) -> dict[str, Any]:
    return {
        "events": c.events,
        "duplicates": c.duplicates,
        "rejected": c.rejected,
        "rejected_by_code": c.rejected_by_code,
        "messages": c.messages,
        "in_flight": c.in_flight,
        "recipients": {str(k): v for k, v in c.funnel.items()},
        "store_error": c.store_error,
    }


class Reporter:
    """Turns hub deltas into log lines."""

    def __init__(self, log: Log, interval: float, events: int, now: float) -> None:
        self.log = log
        self.interval = interval
        self.seen_codes: set[str] = set()
        self.store_error: str | None = None
        self.last_counters: Counters | None = None
        self.reported_events = events
        self.reported_rejected = 0
        self.last_line = now

    def on_delta(self, delta: Delta) -> None:
        for r in delta.rejections:
            if r.code not in self.seen_codes:
                self.seen_codes.add(r.code)
                self.log.emit(
                    "warning",
                    "rejected",
                    f"{r.status} {r.code} from {r.remote} on {safe(r.path, 80)}: "
                    f"{safe(r.reason, 160)}"
                    " (further ones are counted in the summary)",
                    status=r.status,
                    code=r.code,
                    remote=r.remote,
                    path=r.path,
                    reason=r.reason,
                )
        c = delta.counters
        if c.store_error != self.store_error:
            self.store_error = c.store_error
            if c.store_error:
                self.log.emit("error", "store", f"store failing, answering 503: {c.store_error}")
            else:
                self.log.emit("info", "store", "store recovered")
        self.last_counters = c

    def tick(self, now: float) -> None:
        c = self.last_counters
        if c is None:
            return
        changed = c.events != self.reported_events or c.rejected != self.reported_rejected
        elapsed = now - self.last_line
        if (changed and elapsed >= self.interval) or elapsed >= HEARTBEAT_S:
            self.log.emit(
                "info", "summary", summary(c, self.reported_events, elapsed), **counter_fields(c)
            )
            self.reported_events, self.reported_rejected = c.events, c.rejected
            self.last_line = now


async def run(
    engine: Engine,
    log_format: str,
    interval: float,
    out: TextIO = sys.stdout,
    metrics_at: tuple[str, int] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM/SIGHUP. `metrics_at`: (host, port) of the Prometheus metrics."""
    log = Log(out, log_format)
    # Before the engine starts, so the listener times every commit from the first request.
    metrics = Metrics(engine) if metrics_at is not None else None
    try:
        await engine.start()
    except CannotOpen as exc:
        log.emit("error", "database", str(exc))
        return 2
    except CannotListen as exc:
        log.emit("error", "bind", f"{exc}.")
        return 2
    except OSError as exc:  # anything else the start needed from the system: one line too
        log.emit("error", "start", f"cannot start: {exc}")
        return 2
    if metrics is not None and metrics_at is not None:
        host, port = metrics_at
        try:
            metrics.start(host, port)
        except OSError as exc:
            log.emit(
                "error",
                "bind",
                f"{bind_problem('metrics', host, port, '--metrics-port', exc)}.",
            )
            await engine.stop()
            return 2
    # Everything built so far lives as long as the process: keep full collections from walking
    # it again and again under load (their pauses show up in the acknowledgement latency).
    gc.freeze()
    tune_gc()
    if log_format == "json":
        log.emit(
            "info",
            "listening",
            f"listening on {engine.listener.base_url}",
            urls={g.name: g.url for g in engine.gateways()},
            auth={g.name: g.auth for g in engine.gateways()},
            db=display(engine.config.db_path),
            # The token itself stays out of logs that may be shipped elsewhere.
            feed=engine.feed.url if engine.feed else None,
            metrics=metrics.url if metrics else None,
            forward=forward_targets(engine),
            polling=polled_apis(engine),
            not_polled={name: NOT_POLLED for name in unpolled(engine)},
        )
    else:
        with contextlib.suppress(OSError):
            out.write("\n".join(banner(engine, metrics.url if metrics else None)) + "\n\n")
            out.flush()
    loop = asyncio.get_running_loop()
    reporter = Reporter(log, interval, engine.hub.events, loop.time())
    engine.hub.subscribe(reporter.on_delta, messages=lambda: False)
    stop = asyncio.Event()
    # SIGHUP: the terminal serve was started in closed. Stop as cleanly as on ^C.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            reporter.tick(loop.time())
    finally:
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
        if metrics is not None:
            await asyncio.to_thread(metrics.stop)
        await engine.stop()
        # The final counters, which no summary may have carried yet.
        log.emit(
            "info",
            "stopped",
            f"stopped; {plural(engine.hub.events, 'event')} in {describe(engine.config.db_path)}",
            **counter_fields(engine.hub.counters()),
        )
    return 0
