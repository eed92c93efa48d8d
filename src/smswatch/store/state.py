"""Recipient and message state in memory, owned by the SQLite writer's thread.

The event log is what must be durable before a 2xx; the folded state is derived from it. So the
writer keeps the state here, folds each batch into it, and writes it to the state file's
`recipients` and `messages` only at a checkpoint: every recipient once, however many events it
had since the last one. A checkpoint also records the id of the last event it covers, so after a
crash the state is the checkpoint plus the log after that id, folded again (`replay`).

Entries are loaded from the state file on first use. Dirty ones (changed since the last
snapshot) are never evicted, nor is anything before the checkpoint that took it is written; the
oldest clean ones are dropped to bound memory.

Not thread-safe: only the writer's thread touches a `StateCache`. What leaves it for other
threads (the hub, the UI) is a copy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from smswatch.core.domain import (
    FUNNEL,
    UNATTRIBUTED,
    Event,
    MessageState,
    RecipientState,
    State,
    apply_event_to_message,
    apply_transition,
    fold,
)
from smswatch.core.live import MessageChanges, Stored, Transition
from smswatch.store.queries.rows import (
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    message_from_row,
    message_row,
    placeholders,
    recipient_from_row,
    recipient_row,
)

# SQLite's default limit on host parameters is 32766 here, but stay far below it.
CHUNK = 400
_JOINED_RECIPIENT_COLUMNS = ", ".join("r." + c.strip() for c in RECIPIENT_COLUMNS.split(","))

Key = tuple[str, str]


@dataclass(slots=True)
class BatchEffects:
    """What folding one batch did: the events it stored and their transitions."""

    new_events: list[Event] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    # The first event of each message this batch stored first (for its campaign).
    new_messages: list[Event] = field(default_factory=list)
    duplicates: int = 0


# A message's (recipients per state, finished, conflicts), to count what changed since.
Baseline = tuple[tuple[int, ...], bool, int]


def baseline(msg: MessageState) -> Baseline:
    # MessageState.count for each state, inlined: this runs for every message a tick touches.
    c = msg.counts
    total = msg.total_recipients
    unseen = 0 if total is None else max(total - msg.known_recipients, 0)
    counts = (
        c[State.QUEUED] + unseen,
        c[State.PROCESSING],
        c[State.SENT],
        c[State.DELIVERED],
        c[State.FAILED],
        c[State.UNCONFIRMED],
    )
    return counts, msg.finished, msg.conflicts


def copy_message(m: MessageState) -> MessageState:
    # By hand: dataclasses.replace costs several times as much, once per message and batch.
    return MessageState(
        m.message_id,
        m.provider,
        m.total_recipients,
        m.total_messages,
        m.total_cost,
        m.currency,
        m.scheduled_at,
        m.channel,
        m.metadata,
        dict(m.counts),
        m.known_recipients,
        m.conflicts,
        m.events,
        m.queued_at,
        m.first_at,
        m.last_at,
        m.first_received_at,
        m.last_received_at,
        m.finished_at,
        m.gateway_delivered,
        m.gateway_failed,
        m.gateway_pending,
        m.gateway_at,
    )


class StoredLatest(Protocol):
    """What attribution asks of the tables (see StateCache.attribute)."""

    def recipient_message(self, recipient: str, provider: str) -> str | None:
        """The latest message of the gateway that has this recipient."""
        ...

    def open_message(self, provider: str) -> str | None:
        """The gateway's latest message still in flight (not `unattributed`)."""
        ...

    def load(self, message_id: str, recipient: str | None) -> None:
        """Make sure the cache holds the message (and its recipient) before the fold."""
        ...


