"""The columns of a campaign's compact rows, a message row and a recipient row, as the store
reads them (store/campaign_rows.py MESSAGE_ROW, RECIPIENT_ROW). The rows are tuples, not
domain objects: a campaign can have 100,000 recipients, and the screen keeps them. tally.py
computes a campaign's figures from them.
"""

from __future__ import annotations

from typing import Any

# A message row (store/campaign_rows.py MESSAGE_ROW).
(
    M_ID,
    M_PROVIDER,
    M_CURRENCY,
    M_COST,
    M_TOTAL,
    M_KNOWN,
    M_QUEUED,
    M_PROCESSING,
    M_SENT,
    M_DELIVERED,
    M_FAILED,
    M_UNCONFIRMED,
    M_FINISHED,
    M_CONFLICTS,
    M_FIRST,
    M_LAST,
    M_QUEUED_AT,
) = range(17)
# A recipient row (store/campaign_rows.py RECIPIENT_ROW).
(
    R_MESSAGE,
    R_RECIPIENT,
    R_STATE,
    R_STATE_AT,
    R_CARRIER,
    R_PROVIDER,
    R_CODE,
    R_ERROR,
    R_RETRYABLE,
    R_ERROR_AT,
    R_QUEUED_AT,
    R_SENT_AT,
    R_DELIVERED_AT,
    R_FAILED_AT,
) = range(14)

Row = tuple[Any, ...]


def expected(m: Row) -> int:
    total, known = m[M_TOTAL], m[M_KNOWN]
    return known if total is None else max(total, known)
