"""Command palette (ctrl+p): go to a message or a campaign, start and end the run's campaign,
export (events, the suppression list), mask, themes, failures only, pause, and re-send the
failed forwards (where the engine forwards and runs here: never on a viewer). Only these:
Textual's own commands (its twenty themes, Keys, Maximize, Screenshot) are left out."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from smswatch.source.api import SourceUnavailable
from smswatch.tui.format import literal
from smswatch.words import plural

if TYPE_CHECKING:
    from smswatch.tui.app import SmsWatchApp


RESEND_FAILED = "Re-send every failed forward"


class SmsWatchCommands(Provider):
    @property
    def sw(self) -> SmsWatchApp:
        return self.app  # type: ignore[return-value]

    def _commands(self) -> list[tuple[str, str, object]]:
        sw = self.sw
        items: list[tuple[str, str, object]] = [
            (
                "Export all events to a JSONL file",
                "writes smswatch-export-<time>.jsonl in the current directory",
                sw.action_export,
            ),
            (
                "Show phone numbers" if sw.masked else "Mask phone numbers",
                "unmask them again (masked for screen sharing)"
                if sw.masked
                else "hide them and emails, for screen sharing",
                sw.action_mask,
            ),
            (
                "Failures only (toggle)",
                "messages with failed or conflicting recipients",
                sw.action_failures,
            ),
            ("Pause / resume the live scroll", "counters keep counting", sw.action_pause),
            (
                "Rejected requests",
                "bad auth, bad signature, malformed bodies, with the body",
                partial(sw.open_rejections, None),
            ),
            ("Stuck recipients", "past their state's deadline", sw.open_stuck),
            ("Campaigns", "every campaign and send burst, on the dashboard", sw.open_campaigns),
            (
                "Export the suppression list (do-not-send CSV)",
                "numbers that failed for good (landline, unknown, blocked), in the current "
                "directory",
                partial(sw.export_suppression, None),
            ),
        ]
        if not sw.source.info.read_only:
            run = sw.source.run_campaign()
            if run:
                items.append(
                    (
                        f"End campaign {literal(run, 40)}",
                        "new messages stop joining it",
                        partial(sw.start_campaign, None),
                    )
                )
            items.append(
                (
                    "Start a campaign…",
                    "every message first seen from now on joins it",
                    sw.ask_campaign_name,
                )
            )
        if sw.can_resend:
            items.append(
                (
                    RESEND_FAILED,
                    "queue every forward your app failed (given up on) to be sent again now",
                    sw.action_resend_failed,
                )
            )
        items.append(("Help", "keys and what the panels mean", sw.action_help))
        items.append(("Change theme…", "pick one of smswatch's themes (remembered)", sw.pick_theme))
        return items

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)  # type: ignore[arg-type]
        needle = query.strip()
        if len(needle) < 2:
            return
        for c in self.sw.model.campaigns:
            score = matcher.match(c.name)
            if score > 0:
                title = f"Open campaign {literal(c.name, 50)}"
                detail = f"{', '.join(c.providers)} · {plural(c.messages, 'message')} · {c.source}"
                yield Hit(score, title, partial(self.sw.open_campaign, c.name, c), help=detail)
        try:
            found = await self.sw.source.messages(needle, limit=12)
        except SourceUnavailable:
            return
        for msg in found:
            title = f"Go to message {literal(msg.message_id, 40)}"
            detail = f"{msg.provider} · {plural(msg.expected_recipients, 'recipient')}"
            yield Hit(0.9, title, partial(self.sw.open_message, msg.message_id), help=detail)
