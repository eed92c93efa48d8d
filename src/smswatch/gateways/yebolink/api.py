"""YeboLink's message API: `GET /api/v1/messages/:id` and the filtered list
`GET /api/v1/messages` (channel, status, startDate, endDate, page, limit ≤ 100), key in the
`X-API-Key` header (gateways.md §2.5).

The answers' shapes are not published ("presumably `{success, data:{…}}`"), so everything here
is read leniently: the message may sit in `data`, `data.message`, or be the body itself; a list
in `data`, `data.messages` (or `items`, `results`, `rows`), or be the body itself. Field names
are taken in snake_case and camelCase (the API's query parameters are camelCase), and a field of
an odd type becomes None. Errors are `{"success": false, "error": "…"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Flag, Identifier, Integer, Number, Text, Time
from smswatch.reconcile.api import (
    NOT_FOUND,
    GatewayApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_event,
)
from smswatch.reconcile.config import YEBOLINK_RATE
from smswatch.timefmt import iso, to_us

MESSAGES_PATH = "/api/v1/messages"
MAX_LIMIT = 100
FILTER_STATUSES = ("queued", "sent", "delivered", "failed")  # what the list filter accepts

# Public statuses (§2.3) as smswatch states; Twilio's `undelivered` is a failure. Others
# (`scheduled`, `cancelled` from the admin UI, anything new) keep their text and no state.
STATES = {
    "queued": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "failed": State.FAILED,
    "undelivered": State.FAILED,
}

_LIST_KEYS = ("messages", "items", "results", "rows", "data")
_PAGING_KEYS = ("pagination", "meta", "paging", "page_info", "pageInfo")


def _aliases(*names: str) -> Any:
    return Field(None, validation_alias=AliasChoices(*names))


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: Identifier = _aliases("message_id", "messageId", "id", "_id")
    recipient: Identifier = _aliases("recipient", "to", "phone", "recipient_phone")
    status: Text = _aliases("status", "state")
    channel: Text = _aliases("channel")
    error_code: Text = _aliases("error_code", "errorCode")
    error_message: Text = _aliases("error_message", "errorMessage")
    provider_message_id: Identifier = _aliases(
        "provider_message_id", "providerMessageId", "twilio_sid", "sid"
    )
    metadata: Annotated[dict[str, Any] | None, BeforeValidator(_object)] = _aliases("metadata")
    credits_used: Number = _aliases("credits_used", "creditsUsed", "credits")
    created_at: Time = _aliases("created_at", "createdAt")
    sent_at: Time = _aliases("sent_at", "sentAt")
    delivered_at: Time = _aliases("delivered_at", "deliveredAt")
    failed_at: Time = _aliases("failed_at", "failedAt")
    updated_at: Time = _aliases("updated_at", "updatedAt")


class _Paging(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    total: Integer = _aliases("total", "totalCount", "total_count", "count", "totalItems")
    pages: Integer = _aliases("pages", "totalPages", "total_pages", "lastPage", "last_page")
    has_more: Flag = _aliases("hasMore", "has_more", "hasNext", "has_next", "hasNextPage")
    next: Any = _aliases("next", "nextPage", "next_page")


@dataclass(frozen=True, slots=True)
class YeboLinkMessage:
    """One message (one recipient) as YeboLink reports it. `status` is the text as given;
    `state` the smswatch state it means, None for a status smswatch does not know. Times are
    microseconds since the epoch."""

    message_id: str
    status: str | None
    state: State | None
    recipient: str | None = None
    channel: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    provider_message_id: str | None = None
    metadata: dict[str, Any] | None = None
    credits_used: float | None = None
    created_at: int | None = None
    sent_at: int | None = None
    delivered_at: int | None = None
    failed_at: int | None = None
    updated_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the filtered list. `skipped`: entries that were not a message with an id."""

    messages: tuple[YeboLinkMessage, ...]
    page: int
    has_more: bool
    total: int | None = None
    skipped: int = 0


