"""Which named campaign a new message joins, decided when the message is first stored."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from smswatch.core.campaigns import looks_like_burst
from smswatch.core.domain import UNATTRIBUTED, Event

DEFAULT_KEYS: tuple[str, ...] = ("campaign", "campaign_id", "batch_id")
MAX_NAME = 120  # a name longer than this is cut: it is shown in narrow columns and filenames

# Where a message's campaign came from; stored with it.
TAG, METADATA, RUN, GATEWAY = "tag", "metadata", "run", "gateway"


def clean_name(value: Any) -> str | None:
    """A campaign name from untrusted input: a string or number, stripped, never blank.
    Control characters are kept as data (sanitize.py draws them) but the name is bounded; NUL
    becomes U+2400, as PostgreSQL must store it, so a name is the same on both back ends."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip().replace("\x00", "\u2400")
    return text[:MAX_NAME] if text else None


def own_name(value: str | None) -> str | None:
    """A name an operator gives a campaign (`campaign tag`, `--campaign`, the palette): as
    `clean_name`, but not one that looks like a send burst's, which it would hide (a named
    campaign is looked up first). Raises ValueError saying so."""
    name = clean_name(value)
    if name is not None and looks_like_burst(name):
        raise ValueError(f"{name!r} is how send bursts are named: pick another name")
    return name


def from_metadata(
    metadata: str | None, keys: tuple[str, ...], payload: str | None = None
) -> str | None:
    """The first of `keys` the sender's metadata (compact JSON text) names a campaign with.
    `payload`: the webhook's body, where the metadata is whole when the text was cut."""
    if not metadata or not keys:
        return None
    try:
        data = json.loads(metadata)
    except ValueError:
        # Cut to fit its column (providers.base.json_text): not JSON any more, though the
        # sender named its campaign all the same. Rare, so the body is parsed only then.
        data = _metadata_in(payload)
    if not isinstance(data, dict):
        return None
    for key in keys:
        name = clean_name(data.get(key))
        if name:
            return name
    return None


def _metadata_in(payload: str | None) -> Any:
    """The sender's metadata in a webhook body: under `data` (YeboLink), or at the top."""
    try:
        body = json.loads(payload) if payload else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, dict) and "metadata" in data:
        return data["metadata"]
    return body.get("metadata")


@dataclass(slots=True)
class CampaignRule:
    """The metadata keys to look for, and the run's campaign (which the palette can change
    while the engine runs: a plain attribute, read by the writer's thread at each batch)."""

    keys: tuple[str, ...] = DEFAULT_KEYS
    active: str | None = None

    def assign(self, first: Event) -> tuple[str, str] | None:
        """(campaign, source) for a message whose first stored event is `first`, or None: it
        will be grouped by burst. The sender's metadata is more specific than the run's
        blanket tag, so it wins; the gateway's own grouping (Twilio's messaging service, Vonage's
        client-ref) is how the account sends, often the same for many campaigns, so the run's
        tag, which the operator gave this one, wins over it."""
        info = first.message_info
        if info is not None and info.metadata:
            name = from_metadata(info.metadata, self.keys, first.payload)
            if name:
                return name, METADATA
        if self.active:
            return self.active, RUN
        if info is not None and (name := clean_name(info.group)):
            return name, GATEWAY
        return None

    def tags(self, firsts: Iterable[Event]) -> list[tuple[str, str, str, int]]:
        """The `campaigns` rows (message id, campaign, source, tagged at) for the messages
        these first events opened."""
        rows = []
        for ev in firsts:
            if ev.message_id and ev.message_id != UNATTRIBUTED:
                found = self.assign(ev)
                if found:
                    rows.append((ev.message_id, found[0], found[1], ev.received_at))
        return rows
