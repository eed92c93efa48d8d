"""The read queries both back ends answer with the same SQL: what inspect, export, stats, the
TUI's data source, the campaign book and the reconciler ask (store/api.py names the parts).

The SQL is written once, with `?` (or `?N`) placeholders; a back end's `_all` and `_one` run it
in its own placeholder style. What differs is the back end's own: how a message's events are
reached (SQLite's timeline index; PostgreSQL writes the state with the events), the operator of
a case-blind match and what LIMIT takes for "no limit".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from smswatch.core.campaigns import Selector
from smswatch.core.domain import FUNNEL, MessageState, RecipientState, State
from smswatch.core.figures import FailureGroup, Latency, Totals, percentiles
from smswatch.core.records import Rejection, StoredEvent, paged
from smswatch.store.queries.campaign_rows import CampaignRows
from smswatch.store.queries.campaigns import CampaignQueries, message_member, recipient_member
from smswatch.store.queries.reconcile_rows import ReconcileRows
from smswatch.store.queries.rows import (
    MESSAGE_COLUMNS,
    RECIPIENT_COLUMNS,
    STORED_EVENT_COLUMNS,
    message_from_row,
    placeholders,
    recipient_from_row,
    stored_event,
)

# What a user types in a filter matches anywhere in a field, whatever the case: `contains`
# gives the pattern, with LIKE's wildcards escaped so a typed `%` or `_` is literal. A back
# end's `LIKE` is the whole match of one parameter: SQLite's LIKE ignores ASCII case, and
# PostgreSQL's ILIKE does the same.
ESCAPED = "? ESCAPE '\\'"


def literal(text: str) -> str:
    """`text` as a LIKE pattern (for `LIKE`) that matches only itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(text: str) -> str:
    """The LIKE pattern (for `LIKE`) matching `text` anywhere, taken literally."""
    return f"%{literal(text)}%"


