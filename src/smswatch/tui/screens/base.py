"""What every smswatch screen shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

if TYPE_CHECKING:
    from smswatch.tui.app import SmsWatchApp


class AppScreen(Screen[Any]):
    @property
    def sw(self) -> SmsWatchApp:
        """The app, typed: its data source, model, palette and clock."""
        return self.app  # type: ignore[return-value]
