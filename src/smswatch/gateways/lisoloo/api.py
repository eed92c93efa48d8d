"""Lisoloo's status API: `GET {BASE}/api/v1/lisoloo/sms-api/status/{message_id}`, key in the
`app-key` header, 120 calls a minute per key (gateways.md §1.4-1.6).

The answer is one aggregate per message, not per recipient:
`{"status_code": 200, "data": {"message_id", "status", "total_recipients", "delivered",
"failed", "pending", "created_at", "updated_at"}}`; an unknown id (or another tenant's) is
404 `{"detail": "Message not found"}`.

Parsing is lenient inside `data` (a field missing or of an odd type becomes None, as in the
webhook adapters) and strict about the envelope: an answer without a `data` object is not a
status, and saying so beats reporting a message with no counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from smswatch.core.domain import POLLED_PREFIX, Event, MessageInfo, State
from smswatch.gateways.base import Identifier, Integer, Text, Time
from smswatch.reconcile.api import (
    NOT_FOUND,
    GatewayApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_payload,
)
from smswatch.reconcile.config import LISOLOO_RATE

STATUS_PATH = "/api/v1/lisoloo/sms-api/status/"

# The lifecycle's terminal statuses (§1.3): the docs' polling sample stops only on delivered and
# failed, but a message that expired or was rejected will not change either.
TERMINAL = frozenset(
    {
        "delivered",
        "partially_delivered",
        "delivery_unknown",
        "undelivered",
        "rejected",
        "expired",
        "failed",
    }
)


MAX_COUNT = 10**9  # more recipients than any message has: a count past it is nonsense


def _count(value: int | None) -> int | None:
    return value if value is None or 0 <= value <= MAX_COUNT else None


Count = Annotated[Integer, AfterValidator(_count)]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: Identifier = None
    status: Text = None
    total_recipients: Count = None
    delivered: Count = None
    failed: Count = None
    pending: Count = None
    created_at: Time = None
    updated_at: Time = None


@dataclass(frozen=True, slots=True)
class LisolooStatus:
    """One message's aggregate at Lisoloo. Counts are of recipients; `pending` is every
    recipient not yet in a terminal status. Times are microseconds since the epoch."""

    message_id: str
    status: str | None  # the lifecycle value as given (pending, sent, delivered, expired, ...)
    total_recipients: int | None
    delivered: int | None
    failed: int | None
    pending: int | None
    created_at: int | None
    updated_at: int | None  # the last state change
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # `data`

    @property
    def terminal(self) -> bool:
        """The message's status will not change any more."""
        return self.status is not None and self.status.lower() in TERMINAL


def parse_status(body: Any, message_id: str) -> LisolooStatus | None:
    """A 2xx answer as a status; None if the envelope is not the documented one (the caller
    turns that into an ApiError with its own words)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    data = body["data"]
    fields = _Data.model_validate(data)
    return LisolooStatus(
        # The id we asked for if the answer has none; the gateway's if it has (the same id,
        # perhaps normalised).
        message_id=fields.message_id or message_id,
        status=fields.status,
        total_recipients=fields.total_recipients,
        delivered=fields.delivered,
        failed=fields.failed,
        pending=fields.pending,
        created_at=fields.created_at,
        updated_at=fields.updated_at,
        raw=data,
    )


def status_event(status: LisolooStatus, received_at: int) -> Event:
    """A status answer as a message-level event: Lisoloo's status API gives a message's counts
    only, which the event carries (the message then shows the gateway's counts beside the
    webhooks')."""
    counts = (status.delivered, status.failed, status.pending or 0)
    at = status.updated_at or status.created_at or received_at
    key = f"lisoloo|{POLLED_PREFIX}status|{status.message_id}|{status.status}|{counts}|{at}"
    return Event(
        provider="lisoloo",
        event_id=f"poll:{status.message_id}:{at}",
        dedupe_key=key,
        event_type=f"{POLLED_PREFIX}status",
        state=State.UNKNOWN,
        message_id=status.message_id,
        recipient=None,
        occurred_at=at,
        received_at=received_at,
        payload=polled_payload(status.raw or {"message_id": status.message_id}),
        time_estimated=status.updated_at is None,
        message_info=MessageInfo(total_recipients=status.total_recipients, gateway_counts=counts),
    )


class LisolooApi(GatewayApi):
    name: ClassVar[str] = "lisoloo"
    title: ClassVar[str] = "Lisoloo"
    key_header: ClassVar[str] = "app-key"
    default_rate: ClassVar[int] = LISOLOO_RATE

    async def status(self, message_id: str) -> LisolooStatus | None:
        """The message's aggregate status; None if Lisoloo does not know it (404: unknown, or
        another tenant's). Raises ApiError, AuthError or RateLimited."""
        body = await self._get(STATUS_PATH + path_segment(message_id), lookup=True)
        if body is NOT_FOUND:
            return None
        if isinstance(body, dict) and (
            body.get("success") is False
            or (isinstance(body.get("status_code"), int) and body["status_code"] >= 400)
        ):
            words, code = self._describe(body.get("status_code") or 200, body, b"")
            raise self._fail(f"answered an error in a 2xx: {words}", code=code)
        status = parse_status(body, message_id)
        if status is None:
            raise self._fail(
                "the status answer is not the documented shape "
                '({"status_code": 200, "data": {...}}): check --lisoloo-api-url'
            )
        return status

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        status = await self.status(message_id)
        if status is None:
            return Lookup(found=False, final=False)
        self.check_answer(message_id, status.message_id)
        if status.delivered is None or status.failed is None:
            # Counts it did not give are unknown, not zero: stored as zero they would hide
            # every missing report.
            raise self.wrong_answer("the status answer has no delivered and failed counts")
        event = status_event(replace(status, message_id=message_id), received_at())
        return Lookup(True, status.terminal or status.pending == 0, event)
