"""The reconciler's queries (reconcile/reconciler.py), on either back end: which messages to
ask the gateways about, and what the answers have shown missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smswatch.core.domain import UNATTRIBUTED


class ReconcileRows:
    """Mixed into store/queries/reader.py's StoreQueries: needs its `_all`."""

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def quiet_unfinished(
        self, provider: str, before: int, after: int = 0, limit: int = 500
    ) -> list[tuple[str, int, int | None]]:
        """(message id, last receive time, first event time) of a gateway's unfinished messages
        last heard of between `after` and `before` (nothing received since), the quietest first:
        those whose webhooks may be lost. A message the gateway already called final (a poll
        found no recipient pending) is left out: its gap is known, asking again changes
        nothing. The first event's time is the gateway's clock: where to look in its list."""
        rows = await self._all(
            "SELECT m.message_id, m.last_received_at, m.first_at FROM messages m "
            "WHERE m.provider = ? "
            "AND m.finished_at IS NULL AND m.last_received_at < ? AND m.last_received_at >= ? "
            "AND m.message_id != ? AND NOT (m.gateway_at IS NOT NULL AND m.gateway_pending = 0) "
            "ORDER BY m.last_received_at LIMIT ?",
            [provider, before, after, UNATTRIBUTED, limit],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def missing_totals(self) -> tuple[int, int, int]:
        """(delivery reports missing by the gateways' counts, messages with any, recipients
        whose final state only a poll brought)."""
        rows = await self._all(
            "SELECT coalesce(sum(CASE WHEN m.gateway_delivered > m.n_delivered "
            "THEN m.gateway_delivered - m.n_delivered ELSE 0 END "
            "+ CASE WHEN m.gateway_failed > m.n_failed THEN m.gateway_failed - m.n_failed "
            "ELSE 0 END), 0), coalesce(sum(CASE WHEN m.gateway_delivered > m.n_delivered "
            "OR m.gateway_failed > m.n_failed THEN 1 ELSE 0 END), 0) "
            "FROM messages m WHERE m.gateway_at IS NOT NULL"
        )
        recovered = await self._all("SELECT count(*) FROM recipients r WHERE r.polled = 1")
        return int(rows[0][0]), int(rows[0][1]), int(recovered[0][0])
