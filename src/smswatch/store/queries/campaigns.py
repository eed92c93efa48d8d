"""Campaign queries over either back end (SQL both SQLite and PostgreSQL accept), and tagging.

Named campaigns are the `campaigns` table (written with each message's first event); bursts are
found when read, with window functions over when each untagged message was first seen, so they
need no state of their own and come out the same on every instance of a shared database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smswatch.campaigns.rule import clean_name
from smswatch.core.campaigns import (
    BURST,
    BURST_GAP_US,
    CostRow,
    Selector,
    Series,
    Summary,
    SummaryBuilder,
    burst_name,
)
from smswatch.core.domain import UNATTRIBUTED, MessageState
from smswatch.store.queries.rows import MESSAGE_COLUMNS, message_from_row

_EXPECTED = (
    "CASE WHEN m.total_recipients > m.known_recipients THEN m.total_recipients "
    "ELSE m.known_recipients END"
)
# Per campaign, gateway and currency (SummaryBuilder.add reads them in this order).
_SUMS = (
    f"count(*), sum({_EXPECTED}), "
    f"sum(m.n_queued + {_EXPECTED} - m.known_recipients), sum(m.n_processing), sum(m.n_sent), "
    "sum(m.n_delivered), sum(m.n_failed), sum(m.n_unconfirmed), "
    "sum(CASE WHEN m.finished_at IS NULL THEN 1 ELSE 0 END), sum(m.conflicts), "
    "sum(m.total_cost), min(m.first_received_at), max(m.last_received_at)"
)
_UNTAGGED = (
    "m.message_id NOT IN (SELECT message_id FROM campaigns) "
    f"AND m.message_id != '{UNATTRIBUTED}' AND m.first_received_at IS NOT NULL"
)
# Untagged messages numbered by burst within their gateway: a new burst starts wherever the
# gap since the gateway's previous first-seen message is over the limit (?).
_BURSTS = (
    "WITH u AS (SELECT m.message_id, m.provider, m.first_received_at, "
    "CASE WHEN m.first_received_at - lag(m.first_received_at) OVER "
    "(PARTITION BY m.provider ORDER BY m.first_received_at, m.message_id) <= ? "
    f"THEN 0 ELSE 1 END AS fresh FROM messages m WHERE {_UNTAGGED}), "
    "b AS (SELECT message_id, provider, sum(fresh) OVER (PARTITION BY provider "
    "ORDER BY first_received_at, message_id ROWS UNBOUNDED PRECEDING) AS burst FROM u) "
)
_SERIES_COLUMNS = ("queued_at", "sent_at", "delivered_at", "failed_at", "state_at")


def member(sel: Selector, alias: str = "m") -> tuple[str, list[Any]]:
    """A condition on messages (as `alias`) that holds for the campaign's messages."""
    if not sel.is_burst:
        return (
            f"{alias}.message_id IN (SELECT message_id FROM campaigns WHERE campaign = ?)",
            [sel.name],
        )
    untagged = _UNTAGGED.replace("m.", f"{alias}.")
    return (
        f"{alias}.provider = ? AND {alias}.first_received_at >= ? "
        f"AND {alias}.first_received_at <= ? AND {untagged}",
        [sel.provider, sel.start, sel.end],
    )


def recipient_member(sel: Selector | None, alias: str = "r") -> tuple[str, list[Any]]:
    """A condition on recipients (as `alias`) for the campaign's recipients ("1 = 1": all)."""
    if sel is None:
        return "1 = 1", []
    if not sel.is_burst:
        return (
            f"{alias}.message_id IN (SELECT message_id FROM campaigns WHERE campaign = ?)",
            [sel.name],
        )
    cond, params = member(sel, "cm")
    return f"{alias}.message_id IN (SELECT cm.message_id FROM messages cm WHERE {cond})", params


def message_member(sel: Selector | None, alias: str = "m") -> tuple[str, list[Any]]:
    return ("1 = 1", []) if sel is None else member(sel, alias)


