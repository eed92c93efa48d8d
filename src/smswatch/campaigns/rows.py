"""A campaign's figures computed from its rows, in one pass: the one place they are computed.

The campaign screen (from rows it keeps in memory, brought up to date a few at a time: see
book.py), `campaign show` and the report (from rows just read) all call `view_of`, so they
cannot disagree. The rows are compact tuples, not domain objects: a campaign can have 100,000
recipients, and the screen keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smswatch.core.campaigns import Summary
from smswatch.core.domain import State

# A message row (store/queries/campaign_rows.py MESSAGE_ROW).
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
    M_FINISHED,
    M_CONFLICTS,
    M_FIRST,
    M_LAST,
    M_QUEUED_AT,
) = range(16)
# A recipient row (store/queries/campaign_rows.py RECIPIENT_ROW).
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


def view_of(
    summary: Summary,
    messages: Mapping[str, Row],
    recipients: Iterable[Row],
    now: int,
    deadlines: Mapping[State, int],
) -> Any:
    """The CampaignView (campaigns/analysis.py) of a campaign's message and recipient rows."""
    from smswatch.campaigns.tally import Sums, Tally

    costs = Sums.of(messages.values()).costs()
    return Tally.of(messages, recipients).view(summary, costs, now, deadlines)
