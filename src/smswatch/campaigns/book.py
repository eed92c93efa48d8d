"""Campaigns kept in memory for the live screens, brought up to date from the store a few rows
at a time.

Reading a 100,000-recipient campaign from the store takes a quarter of a second, and the
dashboard wants every campaign's progress every two seconds. So the book reads everything once,
then at each refresh only what changed since the last: the messages with an event received
since (an index on the receive time), the campaign rows written since (their ids grow), and the
recipients of the changed messages that belong to a campaign someone is looking at. Rows
replace rows, so reading one twice does no harm: each refresh reads a few seconds back, for the
events committed late or checkpointed after the last look.

Summaries are sums over message rows (campaigns/tally.py Sums), so a changed message
subtracts its old part and adds its new one. Bursts are grown as the store's query defines them
(untagged messages of a gateway first seen within the gap of each other); anything the increments
cannot follow (a message tagged by hand out of a burst, two bursts joined by a late message) is
read again from the store.

Memory is bounded: message rows are kept for campaigns active in the last hour (older
campaigns keep their summary; a late event for one reads it again), and recipient rows for the
campaigns whose screen was open in the last minute and for the two most recent running ones of
at most 150,000 recipients (about 1 KB a recipient).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smswatch.campaigns.columns import (
    M_CONFLICTS,
    M_FAILED,
    M_FIRST,
    M_ID,
    M_LAST,
    M_PROVIDER,
    M_QUEUED_AT,
    R_MESSAGE,
    Row,
)
from smswatch.campaigns.tally import Sums, Tally
from smswatch.core.campaigns import BURST, BURST_GAP_US, Selector, Summary, burst_name
from smswatch.core.domain import UNATTRIBUTED, State

if TYPE_CHECKING:
    from smswatch.store.api import CampaignBookQueries

LOOK_BACK_US = 10_000_000  # each refresh reads this far before the last one's time
PREFETCH = 2  # the most recently active unfinished campaigns are watched before anyone asks
PREFETCH_MAX = 150_000  # ... if they have at most this many recipients (memory: ~1 KB each)
KEEP_ACTIVE_US = 3_600_000_000  # message rows are kept for campaigns active this recently
WATCH_S = 60.0  # recipient rows are kept this long after a campaign's screen last asked
TAG_LOOK_BACK = 2000  # campaign rows read again (ids handed out but committed late)


@dataclass
class _Campaign:
    selector: Selector
    source: str
    messages: dict[str, Row] = field(default_factory=dict)  # empty once evicted
    stored: Summary | None = None  # as the store last summed it (for an evicted campaign)
    complete: bool = False  # `messages` holds every message of the campaign
    sums: Sums = field(default_factory=Sums)  # of `messages`, when complete
    tally: Tally | None = None  # its recipients, while watched
    watched_at: float = 0.0

    @property
    def summary(self) -> Summary | None:
        if self.complete:
            return self.sums.summary(self.selector, self.source) if self.messages else None
        return self.stored

    def put(self, m: Row) -> None:
        """A message's row, or its new version."""
        mid = m[M_ID]
        old = self.messages.pop(mid, None)  # and in again at the end: last changed, last
        if old is not None:
            self.sums.remove(old)
        self.messages[mid] = m
        self.sums.add(m)
        if self.tally is not None and old is not None and old[M_QUEUED_AT] != m[M_QUEUED_AT]:
            # Its recipients' latency counts from the message's queued time: again.
            for recipient in list(self.tally.by_message.get(mid, ())):
                row, _ = self.tally.rows[(mid, recipient)]
                self.tally.put(row, m[M_QUEUED_AT])

    def drop(self, mid: str) -> None:
        old = self.messages.pop(mid, None)
        if old is not None:
            self.sums.remove(old)
        if self.tally is not None:
            for recipient in list(self.tally.by_message.get(mid, ())):
                self.tally.discard(mid, recipient)


