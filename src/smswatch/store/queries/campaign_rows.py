"""The rows a campaign's figures are computed from (campaigns/columns.py), read from either back
end, whole or only what changed since a point: the campaign book (campaigns/book.py) keeps them
up to date in memory a few rows at a time instead of reading 100,000 again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smswatch.core.campaigns import Selector
from smswatch.core.domain import MessageState
from smswatch.store.queries.campaigns import member, message_member
from smswatch.store.queries.rows import MESSAGE_COLUMNS, message_from_row

MESSAGE_ROW = (
    "m.message_id, m.provider, m.currency, m.total_cost, m.total_recipients, "
    "m.known_recipients, m.n_queued, m.n_processing, m.n_sent, m.n_delivered, m.n_failed, "
    "m.n_unconfirmed, CASE WHEN m.finished_at IS NULL THEN 0 ELSE 1 END, m.conflicts, "
    "m.first_received_at, m.last_received_at, m.queued_at"
)
RECIPIENT_ROW = (
    "r.message_id, r.recipient, r.state, r.state_at, r.carrier, r.provider, r.error_code, "
    "r.error_message, r.retryable, r.error_at, r.queued_at, r.sent_at, r.delivered_at, "
    "r.failed_at"
)
CHUNK = 500  # message ids per IN list


class CampaignRows:
    """Mixed into store/queries/reader.py's StoreQueries: needs its `_all`."""

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def campaign_rows(
        self, sel: Selector | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(message rows, recipient rows) of a campaign (None: of every message)."""
        return await self.message_rows_of(sel), await self.recipient_rows_of(sel)

    async def recipient_rows_of(self, sel: Selector | None) -> list[tuple[Any, ...]]:
        if sel is None:
            where, rparams = "1 = 1", []
        elif sel.is_burst:
            inner, rparams = member(sel, "cm")
            where = f"r.message_id IN (SELECT cm.message_id FROM messages cm WHERE {inner})"
        else:
            where = "r.message_id IN (SELECT message_id FROM campaigns WHERE campaign = ?)"
            rparams = [sel.name]
        recipients = await self._all(
            f"SELECT {RECIPIENT_ROW} FROM recipients r WHERE {where}", rparams
        )
        return [tuple(r) for r in recipients]

    async def message_rows_of(self, sel: Selector | None) -> list[tuple[Any, ...]]:
        cond, params = message_member(sel)
        rows = await self._all(f"SELECT {MESSAGE_ROW} FROM messages m WHERE {cond}", params)
        return [tuple(m) for m in rows]

    async def messages_since(self, after: int) -> list[tuple[Any, ...]]:
        """Message rows with any event received after `after` (µs)."""
        rows = await self._all(
            f"SELECT {MESSAGE_ROW} FROM messages m WHERE m.last_received_at > ?", [after]
        )
        return [tuple(r) for r in rows]

    async def message_rows(self, message_ids: Sequence[str]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(message_ids), CHUNK):
            chunk = list(message_ids[i : i + CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT {MESSAGE_ROW} FROM messages m WHERE m.message_id IN ({marks})", chunk
            )
            out += [tuple(r) for r in rows]
        return out

    async def messages_of(self, message_ids: Sequence[str]) -> list[MessageState]:
        """These messages, whole (in no particular order)."""
        out: list[MessageState] = []
        for i in range(0, len(message_ids), CHUNK):
            chunk = list(message_ids[i : i + CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id IN ({marks})", chunk
            )
            out += [message_from_row(r) for r in rows]
        return out

    async def recipients_of(
        self, message_ids: Sequence[str], after: int | None = None
    ) -> list[tuple[Any, ...]]:
        """Recipient rows of these messages (changed after `after`, by receive time)."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(message_ids), CHUNK):
            chunk = list(message_ids[i : i + CHUNK])
            marks = ", ".join("?" * len(chunk))
            extra, params = (
                ("", chunk) if after is None else (" AND r.updated_at > ?", [*chunk, after])
            )
            rows = await self._all(
                f"SELECT {RECIPIENT_ROW} FROM recipients r WHERE r.message_id IN ({marks}){extra}",
                params,
            )
            out += [tuple(r) for r in rows]
        return out

    async def tags_since(self, after_id: int) -> list[tuple[int, str, str, str]]:
        """Campaign rows written after id `after_id`: (id, message id, campaign, source)."""
        rows = await self._all(
            "SELECT id, message_id, campaign, source FROM campaigns WHERE id > ? ORDER BY id",
            [after_id],
        )
        return [(i, mid, name, source) for i, mid, name, source in rows]

    async def campaign_tags(self) -> dict[str, tuple[str, str, int]]:
        """Every tagged message's campaign: message id -> (campaign, source, tagged at)."""
        rows = await self._all(
            "SELECT message_id, campaign, source, tagged_at FROM campaigns ORDER BY id"
        )
        return {mid: (name, source, int(at)) for mid, name, source, at in rows}

    async def last_tag_id(self) -> int:
        rows = await self._all("SELECT coalesce(max(id), 0) FROM campaigns")
        return int(rows[0][0])