class StoreQueries(CampaignQueries, CampaignRows, ReconcileRows):
    """The queries of store/api.py's StoreReader in SQL both back ends run. A back end sets
    `LIKE` and `NO_LIMIT`, runs the SQL (`_all`, `_one`) and answers the queries whose SQL is
    its own (`timeline`, `message_events`, `events_after`)."""

    LIKE: str  # e.g. f"LIKE {ESCAPED}": a case-blind match of the next parameter (`contains`)
    NO_LIMIT: int | None  # what LIMIT takes for "no limit"

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None without a row)."""
        raise NotImplementedError

    async def timeline(self, message_id: str, recipient: str | None) -> list[StoredEvent]:
        """A recipient's events (or the message-level ones, for None) in event-time order."""
        raise NotImplementedError

    async def message_events(self, message_id: str) -> list[StoredEvent]:
        raise NotImplementedError

    async def events_after(
        self, after: int, limit: int = 1000, message_id: str | None = None
    ) -> list[StoredEvent]:
        """Up to `limit` stored events with an id above `after`, in storage order: one page of
        a keyset pagination."""
        raise NotImplementedError

    # --- messages -------------------------------------------------------------------------------

    async def resolve_message_id(self, text: str) -> str | None:
        """An exact message id, or the one message whose id starts with `text`."""
        found = await self.message_ids_starting(text, 2)
        return found[0] if len(found) == 1 else None

    async def message_ids_starting(self, text: str, limit: int = 3) -> list[str]:
        """[text] if it is a message id, else up to `limit` ids that start with it."""
        if await self._one("SELECT 1 FROM messages WHERE message_id = ?", (text,)):
            return [text]
        rows = await self._all(
            f"SELECT message_id FROM messages WHERE message_id {self.LIKE} "
            "ORDER BY message_id LIMIT ?",
            (literal(text) + "%", limit),
        )
        return [r[0] for r in rows]

    async def message(self, message_id: str) -> MessageState | None:
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
        )
        return message_from_row(rows[0]) if rows else None

    async def recent_messages(
        self, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]:
        """Newest activity first; `failed_only`: with failed or conflicting recipients."""
        where = "WHERE n_failed > 0 OR conflicts > 0" if failed_only else ""
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages {where} "
            "ORDER BY last_received_at DESC LIMIT ?",
            (limit,),
        )
        return [message_from_row(r) for r in rows]

    async def search_messages(
        self, query: str, limit: int = 200, failed_only: bool = False
    ) -> list[MessageState]:
        """Messages matching a filter: `query` within the message id, a recipient's phone, a
        state, an error code, a carrier, the gateway or the channel (`contains`). Newest
        activity first."""
        q = query.strip()
        if not q:
            return await self.recent_messages(limit, failed_only=failed_only)
        like = contains(q)
        clauses = [f"m.message_id {self.LIKE}", f"m.provider {self.LIKE}", f"m.channel {self.LIKE}"]
        params: list[Any] = [like, like, like]
        clauses.append(
            f"m.message_id IN (SELECT message_id FROM recipients WHERE recipient {self.LIKE} "
            f"OR error_code {self.LIKE} OR carrier {self.LIKE})"
        )
        params += [like, like, like]
        # A state is matched by the message's count of it (a column), not a scan of recipients.
        clauses += [f"m.n_{s.value} > 0" for s in FUNNEL if q.lower() in s.value]
        failed = " AND (m.n_failed > 0 OR m.conflicts > 0)" if failed_only else ""
        sql = (
            f"SELECT {', '.join('m.' + c.strip() for c in MESSAGE_COLUMNS.split(','))} "
            f"FROM messages m WHERE ({' OR '.join(clauses)}){failed} "
            "ORDER BY m.last_received_at DESC LIMIT ?"
        )
        rows = await self._all(sql, (*params, limit))
        return [message_from_row(r) for r in rows]

    # --- recipients and events ------------------------------------------------------------------

    async def count_recipients(self, message_id: str) -> int:
        return int(
            await self._one("SELECT count(*) FROM recipients WHERE message_id = ?", (message_id,))
        )

    async def recipients(
        self,
        message_id: str,
        *,
        state: State | None = None,
        text: str | None = None,
        failed_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecipientState]:
        clauses = ["message_id = ?"]
        params: list[Any] = [message_id]
        if state is not None:
            clauses.append("state = ?")
            params.append(state.value)
        if failed_only:
            clauses.append("(state = 'failed' OR conflict = 1)")
        if text:
            like, match = contains(text), self.LIKE
            clauses.append(
                f"(recipient {match} OR state {match} OR error_code {match} OR carrier {match})"
            )
            params += [like] * 4
        sql = (
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE {' AND '.join(clauses)} "
            "ORDER BY recipient LIMIT ? OFFSET ?"
        )
        rows = await self._all(sql, (*params, self.NO_LIMIT if limit is None else limit, offset))
        return [recipient_from_row(r) for r in rows]

    async def recipient(self, message_id: str, recipient: str) -> RecipientState | None:
        rows = await self._all(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE message_id = ? AND recipient = ?",
            (message_id, recipient),
        )
        return recipient_from_row(rows[0]) if rows else None

    async def recent_events(self, limit: int = 200) -> list[StoredEvent]:
        """The newest stored events, oldest first (for filling a live log at start)."""
        rows = await self._all(
            f"SELECT {STORED_EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [stored_event(r) for r in reversed(rows)]

    async def log_fields(self, ids: Sequence[int]) -> dict[int, tuple[str, bool | None, Any]]:
        """What the log keeps of these events beyond a StoredEvent: (dedupe key, retryable,
        message facts as the log's JSON text), for an export that `smswatch import` restores."""
        found: dict[int, tuple[str, bool | None, Any]] = {}
        for start in range(0, len(ids), 500):  # bounded: PostgreSQL numbers its parameters
            part = list(ids[start : start + 500])
            rows = await self._all(
                "SELECT id, dedupe_key, retryable, info FROM events "
                f"WHERE id IN ({placeholders(len(part))})",
                part,
            )
            for i, key, retryable, info in rows:
                found[i] = (key, None if retryable is None else bool(retryable), info)
        return found

    async def iter_events(
        self, message_id: str | None = None, chunk: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        """Every stored event (of one message, if given) in storage order, a page at a time."""
        async for ev in paged(lambda after, n: self.events_after(after, n, message_id), chunk):
            yield ev

    # --- aggregates -----------------------------------------------------------------------------

    async def totals(self, campaign: Selector | None = None) -> Totals:
        """The whole store's counters, or one campaign's."""
        rcond, rparams = recipient_member(campaign)
        mcond, mparams = message_member(campaign)
        funnel = dict.fromkeys(FUNNEL, 0)
        for state, n in await self._all(
            f"SELECT r.state, count(*) FROM recipients r WHERE r.state IS NOT NULL AND {rcond} "
            "GROUP BY r.state",
            rparams,
        ):
            funnel[State(state)] += n
        unseen = await self._one(
            "SELECT coalesce(sum(CASE WHEN m.total_recipients > m.known_recipients "
            f"THEN m.total_recipients - m.known_recipients ELSE 0 END), 0) FROM messages m "
            f"WHERE {mcond}",
            mparams,
        )
        funnel[State.QUEUED] += int(unseen or 0)
        # Each message counts its own events: summing them avoids scanning the events table.
        by_provider = {
            p: int(n)
            for p, n in await self._all(
                f"SELECT m.provider, sum(m.events) FROM messages m WHERE {mcond} "
                "GROUP BY m.provider",
                mparams,
            )
        }
        row = (
            await self._all(
                "SELECT count(*), "
                "coalesce(sum(CASE WHEN m.finished_at IS NULL THEN 1 ELSE 0 END), 0), "
                "coalesce(sum(m.conflicts), 0), min(m.first_received_at), "
                f"max(m.last_received_at) FROM messages m WHERE {mcond}",
                mparams,
            )
        )[0]
        return Totals(
            events=sum(by_provider.values()),
            messages=row[0],
            in_flight=int(row[1]),
            funnel=funnel,
            conflicts=int(row[2]),
            first_received_at=row[3],
            last_received_at=row[4],
            by_provider=by_provider,
        )

    async def failures(
        self,
        limit: int = 50,
        message_id: str | None = None,
        campaign: Selector | None = None,
    ) -> list[FailureGroup]:
        """Failed recipients grouped by gateway and error code, most frequent first."""
        cond, params = recipient_member(campaign)
        where = f"r.state = 'failed' AND {cond}"
        if message_id:
            where += " AND r.message_id = ?"
            params = [*params, message_id]
        # The latest message of the code among the same recipients (the campaign's).
        inner, inner_params = recipient_member(campaign, "r2")
        rows = await self._all(
            "SELECT r.provider, r.error_code, count(*), max(r.error_at), "
            "(SELECT r2.error_message FROM recipients r2 WHERE r2.state = 'failed' "
            " AND r2.provider = r.provider AND (r2.error_code = r.error_code "
            f" OR (r2.error_code IS NULL AND r.error_code IS NULL)) AND {inner} "
            " ORDER BY r2.error_at DESC NULLS LAST LIMIT 1), "
            "max(r.retryable) "
            f"FROM recipients r WHERE {where} GROUP BY r.provider, r.error_code "
            "ORDER BY count(*) DESC LIMIT ?",
            (*inner_params, *params, limit),
        )
        return [
            FailureGroup(p, code, n, at, msg, None if retry is None else bool(retry))
            for p, code, n, at, msg, retry in rows
        ]

    async def stuck(
        self, deadlines: dict[State, int], now: int, limit: int = 200, since: int | None = None
    ) -> list[RecipientState]:
        """Recipients still queued/processing/sent longer than their state's deadline (µs);
        with `since`, only those that entered it since then."""
        parts, params = [], []
        for state, deadline in deadlines.items():
            if since is None:
                parts.append("(state = ? AND state_at < ?)")
                params += [state.value, now - deadline]
            else:
                parts.append("(state = ? AND state_at < ? AND state_at >= ?)")
                params += [state.value, now - deadline, since]
        if not parts:
            return []
        rows = await self._all(
            f"SELECT {RECIPIENT_COLUMNS} FROM recipients "
            f"WHERE state IN ('queued', 'processing', 'sent') AND ({' OR '.join(parts)}) "
            "ORDER BY state_at LIMIT ?",
            (*params, limit),
        )
        return [recipient_from_row(r) for r in rows]

    async def count_stuck(
        self, deadlines: dict[State, int], now: int, campaign: Selector | None = None
    ) -> int:
        cond, params = recipient_member(campaign)
        total = 0
        for state, deadline in deadlines.items():
            total += await self._one(
                "SELECT count(*) FROM recipients r WHERE r.state = ? AND r.state_at < ? "
                f"AND {cond}",
                (state.value, now - deadline, *params),
            )
        return total

    async def latency_samples(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> dict[str, list[int]]:
        """Each recipient's time from queued to sent, from sent to delivered and from queued to
        delivered (µs): what latency percentiles and histograms are made of."""
        cond, params = recipient_member(campaign)
        if message_id is not None:
            cond += " AND r.message_id = ?"
            params = [*params, message_id]
        rows = await self._all(
            "SELECT coalesce(r.queued_at, m.queued_at), r.sent_at, r.delivered_at "
            f"FROM recipients r JOIN messages m ON m.message_id = r.message_id WHERE {cond}",
            params,
        )
        return {
            "queued_to_sent": [
                s - q for q, s, _ in rows if q is not None and s is not None and s >= q
            ],
            "sent_to_delivered": [
                d - s for _, s, d in rows if s is not None and d is not None and d >= s
            ],
            "queued_to_delivered": [
                d - q for q, _, d in rows if q is not None and d is not None and d >= q
            ],
        }

    async def latency(
        self, message_id: str | None = None, campaign: Selector | None = None
    ) -> Latency:
        samples = await self.latency_samples(message_id, campaign)
        return Latency(
            percentiles(samples["queued_to_sent"]),
            percentiles(samples["sent_to_delivered"]),
            percentiles(samples["queued_to_delivered"]),
        )

    async def quarantine(self, limit: int = 100) -> list[Rejection]:
        """The newest rejected requests first."""
        rows = await self._all(
            "SELECT received_at, status, code, reason, remote, method, path, provider, "
            "content_type, body_size, body FROM quarantine ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [Rejection(*r) for r in rows]

    async def quarantine_count(self) -> int:
        return int(await self._one("SELECT count(*) FROM quarantine") or 0)