class CampaignBook:
    def __init__(
        self,
        reader: Callable[[], Awaitable[CampaignBookQueries]],
        clock: Callable[[], int],
        gap: int = BURST_GAP_US,
    ) -> None:
        self._reader = reader  # the store's reader, once it has caught up with the log
        self.clock = clock
        self.gap = gap
        self._lock = asyncio.Lock()
        self._loaded = False
        self._campaigns: dict[str, _Campaign] = {}
        self._of: dict[str, str] = {}  # message id -> campaign name, for messages kept
        self._tag_id = 0
        self._since = 0  # receive time the next refresh reads from
        self.refreshed_at = 0.0  # monotonic time of the last refresh

    # --- what the screens ask -------------------------------------------------------------------

    async def summaries(self) -> list[Summary]:
        await self.refresh()
        found = [c.summary for c in self._campaigns.values() if c.summary is not None]
        return sorted(found, key=lambda s: s.last_received_at or 0, reverse=True)

    async def view(self, name: str, now: int, deadlines: dict[State, int]) -> Any:
        """The CampaignView of a campaign (None if there is none by that name)."""
        await self.refresh()
        c = self._campaigns.get(name)
        if c is None or c.summary is None:
            return None
        c.watched_at = time.monotonic()
        if c.tally is None or not c.complete:
            async with self._lock:
                await self._watch(c)
        summary = c.summary
        if c.tally is None or summary is None:
            return None
        return c.tally.view(summary, c.sums.costs(), now, deadlines)

    async def message_ids(self, name: str, failed_only: bool, limit: int) -> list[str] | None:
        """The campaign's most recently active message ids (None: not a campaign)."""
        await self.refresh()
        c = self._campaigns.get(name)
        if c is None:
            return None
        if not c.complete:
            async with self._lock:
                await self._read_messages(await self._reader(), c)
        # `messages` is kept in the order of their last change (see _Campaign.put): the
        # newest are at the end, and a 100,000-message campaign need not be sorted.
        newest = []
        for m in reversed(c.messages.values()):
            if not failed_only or m[M_FAILED] or m[M_CONFLICTS]:
                newest.append(m)
                if len(newest) >= limit:
                    break
        newest.sort(key=lambda m: (m[M_LAST] or 0, m[M_ID]), reverse=True)
        return [m[M_ID] for m in newest]

    # --- keeping up -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        async with self._lock:
            reader = await self._reader()
            now = self.clock()
            if not self._loaded:
                await self._load(reader, now)
            else:
                await self._catch_up(reader, now)
            self._evict(now)
            await self._prefetch()
            self.refreshed_at = time.monotonic()

    async def _prefetch(self) -> None:
        """Watch the campaigns most likely opened next (the running ones), so that opening
        one shows it at once: reading 100,000 recipients takes a second."""
        summaries = [c.summary for c in self._campaigns.values() if c.summary]
        newest = max((s.last_received_at or 0 for s in summaries), default=0)
        # Running now: unfinished, and active within the hour of the store's newest event (a
        # database from last week, opened to look back, has no running campaign).
        running = sorted(
            (
                c
                for c in self._campaigns.values()
                if (s := c.summary) is not None
                and s.in_flight
                and s.recipients <= PREFETCH_MAX
                and (s.last_received_at or 0) >= newest - KEEP_ACTIVE_US
            ),
            key=lambda c: c.summary.last_received_at or 0 if c.summary else 0,
            reverse=True,
        )
        for c in running[:PREFETCH]:
            c.watched_at = max(c.watched_at, time.monotonic() - WATCH_S / 2)
            if c.tally is None or not c.complete:
                await self._watch(c)

    async def _load(self, reader: CampaignBookQueries, now: int) -> None:
        """Every campaign's summary from the store, and the message rows of the active ones."""
        self._tag_id = await reader.last_tag_id()
        self._since = now - LOOK_BACK_US
        self._campaigns = {}
        for s in await reader.campaigns(self.gap):
            self._campaigns[s.name] = _Campaign(s.selector, s.source, stored=s)
        active = [
            c
            for c in self._campaigns.values()
            if c.summary and (c.summary.last_received_at or 0) >= now - KEEP_ACTIVE_US
        ]
        for c in active:
            await self._read_messages(reader, c)
        self._loaded = True

    async def _read_messages(self, reader: CampaignBookQueries, c: _Campaign) -> None:
        messages = await reader.message_rows_of(c.selector)
        messages.sort(key=lambda m: (m[M_LAST] or 0, m[M_ID]))  # as put() keeps them
        c.messages = {m[M_ID]: m for m in messages}
        c.sums = Sums.of(messages)
        c.complete = True
        for mid in c.messages:
            self._of[mid] = c.selector.name

    async def _watch(self, c: _Campaign) -> None:
        reader = await self._reader()
        if not c.complete:
            await self._read_messages(reader, c)
        recipients = await reader.recipient_rows_of(c.selector)
        c.tally = Tally.of(c.messages, recipients)

    async def _catch_up(self, reader: CampaignBookQueries, now: int) -> None:
        stale: set[str] = set()  # campaigns to read again whole
        touched: set[str] = set()
        # Messages first, then tags: a message's tag is written with its first event, so every
        # message read here has its tag in the second read (SQLite's state even lags the log).
        after = self._since - LOOK_BACK_US
        changed = await reader.messages_since(after)
        self._since = now
        applied: set[str] = set()  # messages whose new row went in
        moved: dict[str, tuple[str, str]] = {}  # message id -> (campaign, source) tagged since
        seen = self._tag_id
        for tag_id, mid, name, source in await reader.tags_since(seen - TAG_LOOK_BACK):
            self._tag_id = max(self._tag_id, tag_id)
            # Rows read again (the look back) matter only for messages kept here: one of a
            # campaign let go of is not moved by its own old row (it would be read again whole,
            # at every refresh).
            if (tag_id > seen or mid in self._of) and self._of.get(mid) != name:
                moved[mid] = (name, source)
        known_ids = {m[M_ID] for m in changed}
        # Messages tagged by hand that did not change otherwise are moved too.
        missing = [mid for mid in moved if mid not in known_ids]
        if missing:
            changed += await reader.message_rows(missing)
            known_ids.update(missing)
        for m in sorted(changed, key=lambda m: (m[M_FIRST] or 0, m[M_ID])):
            mid = m[M_ID]
            if mid == UNATTRIBUTED:
                continue
            was = self._of.get(mid)
            if was is not None and mid not in moved:
                kept = self._campaigns.get(was)
                if kept is not None and kept.messages.get(mid) == m:
                    continue  # read again (the look back), unchanged
            if mid in moved:
                name, source = moved[mid]
            elif was is not None:
                name, source = was, self._campaigns[was].source
            elif (m[M_FIRST] or 0) < now - KEEP_ACTIVE_US:
                # A message of a campaign let go long ago: read its campaign again.
                found = await reader.campaign_of(mid)
                stale.add(found if found is not None else self._burst_for(m, stale))
                continue
            else:
                name, source = self._burst_for(m, stale), BURST
            if was is not None and was != name:
                # Out of its old campaign: a burst may split, a named one just shrinks.
                old = self._campaigns.get(was)
                if old is not None:
                    old.drop(mid)
                    (stale if old.selector.is_burst else touched).add(was)
            c = self._campaigns.get(name)
            if c is None:
                c = self._campaigns[name] = _Campaign(Selector(name), source, complete=True)
            if not c.complete:
                stale.add(name)  # let go of, and active again: read it whole
                continue
            c.put(m)
            self._of[mid] = name
            touched.add(name)
            applied.add(mid)
        for name in stale:
            await self._reread(reader, name)
        for name in touched - stale:
            c = self._campaigns.get(name)
            if c is None:
                continue
            if not c.messages:
                del self._campaigns[name]  # every message moved out
                continue
            if c.tally is not None:
                ids = [mid for mid in applied if mid in c.messages]
                # A message moved in brings all its recipients; a changed one, the changed.
                fresh = [mid for mid in ids if mid in moved]
                for r in [
                    *await reader.recipients_of(fresh),
                    *await reader.recipients_of([i for i in ids if i not in moved], after),
                ]:
                    c.tally.put(r, c.messages[r[R_MESSAGE]][M_QUEUED_AT])

    def _burst_for(self, m: Row, stale: set[str]) -> str:
        """The burst an untagged message joins, as the store's burst query would put it."""
        provider, first = m[M_PROVIDER], m[M_FIRST] or 0
        near = [
            c
            for c in self._campaigns.values()
            if c.selector.is_burst
            and c.selector.provider == provider
            and (c.selector.start or 0) - self.gap <= first <= (c.selector.end or 0) + self.gap
        ]
        if len(near) == 1:
            c = near[0]
            sel = c.selector
            start, end = min(sel.start or first, first), max(sel.end or first, first)
            if start != sel.start:
                stale.add(c.selector.name)  # an earlier first message renames it: read again
                return c.selector.name
            c.selector = Selector(sel.name, BURST, provider, start, end)
            return sel.name
        if near:  # it joins two bursts: the store will say what they became
            for c in near:
                stale.add(c.selector.name)
            return near[0].selector.name
        name = burst_name(provider, first)
        self._campaigns[name] = _Campaign(
            Selector(name, BURST, provider, first, first), BURST, complete=True
        )
        return name

    async def _reread(self, reader: CampaignBookQueries, name: str) -> None:
        """A campaign the increments cannot follow, read from the store again; for a burst,
        every burst of its gateway, which may have split, joined or been renamed."""
        old = self._campaigns.get(name)
        if old is not None and old.selector.is_burst:
            provider = old.selector.provider
            for key in [
                k
                for k, c in self._campaigns.items()
                if c.selector.is_burst and c.selector.provider == provider
            ]:
                for mid in self._campaigns.pop(key).messages:
                    self._of.pop(mid, None)
            for s in await reader.bursts(provider or "", self.gap):
                c = self._campaigns[s.name] = _Campaign(s.selector, BURST, stored=s)
                if (s.last_received_at or 0) >= self.clock() - KEEP_ACTIVE_US:
                    await self._read_messages(reader, c)
            return
        s = await reader.campaign(name, self.gap)
        if s is None:
            self._campaigns.pop(name, None)
            return
        c = self._campaigns[name] = _Campaign(
            s.selector, s.source, stored=s, watched_at=old.watched_at if old else 0.0
        )
        await self._read_messages(reader, c)
        if old is not None and old.tally is not None:
            await self._watch(c)

    def _evict(self, now: int) -> None:
        watching = time.monotonic() - WATCH_S
        for c in self._campaigns.values():
            if c.tally is not None and c.watched_at < watching:
                c.tally = None
            s = c.summary
            if c.tally is not None:
                continue  # on screen, or about to be
            if c.messages and s is not None and (s.last_received_at or 0) < now - KEEP_ACTIVE_US:
                for mid in c.messages:
                    self._of.pop(mid, None)
                c.stored, c.messages, c.sums, c.complete = s, {}, Sums(), False
