"""`?`: the keys, what the panels mean, and what the listener answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

# The keys come from the bindings themselves (`key_sections`), so help cannot drift from them;
# these are only longer words than a binding's footer label, by "screen.action" or action.
EXPLAIN = {
    "dashboard.filter": "filter: the text within a message id, phone, state, error code, "
    "carrier, gateway or campaign name, in any case",
    "dashboard.clear_filter": "clear the filter",
    "dashboard.failures": "failures only (messages with failed or conflicting recipients)",
    "dashboard.campaigns": "the campaigns panel (enter opens a campaign)",
    "dashboard.pause": "pause / resume the live scroll (counters keep counting)",
    "message.filter": "filter recipients: the text within a phone, state, error code or carrier",
    "message.failures": "failed or conflicting recipients only",
    "message.poll": "poll now: ask the gateway's status API about this message, store the answer",
    "recipient.raw": "raw JSON on / off in the timeline",
    "recipient.resend": "re-send the selected event (↑↓, click) of the timeline to your app",
    "campaign.failures": "the campaign's failed messages only",
    "campaign.suppression": "write the campaign's do-not-send (suppression) list as CSV",
    "mask": "mask phone numbers and emails, for screen sharing",
    "next_theme": "next theme (remembered)",
    "help": "this help",
    "select": "open the message, recipient, campaign or alert under the cursor",
    "back": "back",
    "app.pop_screen": "back",
}
# Keys that are not one of our bindings: Textual's own.
TEXTUAL_KEYS = [
    ("ctrl+p", "command palette: go to a message or campaign, start/end a campaign, theme, export"),
    ("tab", "move between panels"),
]


# Actions offered only where they can act: re-sending changes the outbox (never on a viewer).
CONDITIONAL = {"resend": "can_resend"}


def key_sections(
    app_bindings: list[BindingType], can: Callable[[str], bool] = lambda _: True
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every binding of the app, its screens and its tables, with what it does; `can(flag)`:
    whether a CONDITIONAL action can act here."""
    from smswatch.tui.screens.campaign import CampaignScreen
    from smswatch.tui.screens.dashboard import DashboardScreen
    from smswatch.tui.screens.lists import RejectionsScreen
    from smswatch.tui.screens.message import MessageScreen
    from smswatch.tui.screens.recipient import RecipientScreen
    from smswatch.tui.widgets.rowtable import RowTable

    where = [
        ("everywhere", "", app_bindings),
        ("dashboard", "dashboard", DashboardScreen.BINDINGS),
        ("a message", "message", MessageScreen.BINDINGS),
        ("a recipient", "recipient", RecipientScreen.BINDINGS),
        ("a campaign", "campaign", CampaignScreen.BINDINGS),
        ("lists (rejections, stuck)", "list", RejectionsScreen.BINDINGS),
        ("tables", "table", RowTable.BINDINGS),
    ]
    sections = []
    for title, screen, bindings in where:
        rows = []
        for b in (b if isinstance(b, Binding) else Binding(*b) for b in bindings):
            if b.action in CONDITIONAL and not can(CONDITIONAL[b.action]):
                continue
            keys = " ".join(format_key(k.strip()) for k in b.key.split(","))
            what = EXPLAIN.get(f"{screen}.{b.action}") or EXPLAIN.get(b.action) or b.description
            rows.append((keys, what))
        sections.append((title, rows))
    sections[0][1].extend(TEXTUAL_KEYS)
    return sections


PANELS = [
    (
        "Recipients",
        "every recipient by current state; Lisoloo recipients announced by sms.queued "
        "but not named yet count as queued",
    ),
    (
        "Failures & alerts",
        "store failures, rejected requests (bad auth, bad signature, malformed), webhook "
        "silence while messages are in flight, stuck recipients, failures by error code "
        "with the catalogue's verdict on retrying",
    ),
    (
        "Campaigns",
        "messages grouped: by `campaign tag`, the sender's metadata (YeboLink), the run's "
        "campaign (--campaign or the palette), else by gateway and send burst; progress, "
        "delivered, failed and delivery rate of each",
    ),
    (
        "In flight",
        "messages still moving, newest first; finished ones leave after a minute and stay "
        "searchable with /",
    ),
    (
        "Live transitions",
        "each stored event: from → to state, time since the previous state; 'late' means it "
        "arrived after a later state and changed nothing",
    ),
]

STATES = (
    "queued < processing < sent < delivered | failed. A recipient's state is the highest seen, "
    "whatever the arrival order; delivered and failed are final. If both arrive, the later one by "
    "event time wins and the recipient is flagged ⚡conflict."
)

# Only when the engine forwards (--forward-to).
FORWARD_PANEL = (
    "Forward",
    "the status bar's line per app: backlog, deliveries per second, the app's last answer; "
    "a failing app is an alert with its answer, and each timeline shows every attempt",
)

HTTP = (
    "200 only once the event is on disk (duplicates too, stored once) · 400 not a gateway's "
    "JSON · 401 bad Basic auth or signature · 413 too large · 415 not JSON · 503 + Retry-After "
    "when the database cannot commit, so the gateway retries."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "close"),
    ]

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", width=10)
        keys.add_column()
        forwarding = bool(getattr(self.app, "forwarding", False))
        app = self.app
        for title, rows in key_sections(type(app).BINDINGS, lambda f: bool(getattr(app, f, False))):
            keys.add_row("", Text(title, style="italic"))
            for key, what in rows:
                keys.add_row(Text(key), Text(what))
        panels = Table.grid(padding=(0, 2))
        panels.add_column(style="bold", width=18)
        panels.add_column(ratio=1)
        for name, what in [*PANELS, FORWARD_PANEL] if forwarding else PANELS:
            panels.add_row(name, what)
        body = Group(
            Text("Keys", style="bold underline"),
            keys,
            Text(""),
            Text("Panels", style="bold underline"),
            panels,
            Text(""),
            Text("States", style="bold underline"),
            Text(STATES),
            Text(""),
            Text("What the webhook listener answers", style="bold underline"),
            Text(HTTP),
        )
        help_text = Static(body, id="help-body")
        scroll = VerticalScroll(help_text, id="help")
        scroll.border_title = "smswatch help"
        scroll.border_subtitle = "escape to close"
        yield scroll

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
