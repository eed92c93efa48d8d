"""`?`: the keys, what the panels mean, and what the listener answers."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("/", "filter by message id, phone, state, error code, carrier or gateway"),
    ("enter", "open the message, recipient or alert under the cursor"),
    ("escape", "back, or clear the filter"),
    ("f", "failures only (messages with failed or conflicting recipients)"),
    ("c", "the campaigns panel (enter opens a campaign)"),
    ("x", "on a campaign: write its do-not-send (suppression) list as CSV"),
    ("space", "pause / resume the live scroll (counters keep counting)"),
    ("m", "mask phone numbers and emails, for screen sharing"),
    ("t", "next theme (remembered)"),
    ("r", "raw JSON on / off in a recipient's timeline"),
    ("ctrl+p", "command palette: go to a message or campaign, start/end a campaign, export"),
    ("tab", "move between panels"),
    ("?", "this help"),
    ("q", "quit"),
]

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

# Only when the engine forwards (--forward-to); the re-send key only where it can act.
RESEND_KEY = ("s", "re-send the selected event (↑↓, click) of a recipient's timeline to your app")
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
        keys.add_column(style="bold", width=8)
        keys.add_column()
        forwarding = bool(getattr(self.app, "forwarding", False))
        keys_shown = list(KEYS)
        if getattr(self.app, "can_resend", False):
            after_raw = [k for k, _ in KEYS].index("r") + 1
            keys_shown.insert(after_raw, RESEND_KEY)
        for key, what in keys_shown:
            keys.add_row(key, what)
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