class StateCache:
    def __init__(self, keep_recipients: int = 50_000, keep_messages: int = 20_000) -> None:
        self.recipients: dict[Key, RecipientState] = {}
        self.messages: dict[str, MessageState] = {}
        self.dirty_recipients: set[Key] = set()
        self.dirty_messages: set[str] = set()
        # Messages changed since the hub last asked, with how they were then (None: new).
        # Kept through a rebuild after a failed batch: the baselines are still right.
        self.touched: dict[str, Baseline | None] = {}
        # Messages with every recipient in the cache (first seen by this cache, none dropped).
        self.complete: set[str] = set()
        self.keep_recipients = keep_recipients
        self.keep_messages = keep_messages

    @property
    def dirty(self) -> int:
        return len(self.dirty_recipients) + len(self.dirty_messages)

    def clear(self) -> None:
        self.recipients.clear()
        self.messages.clear()
        self.complete.clear()
        self.dirty_recipients.clear()
        self.dirty_messages.clear()

    # --- loading --------------------------------------------------------------------------------

    def load(self, db: sqlite3.Connection, events: Iterable[Event]) -> None:
        """Bring in from the tables every message and recipient these events touch and the cache
        does not hold yet: a few statements for the whole batch."""
        # Membership tests, not `set - dict.keys()`: that walks the whole cache.
        messages, recipients = self.messages, self.recipients
        message_ids = {
            ev.message_id for ev in events if ev.message_id and ev.message_id not in messages
        }
        ordered = list(message_ids)
        for i in range(0, len(ordered), CHUNK):
            chunk = ordered[i : i + CHUNK]
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages "
                f"WHERE message_id IN ({placeholders(len(chunk))})"
            )
            for row in db.execute(sql, chunk):
                self.messages[row[0]] = message_from_row(row)
        # A message the state file does not have yet has no recipients there either: all of
        # them are (and stay, until one is dropped) in the cache, so nothing to look up.
        self.complete.update(mid for mid in message_ids if mid not in messages)
        complete = self.complete
        pairs = {
            key
            for ev in events
            if ev.message_id
            and ev.recipient
            and ev.message_id not in complete
            and (key := (ev.message_id, ev.recipient)) not in recipients
        }
        listed = list(pairs)
        for i in range(0, len(listed), CHUNK):
            chunk = listed[i : i + CHUNK]
            values = ",".join("(?,?)" for _ in chunk)
            # A join on a VALUES list uses the primary key; `(a, b) IN (VALUES …)` scans the table.
            sql = (
                f"WITH k(m, p) AS (VALUES {values}) SELECT {_JOINED_RECIPIENT_COLUMNS} FROM k "
                "JOIN recipients r ON r.message_id = k.m AND r.recipient = k.p"
            )
            for row in db.execute(sql, [x for pair in chunk for x in pair]):
                rec = recipient_from_row(row)
                self.recipients[rec.key] = rec

    def _loaded_message(self, db: sqlite3.Connection | None, message_id: str) -> None:
        if message_id not in self.messages and db is not None:
            sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ?"
            row = db.execute(sql, (message_id,)).fetchone()
            if row:
                self.messages[message_id] = message_from_row(row)

    def _loaded_recipient(self, db: sqlite3.Connection, key: Key) -> None:
        if key not in self.recipients:
            sql = (
                f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE message_id = ? AND recipient = ?"
            )
            row = db.execute(sql, key).fetchone()
            if row:
                self.recipients[key] = recipient_from_row(row)

    # --- attribution ----------------------------------------------------------------------------

    def attribute(self, ev: Event, stored: StoredLatest) -> str:
        """Find the message an event without a message id belongs to (both back ends' rule).

        Lisoloo's docs say to correlate on the recipient: the latest message of the same gateway
        that already has this recipient; else the latest of its messages still in flight; else
        the placeholder message `unattributed`. Without a recipient there is nothing to correlate
        on, and guessing would overwrite another message's totals. What this cache folded since
        the tables were last written is newer than they are, so it is looked at first: a plain
        scan, as such events are rare. `stored` answers for the tables and loads what it names.
        """
        if not ev.recipient:
            stored.load(UNATTRIBUTED, None)
            return UNATTRIBUTED
        mine = [
            self.recipients[k]
            for k in self.dirty_recipients
            if k[1] == ev.recipient and self.recipients[k].provider == ev.provider
        ]
        if mine:
            return max(mine, key=lambda r: r.updated_at or 0).message_id
        found = stored.recipient_message(ev.recipient, ev.provider)
        if found is not None:
            stored.load(found, ev.recipient)
            return found
        open_ = [
            self.messages[m]
            for m in self.dirty_messages
            if m != UNATTRIBUTED
            and self.messages[m].provider == ev.provider
            and not self.messages[m].finished
        ]
        if open_:
            mid = max(open_, key=lambda m: m.last_received_at or 0).message_id
        else:
            mid = stored.open_message(ev.provider) or UNATTRIBUTED
        stored.load(mid, ev.recipient)
        return mid

    # --- folding --------------------------------------------------------------------------------

    def fold_requests(
        self,
        requests: Iterable[Sequence[Event]],
        existing: dict[str, str],
        effects: BatchEffects,
        attribute: Callable[[Event], str],
    ) -> list[list[Stored]]:
        """Dedupe and fold a batch, request by request, as both writers do: an event whose
        dedupe key is in `existing` (stored already, or earlier in this batch) is a duplicate
        answered with the message it was stored under; any other gets a message id from
        `attribute` if it has none, and is folded. One list of outcomes per request."""
        outcomes: list[list[Stored]] = []
        for events in requests:
            result = []
            for ev in events:
                if ev.dedupe_key in existing:
                    effects.duplicates += 1
                    result.append(Stored(ev.event_id, existing[ev.dedupe_key], True))
                    continue
                if not ev.message_id:  # absent or blank: providers.base.absent_if_blank
                    ev = ev.with_message_id(attribute(ev))
                existing[ev.dedupe_key] = ev.message_id
                self.apply(ev, effects)
                # The answer names the message the event was stored under, attributed or not.
                result.append(Stored(ev.event_id, ev.message_id, False))
            outcomes.append(result)
        return outcomes

    def apply(self, ev: Event, effects: BatchEffects) -> None:
        """Fold one new event (its message id already resolved) into the state."""
        mid = ev.message_id
        assert mid is not None
        effects.new_events.append(ev)
        msg = self.messages.get(mid)
        if msg is None:
            msg = self.messages[mid] = MessageState(mid, ev.provider)
        if msg.events == 0:
            effects.new_messages.append(ev)
        if mid not in self.touched:
            self.touched[mid] = baseline(msg) if msg.events > 0 else None
        self.dirty_messages.add(mid)
        apply_event_to_message(msg, ev)
        if ev.recipient:
            key = (mid, ev.recipient)
            rec = self.recipients.get(key)
            if rec is None:
                rec = self.recipients[key] = RecipientState(mid, ev.recipient, ev.provider)
            self.dirty_recipients.add(key)
            had_conflict = rec.conflict
            entered = rec.first_at.get(rec.state) if rec.state else None
            before = fold(rec, ev)
            after = rec.state
            apply_transition(msg, before, after, rec.conflict and not had_conflict)
            since = ev.occurred_at - entered if entered is not None else None
            effects.transitions.append(Transition(ev, before, after, since))
        else:
            effects.transitions.append(Transition(ev, None, None, None))
        if msg.finished:
            if msg.finished_at is None:
                msg.finished_at = ev.received_at
        else:
            msg.finished_at = None

    def replay(self, db: sqlite3.Connection, events: Iterable[Event]) -> int:
        """Fold stored events again (the log after the last checkpoint), in log order: the
        result is the state as it was when they were first folded."""
        effects = BatchEffects()
        n = 0
        chunk: list[Event] = []
        for ev in events:
            chunk.append(ev)
            if len(chunk) >= 2000:
                n += self._replay_chunk(db, chunk, effects)
                chunk = []
                effects = BatchEffects()
        return n + self._replay_chunk(db, chunk, effects)

    def _replay_chunk(self, db: sqlite3.Connection, chunk: list[Event], fx: BatchEffects) -> int:
        self.load(db, chunk)
        for ev in chunk:
            self.apply(ev, fx)
        return len(chunk)

    # --- checkpoints ----------------------------------------------------------------------------

    def snapshot(self, after: int, upto: int) -> CheckpointRows:
        """The rows of everything changed since the last snapshot, as of log id `upto` (the
        newest event folded in); they count as clean from now on."""
        snapshot = CheckpointRows(after)
        self.take(snapshot, None, upto)
        return snapshot

    def take(self, snapshot: CheckpointRows, limit: int | None, upto: int) -> bool:
        """Add to `snapshot` the rows of up to `limit` changed entries; when the rest is taken
        too, the snapshot is complete as of `upto` and True is returned.

        A big snapshot is taken a slice at a time, between batches, so that no batch waits for
        the rows of a whole second of changes. That is still exact: an entry changed after its
        slice is dirty again and taken again in a later slice, whose row replaces the earlier
        one; every row of the finished snapshot is then the state as of `upto`."""
        recipients, messages = self.dirty_recipients, self.dirty_messages
        if limit is not None and len(recipients) + len(messages) > limit:
            take_r = _pop(recipients, limit)
            take_m = _pop(messages, max(limit - len(take_r), 0))
            done = False
        else:
            take_r, take_m = recipients, messages
            self.dirty_recipients, self.dirty_messages = set(), set()
            done = True
        for k in take_r:
            snapshot.recipients[k] = recipient_row(self.recipients[k])
        for m in take_m:
            snapshot.messages[m] = message_row(self.messages[m])
        if done:
            snapshot.upto = upto
        return done

    def redirty(self, snapshot: CheckpointRows) -> None:
        """A snapshot that could not be written: its entries are dirty again."""
        self.dirty_recipients |= snapshot.recipients.keys() & self.recipients.keys()
        self.dirty_messages |= snapshot.messages.keys() & self.messages.keys()

    def dirty_rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(recipient rows, message rows) of everything changed and not yet snapshotted."""
        recipients = [recipient_row(self.recipients[k]) for k in self.dirty_recipients]
        messages = [message_row(self.messages[m]) for m in self.dirty_messages]
        return recipients, messages

    def trim(self) -> None:
        """Drop the oldest clean entries to bound memory; only after a checkpoint is written,
        so that what is dropped is in the state file."""
        for mid, _ in _trim(self.recipients, self.keep_recipients, self.dirty_recipients):
            self.complete.discard(mid)
        for mid in _trim(self.messages, self.keep_messages, self.dirty_messages):
            self.complete.discard(mid)


@dataclass(slots=True)
class CheckpointRows:
    """What a checkpoint writes: rows of the changed state, good up to log id `upto`, and the
    timeline entries of the events in (`after`, `upto`]."""

    after: int
    recipients: dict[Key, tuple[Any, ...]] = field(default_factory=dict)
    messages: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    upto: int = -1  # set once the snapshot is complete


def _pop(keys: set[Any], n: int) -> list[Any]:
    return [keys.pop() for _ in range(min(n, len(keys)))]


def _trim(entries: dict[Any, Any], keep: int, dirty: set[Any]) -> list[Any]:
    """Drop the oldest half when over the limit (dicts keep insertion order), never a dirty one:
    clean entries reload from the state file if they are needed again. Returns the keys
    dropped."""
    if len(entries) <= keep:
        return []
    # Only the oldest keys are looked at, not the whole cache.
    oldest = list(islice(entries, len(entries) - keep // 2))
    dropped = [key for key in oldest if key not in dirty]
    for key in dropped:
        del entries[key]
    return dropped


class TablesLatest:
    """StoredLatest over SQLite's state tables, loading what it names into the cache."""

    def __init__(self, state: StateCache, db: sqlite3.Connection) -> None:
        self.state, self.db = state, db

    def recipient_message(self, recipient: str, provider: str) -> str | None:
        sql = (
            "SELECT message_id FROM recipients WHERE recipient = ? AND provider = ? "
            "ORDER BY updated_at DESC LIMIT 1"
        )
        row = self.db.execute(sql, (recipient, provider)).fetchone()
        return str(row[0]) if row else None

    def open_message(self, provider: str) -> str | None:
        sql = (
            "SELECT message_id FROM messages WHERE provider = ? AND finished_at IS NULL "
            "AND message_id != ? ORDER BY last_received_at DESC LIMIT 1"
        )
        row = self.db.execute(sql, (provider, UNATTRIBUTED)).fetchone()
        return str(row[0]) if row else None

    def load(self, message_id: str, recipient: str | None) -> None:
        self.state._loaded_message(self.db, message_id)
        if recipient:
            self.state._loaded_recipient(self.db, (message_id, recipient))


def pull_changes(
    state: StateCache, db: sqlite3.Connection | None, copies: bool = True
) -> MessageChanges:
    """Everything `touched` since the last pull, and start over. Messages a rebuild left out of
    the cache are read back from the state file `db` first (None: the cache holds them all)."""
    touched, state.touched = state.touched, {}
    funnel = dict.fromkeys(FUNNEL, 0)
    messages: list[MessageState] = []
    new = in_flight = conflicts = changed = 0
    for mid, before in touched.items():
        state._loaded_message(db, mid)
        msg = state.messages.get(mid)
        if msg is None:
            continue  # made only by a batch that failed
        counts, finished, flagged = baseline(msg)
        if before is None:
            new += 1
            before = ((0,) * len(FUNNEL), True, 0)
        for s, now, then in zip(FUNNEL, counts, before[0], strict=True):
            funnel[s] += now - then
        in_flight += int(not finished) - int(not before[1])
        conflicts += flagged - before[2]
        changed += 1
        if copies:
            messages.append(copy_message(msg))
    return MessageChanges(tuple(messages), funnel, new, in_flight, conflicts, changed)