def state_of(status: str | None) -> State | None:
    return STATES.get(status.strip().lower()) if status else None


def parse_message(obj: Any, fallback_id: str | None = None) -> YeboLinkMessage | None:
    """One message object; None if it is not an object or has no id (and none is known)."""
    if not isinstance(obj, dict):
        return None
    fields = _Message.model_validate(obj)
    message_id = fields.message_id or fallback_id
    if message_id is None:
        return None
    return YeboLinkMessage(
        message_id=message_id,
        status=fields.status,
        state=state_of(fields.status),
        recipient=fields.recipient,
        channel=fields.channel,
        error_code=fields.error_code,
        error_message=fields.error_message,
        provider_message_id=fields.provider_message_id,
        metadata=fields.metadata,
        credits_used=fields.credits_used,
        created_at=fields.created_at,
        sent_at=fields.sent_at,
        delivered_at=fields.delivered_at,
        failed_at=fields.failed_at,
        updated_at=fields.updated_at,
        raw=obj,
    )


_ID_KEYS = ("message_id", "messageId", "id", "_id", "recipient", "to")


def _looks_like_message(obj: dict[str, Any]) -> bool:
    return "status" in obj or any(k in obj for k in _ID_KEYS)


def _unwrap(body: Any) -> Any:
    """`{success, data: X}`, `{status: "ok", data: X}` or `{data: X}` → X; a bare message or
    list as it is (a message is told by its id or recipient: `status` is in both)."""
    if isinstance(body, dict) and "data" in body and not any(k in body for k in _ID_KEYS):
        return body["data"]
    return body


def single(body: Any, message_id: str) -> tuple[bool, YeboLinkMessage | None]:
    """The message in a lookup's answer: (True, the message), (True, None) for `data: null`
    (no such message), or (False, None) if the answer has no message in any shape we know."""
    inner = _unwrap(body)
    if inner is None:
        return True, None
    if isinstance(inner, dict) and isinstance(inner.get("message"), dict):
        inner = inner["message"]
    if isinstance(inner, list):
        # A list for a lookup: the entry with our id, else the only one.
        found = [m for m in (parse_message(o) for o in inner) if m and m.message_id == message_id]
        if found:
            return True, found[0]
        if len(inner) != 1:
            return False, None
        inner = inner[0]
    if isinstance(inner, dict) and _looks_like_message(inner):
        return True, parse_message(inner, message_id)
    return False, None