class CampaignQueries:
    """Mixed into store/queries/reader.py's StoreQueries: needs its `_all`."""

    NO_LIMIT: int | None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def campaigns(self, gap: int = BURST_GAP_US) -> list[Summary]:
        """Every campaign, named ones and bursts, the most recently active first."""
        named: dict[str, SummaryBuilder] = {}
        rows = await self._all(
            f"SELECT c.campaign, min(c.source), m.provider, m.currency, {_SUMS} "
            "FROM campaigns c JOIN messages m ON m.message_id = c.message_id "
            "GROUP BY c.campaign, m.provider, m.currency"
        )
        for name, source, provider, currency, *sums in rows:
            b = named.get(name) or named.setdefault(name, SummaryBuilder(Selector(name), source))
            b.add(provider, currency, tuple(sums))
        found = [b.build() for b in named.values()]
        found += await self._bursts(gap)
        return sorted(found, key=lambda s: s.last_received_at or 0, reverse=True)

    async def bursts(self, provider: str, gap: int = BURST_GAP_US) -> list[Summary]:
        """One gateway's bursts."""
        return await self._bursts(gap, provider)

    async def _bursts(self, gap: int, provider: str | None = None) -> list[Summary]:
        rows = await self._all(
            f"{_BURSTS} SELECT b.provider, b.burst, m.currency, min(m.first_received_at), "
            f"max(m.first_received_at), {_SUMS} FROM b JOIN messages m "
            "ON m.message_id = b.message_id GROUP BY b.provider, b.burst, m.currency",
            [gap],
        )
        spans: dict[tuple[str, int], list[Any]] = {}
        for prov, burst, currency, start, end, *sums in rows:
            span = spans.setdefault((prov, burst), [start, end, []])
            span[0], span[1] = min(span[0], start), max(span[1], end)
            span[2].append((currency, tuple(sums)))
        out = []
        for (prov, _), (start, end, parts) in spans.items():
            if provider and prov != provider:
                continue
            sel = Selector(burst_name(prov, start), BURST, prov, start, end)
            b = SummaryBuilder(sel, BURST)
            for currency, sums in parts:
                b.add(prov, currency, sums)
            out.append(b.build())
        return out

    async def campaign(self, name: str, gap: int = BURST_GAP_US) -> Summary | None:
        """One campaign by name (a burst by its generated name), as of now. The name is
        taken as names are stored (trimmed, bounded), so the one a sender gave finds it."""
        name = clean_name(name) or name
        rows = await self._all(
            f"SELECT c.campaign, min(c.source), m.provider, m.currency, {_SUMS} "
            "FROM campaigns c JOIN messages m ON m.message_id = c.message_id "
            "WHERE c.campaign = ? GROUP BY c.campaign, m.provider, m.currency",
            [name],
        )
        if rows:
            b = SummaryBuilder(Selector(name), rows[0][1])
            for _, _, provider, currency, *sums in rows:
                b.add(provider, currency, tuple(sums))
            return b.build()
        provider = name.rsplit("-", 2)[0] if name.count("-") >= 2 else None
        for s in await self._bursts(gap, provider):
            if s.name == name:
                return s
        return None

    async def campaign_of(self, message_id: str) -> str | None:
        rows = await self._all(
            "SELECT campaign FROM campaigns WHERE message_id = ? ORDER BY tagged_at DESC",
            [message_id],
        )
        return rows[0][0] if rows else None

    async def campaign_messages(
        self, sel: Selector, limit: int = 500, failed_only: bool = False
    ) -> list[MessageState]:
        """The campaign's messages, the most recently active first."""
        cond, params = member(sel)
        if failed_only:
            cond += " AND (m.n_failed > 0 OR m.conflicts > 0)"
        columns = ", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))
        rows = await self._all(
            f"SELECT {columns} FROM messages m WHERE {cond} "
            "ORDER BY m.last_received_at DESC LIMIT ?",
            [*params, limit],
        )
        return [message_from_row(r) for r in rows]

    async def costs(self, sel: Selector | None) -> list[CostRow]:
        cond, params = message_member(sel)
        rows = await self._all(
            "SELECT m.provider, m.currency, sum(m.total_cost), "
            f"sum(CASE WHEN {_EXPECTED} > 0 THEN m.total_cost * m.n_failed / {_EXPECTED} "
            "ELSE 0 END), sum(m.n_delivered) "
            f"FROM messages m WHERE {cond} AND m.total_cost IS NOT NULL "
            "GROUP BY m.provider, m.currency ORDER BY m.provider, m.currency",
            params,
        )
        return [CostRow(p, c, float(s or 0), float(w or 0), int(d or 0)) for p, c, s, w, d in rows]

    async def series(
        self,
        sel: Selector | None,
        column: str,
        start: int,
        step: int,
        buckets: int,
        state: str | None = None,
    ) -> Series:
        """How many of the campaign's recipients reached a state (by the time in `column`)
        in each of `buckets` buckets of `step` microseconds from `start`. Over "state_at",
        the recipients that are final, or (`state`) final in that state: a recipient reported
        delivered and then failed counts once, where it ended."""
        if column not in _SERIES_COLUMNS:
            raise ValueError(f"no series over {column}")
        cond, params = recipient_member(sel)
        end = start + step * buckets
        extra = ""
        if column == "state_at":
            extra = " AND r.state IN ('delivered', 'failed')"
        if state is not None:
            if state not in ("delivered", "failed"):
                raise ValueError(f"no series of final state {state}")
            extra = f" AND r.state = '{state}'"
        # Grouped by the bucket's alias from a subquery: PostgreSQL does not take `GROUP BY`
        # the select list's expression again, since its parameters are other ones ($7, $8).
        rows = await self._all(
            f"SELECT t.b, count(*) FROM (SELECT (r.{column} - ?) / ? AS b FROM recipients r "
            f"WHERE {cond} AND r.{column} >= ? AND r.{column} < ?{extra}) t GROUP BY t.b",
            [start, step, *params, start, end],
        )
        counts = [0] * buckets
        for bucket, n in rows:
            if 0 <= int(bucket) < buckets:
                counts[int(bucket)] += int(n)
        return Series(start, step, tuple(counts))

    async def activity_span(self, sel: Selector | None) -> tuple[int | None, int | None]:
        """When the campaign's first event happened (a message queued, or any recipient's first
        state) and its latest (event time): the span the report's charts cover."""
        rcond, rparams = recipient_member(sel)
        mcond, mparams = message_member(sel)
        rows = await self._all(
            "SELECT min(r.queued_at), min(r.processing_at), min(r.sent_at), min(r.state_at), "
            f"max(r.last_event_at) FROM recipients r WHERE {rcond}",
            rparams,
        )
        queued = await self._all(f"SELECT min(m.queued_at) FROM messages m WHERE {mcond}", mparams)
        firsts = [v for v in (*rows[0][:4], queued[0][0]) if v is not None] if rows else []
        last = rows[0][4] if rows else None
        return (min(firsts) if firsts else None), last

    async def activity_buckets(self, sel: Selector | None, start: int, step: int) -> list[int]:
        """The buckets of `step` microseconds from `start` in which anything happened to the
        campaign (a message queued, a recipient queued, processing, sent, delivered or failed,
        by event time), in order: the gaps between them are its silences."""
        rcond, rparams = recipient_member(sel)
        mcond, mparams = message_member(sel)
        parts, params = [], []
        for column in ("queued_at", "processing_at", "sent_at", "delivered_at", "failed_at"):
            parts.append(
                f"SELECT (r.{column} - ?) / ? AS b FROM recipients r "
                f"WHERE {rcond} AND r.{column} >= ?"
            )
            params += [start, step, *rparams, start]
        parts.append(
            f"SELECT (m.queued_at - ?) / ? AS b FROM messages m WHERE {mcond} AND m.queued_at >= ?"
        )
        params += [start, step, *mparams, start]
        rows = await self._all(
            f"SELECT t.b FROM ({' UNION ALL '.join(parts)}) t GROUP BY t.b ORDER BY t.b", params
        )
        return [int(b) for (b,) in rows]

    async def open_at(self, sel: Selector | None, at: int) -> int:
        """How many of the campaign's recipients had been seen by `at` (event time) and were
        not final yet then: whether a silence at `at` left anyone waiting."""
        cond, params = recipient_member(sel)
        return int(
            (
                await self._all(
                    "SELECT count(*) FROM recipients r WHERE "
                    "coalesce(r.queued_at, r.processing_at, r.sent_at, r.state_at) <= ? "
                    "AND (r.state NOT IN ('delivered', 'failed') OR r.state_at > ?) "
                    f"AND {cond}",
                    [at, at, *params],
                )
            )[0][0]
        )

    async def rejections_between(self, start: int, end: int) -> list[tuple[str, int]]:
        """Rejected requests received in [start, end], per rejection code, most first. A
        rejected request belongs to no message (it may not even parse), so a campaign's are
        those that arrived while it ran; the quarantine keeps a bounded sample of them."""
        rows = await self._all(
            "SELECT q.code, count(*) FROM quarantine q WHERE q.received_at >= ? "
            "AND q.received_at <= ? GROUP BY q.code ORDER BY count(*) DESC, q.code",
            [start, end],
        )
        return [(str(code), int(n)) for code, n in rows]

    async def suppression(self, sel: Selector | None) -> list[tuple[Any, ...]]:
        """Failed recipients: (recipient, provider, error_code, error_message, retryable,
        message_id, carrier, state_at, named campaign, when the number was last delivered to
        in any message); the caller keeps those the catalogue says never to text again."""
        cond, params = recipient_member(sel)
        return await self._all(
            "SELECT r.recipient, r.provider, r.error_code, r.error_message, r.retryable, "
            "r.message_id, r.carrier, r.state_at, c.campaign, "
            "(SELECT max(d.state_at) FROM recipients d WHERE d.recipient = r.recipient "
            " AND d.state = 'delivered') "
            "FROM recipients r LEFT JOIN campaigns c ON c.message_id = r.message_id "
            f"WHERE {cond} AND r.state = 'failed' ORDER BY r.recipient, r.provider, r.state_at",
            params,
        )
