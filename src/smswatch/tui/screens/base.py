"""What every smswatch screen shares."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from textual.screen import Screen

if TYPE_CHECKING:
    from smswatch.core.live import Delta
    from smswatch.source.api import Connection, Snapshot
    from smswatch.tui.app import SmsWatchApp


@runtime_checkable
class LiveView(Protocol):
    """A screen that follows the data source: the app hands every mounted one each update, on
    the UI loop (tui/app.py)."""

    def live_update(self, delta: Delta) -> None:
        """A hub delta, without what the snapshot already showed."""

    def resync(self, snapshot: Snapshot) -> None:
        """Start over from a fresh snapshot (a feed that reconnected or fell behind)."""

    def connection_changed(self, connection: Connection) -> None:
        """A remote source connected, lost its connection or was refused."""


@runtime_checkable
class Restyles(Protocol):
    """A screen that draws colours of its own (Rich text it built from the palette): the app
    has it redraw after a theme change or masking."""

    def refresh_styles(self) -> Awaitable[None] | None: ...


class AppScreen(Screen[Any]):
    """Every screen of the app is a `LiveView`; each overrides what it follows, the rest of
    the updates pass it by."""

    @property
    def sw(self) -> SmsWatchApp:
        """The app, typed: its data source, model, palette and clock."""
        return self.app  # type: ignore[return-value]

    def live_update(self, delta: Delta) -> None:
        pass

    def resync(self, snapshot: Snapshot) -> None:
        pass

    def connection_changed(self, connection: Connection) -> None:
        pass
