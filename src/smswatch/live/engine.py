"""The engine: listener + gateway adapters + store writer + hub, runnable with or without a UI.

`smswatch serve` runs it headless; the TUI embeds it. Either way it is started and stopped on one
asyncio loop, and everything a UI needs comes out of `hub` (live) and a `Reader` (queries).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from smswatch import gateways
from smswatch.campaigns.rule import DEFAULT_KEYS, CampaignRule
from smswatch.core.live import Counters, Delta
from smswatch.forward.config import ForwardConfig
from smswatch.gateways import Credentials
from smswatch.ingest.addresses import is_loopback
from smswatch.ingest.webhooks import Listener, ListenerConfig
from smswatch.live.datasource import StoreQueries
from smswatch.live.hub import Hub
from smswatch.reconcile.config import ApiConfig
from smswatch.source.api import Forwards, GatewayStatus, SourceInfo
from smswatch.store import WriterOptions, backend_for, describe, open_reader
from smswatch.store.errors import CannotOpen, reason
from smswatch.timefmt import now_us

if TYPE_CHECKING:
    from smswatch.core.domain import State
    from smswatch.feed.server import FeedServer
    from smswatch.forward.supervisor import ForwardSupervisor
    from smswatch.reconcile.reconciler import Reconciler


log = logging.getLogger(__name__)


class BindRefused(Exception):
    """A non-loopback bind with no credentials at all."""


class CannotListen(Exception):
    """A port this engine was asked to serve on cannot be bound: the message names which one
    (webhook or feed) and why."""


def bind_problem(what: str, host: str, port: int, option: str, exc: OSError) -> CannotListen:
    why = {
        errno.EADDRINUSE: "the port is in use (another smswatch?)",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
        errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
    }.get(exc.errno or 0) or (exc.strerror or str(exc))
    return CannotListen(f"cannot listen for {what} on {host}:{port}: {why}. Pick another {option}")


@dataclass(frozen=True)
class EngineConfig:
    db_path: Path | str = Path("smswatch.db")  # a SQLite file, or a postgresql:// URL
    host: str = "127.0.0.1"
    port: int = 8787
    credentials: Credentials = field(default_factory=Credentials)
    insecure: bool = False
    # The base URL the gateways call (a tunnel's, a proxy's): URL signatures are checked as
    # it, and the status bar shows it (validated by config.parse_public_url).
    public_url: str | None = None
    durability: str = "full"
    checkpoint_interval: float = 1.0  # seconds between writes of the folded state
    max_body: int = 1024 * 1024
    read_timeout: float = 10.0
    idle_timeout: float = 15.0  # headers must arrive, and a kept-alive connection be used, within
    tls_cert: Path | None = None  # both set: the listener speaks HTTPS itself
    tls_key: Path | None = None
    max_queue: int = 4096  # requests waiting for the writer before the listener stops reading
    max_db_bytes: int | None = None
    hub_tick: float = 0.1
    listen: bool = True  # False: a monitor of a shared database that takes no webhooks itself
    forward: ForwardConfig | None = None  # every stored event POSTed on to these apps
    clock: Callable[[], int] = now_us  # microseconds since the epoch; tests freeze it
    # The WebSocket feed for `smswatch attach`: off unless a port is given (0: any free port).
    feed_host: str = "127.0.0.1"
    feed_port: int | None = None
    feed_token: str | None = None  # None: the token kept beside the database (made once)
    campaign: str | None = None  # every message first seen while this runs joins it
    campaign_keys: tuple[str, ...] = DEFAULT_KEYS  # YeboLink metadata keys naming a campaign
    gateway_api: ApiConfig | None = None  # keys and URLs of the gateways' status APIs
    # Seconds an unfinished message must be quiet before its gateway's API is polled, per
    # gateway (reconcile/reconciler.py has the defaults).
    reconcile_quiet: dict[str, float] | None = None
    reconcile_every: float = 5.0  # seconds between looks at the store for messages to poll
    # Per state, how long a recipient may wait before it is stuck (µs; the `[stuck]` table):
    # a stuck recipient's message is polled too. None: the defaults (config.py).
    stuck_deadlines: dict[State, int] | None = None


def open_gateways(config: EngineConfig) -> frozenset[str]:
    """Gateways that may post without credentials: all of them on loopback; on a public bind none,
    unless --insecure. With no credentials at all, a public bind is refused outright."""
    if is_loopback(config.host) or config.insecure:
        return frozenset(gateways.NAMES)
    if not config.credentials.any and not _file_gateway_verified():
        raise BindRefused(
            f"refusing to listen on {config.host} with no credentials: anyone who can reach it "
            "could post fake delivery reports. Set --basic-auth USER:PASS (Lisoloo), "
            "--yebolink-secret SECRET and/or a gateway's own (--twilio-auth-token, "
            "--vonage-signature-secret, --telnyx-public-key, --plivo-auth-token, "
            "--sinch-webhook-secret), bind to "
            "127.0.0.1 behind a tunnel, or pass --insecure."
        )
    return frozenset()


def _file_gateway_verified() -> bool:
    """A gateway from a file verifies its requests (its secret is in its file's [verify], not
    in the credentials): that authenticates some webhooks, as a credential would."""
    from smswatch.gateways.registry import GATEWAYS, file_gateways

    return any(
        GATEWAYS[name].provider(Credentials()).auth_mode().verified for name in file_gateways()
    )


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.open = open_gateways(config)
        self.providers = gateways.build(config.credentials)
        self.hub = Hub(tick=config.hub_tick, clock=config.clock)
        # The palette starts and ends the run's campaign: the writer reads `active` per batch.
        self.campaigns = CampaignRule(config.campaign_keys, config.campaign)
        self.backend = backend_for(config.db_path)
        self.writer = self.backend.make_writer(
            WriterOptions(
                campaigns=self.campaigns,
                forward_targets=config.forward.targets if config.forward else (),
                durability=config.durability,
                checkpoint_interval=config.checkpoint_interval,
                max_db_bytes=config.max_db_bytes,
                on_commit=self.hub.commit,
                on_health=self.hub.store_health,
                clock=config.clock,
            )
        )
        self.listener = Listener(
            ListenerConfig(
                host=config.host,
                port=config.port,
                max_body=config.max_body,
                read_timeout=config.read_timeout,
                idle_timeout=config.idle_timeout,
                open_gateways=self.open,
                public_url=config.public_url,
                tls_cert=config.tls_cert,
                tls_key=config.tls_key,
                max_queue=config.max_queue,
            ),
            self.providers,
            self.writer,
            self.hub,
            config.clock,
        )
        self.hub.changes = self.writer.pull_changes
        self.feed: FeedServer | None = None
        self.forwarder: ForwardSupervisor | None = None
        self.reconciler: Reconciler | None = None
        self.running = False

    async def start(self) -> None:
        await self.writer.open()
        try:
            self.hub.seed(await self.writer.starting_totals())
            self.hub.start()
            # The feed first: once webhooks are answered (and /healthz), viewers can attach.
            if self.config.feed_port is not None:
                from smswatch.feed.server import FeedServer

                token = self.config.feed_token or await self._feed_token()
                feed = FeedServer(self, self.config.feed_host, self.config.feed_port, token)
                try:
                    await feed.start()
                except OSError as exc:
                    host, port = self.config.feed_host, self.config.feed_port
                    raise bind_problem("the feed", host, port, "--feed-port", exc) from None
                self.feed = feed
                self.writer.note_feed(feed.url)
            # Forwarding before the listener: every event stored from now on is forwarded.
            if self.config.forward is not None:
                await self._start_forwarding(self.config.forward)
            elif self.backend.shared:
                await self._start_forwarding(ForwardConfig(targets=()), send=False)
            await self._start_reconciling()
            if self.config.listen:
                try:
                    await self.listener.start()
                except OSError as exc:
                    host, port = self.config.host, self.config.port
                    raise bind_problem("webhooks", host, port, "--port", exc) from None
        except BaseException:
            if self.reconciler is not None:
                await self.reconciler.stop()
                self.reconciler = None
            if self.forwarder is not None:
                await self.forwarder.stop()
                self.forwarder = None
            if self.feed is not None:
                await self.feed.stop()
                self.feed = None
            await self.listener.stop()
            await self.hub.stop()
            await self.writer.close()
            raise
        self.running = True

    async def _start_reconciling(self) -> None:
        """Poll the gateways' status APIs for lost webhooks: only for a gateway with a key."""
        api = self.config.gateway_api
        if api is None:
            return
        from smswatch.reconcile.clients import build
        from smswatch.reconcile.reconciler import Reconciler

        clients = build(api)
        if not clients:
            return
        quiet = {k: int(v * 1_000_000) for k, v in (self.config.reconcile_quiet or {}).items()}
        backend = self.backend
        # Instances sharing the database poll one at a time.
        lease = backend.lease("smswatch-reconcile")
        self.reconciler = Reconciler(
            clients,
            self.writer.submit,
            backend.open_reader,
            self.config.clock,
            self.hub.reconcile_status,
            quiet=quiet,
            scan_every=self.config.reconcile_every,
            deadlines=self.config.stuck_deadlines,
            lease=lease,
        )
        await self.reconciler.start()

    async def _start_forwarding(self, forward: ForwardConfig, send: bool = True) -> None:
        """`send` False (a shared database, no --forward-to here): show what the other instances
        forward, and let re-sends be asked for here; they send them."""
        from smswatch.forward.supervisor import ForwardSupervisor

        self.forwarder = ForwardSupervisor(
            self.config.db_path, forward, self.hub.forward_status, self.config.clock, send=send
        )
        await self.forwarder.start()

    async def _feed_token(self) -> str:
        """Kept beside a SQLite file; in a shared database, so that one token lets a viewer
        attach to any of the instances."""
        from smswatch.feed.server import load_or_create_token, token_path

        if self.backend.shared:
            return await self.writer.shared_token()
        db = Path(self.config.db_path)
        try:
            return load_or_create_token(db)
        except OSError as exc:
            raise CannotOpen(
                f"cannot keep the feed token in {token_path(db)}: {reason(exc)} "
                "(or give one with --feed-token)"
            ) from None

    async def stop(self) -> None:
        """Stop taking requests, then commit what is queued and close the database. Whatever
        fails on the way (a viewer's socket, a stuck poll), the database is closed: left open,
        the log's WAL is never checkpointed back into it."""
        steps = [self._stop_feed, self.listener.stop, self._stop_reconciler, self.writer.drain]
        steps += [self._stop_forwarder, self.hub.stop]  # the hub's last changes, then close
        try:
            for step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("stopping the engine: %s failed", step.__name__)
        finally:
            await self.writer.close()
            self.running = False

    async def _stop_feed(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
            self.feed = None

    async def _stop_reconciler(self) -> None:
        if self.reconciler is not None:  # before the writer: a poll in flight stores its answer
            await self.reconciler.stop()
            self.reconciler = None

    async def _stop_forwarder(self) -> None:
        if self.forwarder is not None:  # what it has not sent stays in the outbox for next time
            await self.forwarder.stop()
            self.forwarder = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def gateways(self) -> list[GatewayStatus]:
        result = []
        for name, provider in self.providers.items():
            mode = provider.auth_mode()
            if not self.config.listen:
                result.append(
                    GatewayStatus(name, provider.title, "", "not listening here", False, False)
                )
                continue
            if mode.verified:
                auth, accepting = mode.label, True
            elif name in self.open:
                where = "loopback only" if is_loopback(self.config.host) else "--insecure"
                auth, accepting = f"open: {mode.label} ({where})", True
            else:
                auth, accepting = f"refusing: {mode.label} on a public bind", False
            result.append(
                GatewayStatus(
                    name, provider.title, self.webhook_url(name), auth, mode.verified, accepting
                )
            )
        return result

    def webhook_url(self, gateway: str) -> str:
        """Where a gateway is to post: under --public-url when given (what its console needs,
        and what its signature covers), else this listener's own address; with the token it
        carries in the query elided (`?token=…`: the URL to paste, never the secret)."""
        base = self.config.public_url
        from smswatch.gateways.declarative import shown_url

        url = f"{base}/webhooks/{gateway}" if base else self.listener.url(gateway)
        return shown_url(gateway, self.config.credentials.in_url(gateway, url, shown=True))

    # --- what the feed serves its viewers (smswatch.feed.server.FeedHost) ---------------------

    def info(self) -> SourceInfo:
        return SourceInfo(
            label="local", db_path=describe(self.config.db_path), gateways=self.gateways()
        )

    async def open_queries(self) -> StoreQueries:
        """The seam's queries over a reader of their own, settled by this engine's writer; the
        caller closes the reader."""
        writer = self.writer
        return StoreQueries(
            await open_reader(self.config.db_path),
            lambda: asyncio.wrap_future(writer.settle()),
            self._forwards,
            self.config.clock,
        )

    async def _forwards(self, events: list[int]) -> Forwards:
        # Started after the feed (start()), so looked up at each query.
        forwarder = self.forwarder
        return {} if forwarder is None else await forwarder.forwards(events)

    def subscribe(
        self, callback: Callable[[Delta], None], messages: Callable[[], bool]
    ) -> Callable[[], None]:
        return self.hub.subscribe(callback, messages=messages)

    async def counters(self) -> Counters:
        return await self.hub.current()
