"""The data-source seam: everything a UI may ask of an engine, local or remote.

The TUI holds a `DataSource` and nothing else: live updates through `subscribe`, and bounded
queries (a message with its recipients, a recipient's timeline, filters, alerts). The local
source (smswatch.live.datasource) answers from the engine's hub and its database; the remote
one (smswatch.feed.client) answers the same questions over the WebSocket feed. So every screen
works in both, and importing this module loads neither an engine nor a feed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from smswatch.core.domain import MessageState, RecipientState
from smswatch.core.figures import Latency
from smswatch.core.forwarding import Forward
from smswatch.core.live import Counters, Delta
from smswatch.core.records import Rejection, StoredEvent

if TYPE_CHECKING:
    from pathlib import Path

    from smswatch.campaigns.analysis import CampaignView
    from smswatch.core.campaigns import Summary
    from smswatch.core.domain import State
    from smswatch.core.figures import FailureGroup
    from smswatch.core.reconciling import PollResult


@dataclass(frozen=True)
class GatewayStatus:
    name: str
    title: str
    url: str
    auth: str  # what the status bar shows
    verified: bool
    accepting: bool


@dataclass(frozen=True)
class SourceInfo:
    label: str  # "local" or the feed's address
    db_path: str | None
    gateways: list[GatewayStatus] = field(default_factory=list)
    read_only: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a UI draws first, and again after a resync."""

    counters: Counters
    messages: list[MessageState]
    events: list[StoredEvent]
    rejections: list[Rejection]
    info: SourceInfo | None = None


@dataclass(frozen=True)
class Connection:
    """How a remote source is doing; a local source is always live."""

    state: str  # connecting | live | reconnecting | refused
    detail: str = ""
    retry_in: float | None = None

    @property
    def live(self) -> bool:
        return self.state == "live"


Update = Delta | Snapshot | Connection


@dataclass(frozen=True)
class MessageDetail:
    message: MessageState
    recipients: list[RecipientState]
    shown_of: int  # recipients matching the filter, of which `recipients` is the first part
    latency: Latency


@dataclass(frozen=True)
class RecipientDetail:
    recipient: RecipientState
    message: MessageState | None
    events: list[StoredEvent]


@dataclass(frozen=True)
class Stuck:
    count: int
    oldest: list[RecipientState]


Forwards = dict[int, list[Forward]]  # by the events' log ids (`StoredEvent.id`)


class SourceUnavailable(Exception):
    """A remote source is not connected; the query could not be answered."""


class DataSource(Protocol):
    info: SourceInfo

    async def open(self) -> Snapshot: ...

    async def close(self) -> None: ...

    def subscribe(self, callback: Callable[[Update], None]) -> Callable[[], None]:
        """Updates are delivered on the caller's event loop. Returns an unsubscribe function."""

    async def messages(
        self, query: str = "", failed_only: bool = False, limit: int = 200
    ) -> list[MessageState]: ...

    async def message(
        self, message_id: str, query: str = "", failed_only: bool = False, limit: int = 5000
    ) -> MessageDetail | None: ...

    async def recipient(self, message_id: str, recipient: str) -> RecipientDetail | None: ...

    async def failures(self, limit: int = 20) -> list[FailureGroup]: ...

    async def stuck(self, deadlines: dict[State, int], now: int, limit: int = 20) -> Stuck: ...

    async def rejections(self, limit: int = 50) -> list[Rejection]: ...

    async def forwards(self, events: list[int]) -> Forwards:
        """How each event was forwarded (`--forward-to`): per target, its state and attempts.
        Empty when the engine does not forward."""

    async def resend(self, events: list[int] | None = None, *, failed_only: bool = True) -> int:
        """Forward again now: `events` (whatever their state unless `failed_only`), or every
        failed forward. Returns how many forwards were queued. Raises SourceUnavailable on a
        read-only source."""

    async def export(self, path: Path) -> int: ...

    async def campaigns(self) -> list[Summary]:
        """Every campaign (named ones and send bursts), the most recently active first."""

    async def campaign(
        self, name: str, deadlines: dict[State, int], now: int
    ) -> CampaignView | None: ...

    async def campaign_messages(
        self, name: str, failed_only: bool = False, limit: int = 500
    ) -> list[MessageState]: ...

    async def export_suppression(self, path: Path, campaign: str | None = None) -> int:
        """The do-not-send list (of one campaign) as CSV; LookupError for an unknown campaign."""

    async def poll_now(self, message_id: str) -> PollResult:
        """Ask the gateway's status API about a message now (its answer stored). Raises
        SourceUnavailable where the engine does not run here or has no API key."""

    def run_campaign(self) -> str | None:
        """The campaign every new message joins now (--campaign, or started from the palette)."""

    async def start_campaign(self, name: str | None) -> None:
        """Start (or with None, end) the run's campaign. Raises SourceUnavailable where the
        engine does not run here."""