def _items(inner: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """The entries of a list answer, and the object they came in (for its paging fields)."""
    if isinstance(inner, list):
        return inner, {}
    if isinstance(inner, dict):
        for key in _LIST_KEYS:
            value = inner.get(key)
            if isinstance(value, list):
                return value, inner
            if isinstance(value, dict):  # {data: {messages: [...]}} under a {data} we kept
                found = _items(value)
                if found is not None:
                    return found
    return None


def parse_page(body: Any, page: int, limit: int) -> Page | None:
    """One page of the list; None if the answer holds no list."""
    found = _items(_unwrap(body))
    if found is None:
        return None
    entries, holder = found
    messages = tuple(m for m in (parse_message(o) for o in entries) if m is not None)
    # Paging facts may sit beside the list, in a pagination/meta object, or at the top.
    sources = [holder, *(_object(holder.get(k)) for k in _PAGING_KEYS)]
    if isinstance(body, dict):
        sources += [body, *(_object(body.get(k)) for k in _PAGING_KEYS)]
    paging = [_Paging.model_validate(s) for s in sources if s]
    has_more = next((p.has_more for p in paging if p.has_more is not None), None)
    pages = next((p.pages for p in paging if p.pages is not None), None)
    total = next((p.total for p in paging if p.total is not None and p.total >= 0), None)
    if has_more is None:
        nexts = [p.next for p in paging if "next" in p.model_fields_set]
        if nexts:
            has_more = any(n not in (None, "", False) for n in nexts)
        elif pages is not None:
            has_more = page < pages
        elif total is not None:
            has_more = page * limit < total
        else:
            # Nothing says: a full page probably has a next one; an empty page ends it.
            has_more = len(entries) >= limit
    return Page(messages, page, has_more, total, len(entries) - len(messages))


def _when(value: int | datetime | None) -> str | None:
    """A filter time (µs since the epoch, or a datetime) as ISO 8601 UTC."""
    if value is None:
        return None
    return iso(to_us(value) if isinstance(value, datetime) else value)


def message_event(msg: YeboLinkMessage, received_at: int) -> Event | None:
    """A message answer as its recipient's event, folded into that recipient like a webhook's,
    except that a final state a webhook pushed is never replaced by a polled one (domain.fold);
    None when the answer names no recipient or a status smswatch does not know."""
    if msg.state is None or not msg.recipient:
        return None
    state: State = msg.state
    at = (
        {
            State.DELIVERED: msg.delivered_at,
            State.FAILED: msg.failed_at,
            State.SENT: msg.sent_at,
        }.get(state)
        or msg.updated_at
        or msg.created_at
    )
    raw = msg.raw or {"message_id": msg.message_id, "status": msg.status}
    error = (msg.error_code, msg.error_message)
    return polled_event(
        "yebolink", msg.message_id, msg.recipient, state, state.value, at, received_at, raw, error
    )


class YeboLinkApi(GatewayApi):
    name: ClassVar[str] = "yebolink"
    title: ClassVar[str] = "YeboLink"
    key_header: ClassVar[str] = "X-API-Key"
    default_rate: ClassVar[int] = YEBOLINK_RATE

    def _check_success(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("success") is False:
            words, code = self._describe(200, body, b"")
            raise self._fail(f"answered an error in a 2xx: {words}", code=code)

    async def message(self, message_id: str) -> YeboLinkMessage | None:
        """One message; None if YeboLink does not know it. Raises ApiError, AuthError or
        RateLimited."""
        body = await self._get(f"{MESSAGES_PATH}/{path_segment(message_id)}", lookup=True)
        if body is NOT_FOUND:
            return None
        self._check_success(body)
        readable, found = single(body, message_id)
        if not readable:
            raise self._fail(
                "the message answer holds no message in any shape smswatch knows: check "
                "--yebolink-api-url"
            )
        return found

    async def messages(
        self,
        status: str | State | None = None,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        page: int = 1,
        limit: int = MAX_LIMIT,
        channel: str | None = None,
    ) -> Page:
        """One page of messages, filtered by status (queued, sent, delivered, failed), by
        creation time (`start`, `end`: µs since the epoch or datetimes) and channel."""
        if page < 1 or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"page must be ≥ 1 and limit 1-{MAX_LIMIT}")
        params = {"page": str(page), "limit": str(limit)}
        if status is not None:
            status = str(status).strip().lower()
            if status not in FILTER_STATUSES:
                raise ValueError(f"status must be one of {', '.join(FILTER_STATUSES)}")
            params["status"] = status
        if channel is not None:
            params["channel"] = channel
        for name, value in (("startDate", start), ("endDate", end)):
            text = _when(value)
            if text is not None:
                params[name] = text
        body = await self._get(MESSAGES_PATH, params)
        self._check_success(body)
        result = parse_page(body, page, limit)
        if result is None:
            raise self._fail(
                "the message list answer holds no list in any shape smswatch knows: check "
                "--yebolink-api-url"
            )
        return result

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        msg = await self.message(message_id)
        if msg is None:
            return Lookup(found=False, final=False)
        recipient = await self.answer_recipient(
            message_id, msg.message_id, msg.recipient, recipient_of
        )
        msg = replace(msg, message_id=message_id, recipient=recipient)
        event = message_event(msg, received_at())
        return Lookup(True, msg.state is not None and msg.state.terminal, event)

    def listed_event(
        self, msg: YeboLinkMessage, recipient: str | None, received_at: int
    ) -> Event | None:
        return message_event(replace(msg, recipient=recipient), received_at)
