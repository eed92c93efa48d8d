"""Vonage's Reports API, synchronous records by id: `GET {base}/v2/reports/records?account_id=
KEY&product=SMS&direction=outbound&id=ID`, Basic auth with the API key and its secret
(api.nexmo.com by default; Vonage's Reports API spec 2.2.2, "Load records synchronously": "Only
synchronous version supports retrieval of data records by message/record ID").

`product` is SMS for an SMS API `messageId` and MESSAGES for a Messages API `message_uuid` (a
UUID): one client looks up both. The answer (`json_record_response`): `records`, each with
`message_id`, `to`, `from`, `status` (the receipts' vocabulary for SMS, the callbacks' for
MESSAGES), `error_code` (`"0"`: none), `error_code_description`, `client_ref`, `network`,
`date_received`, `date_finalized` (`2019-06-28T15:30:00+0000`), `total_price`, `currency`; an
id Vonage does not know is listed in `ids_not_found` instead. Errors are RFC 7807 (`type`,
`title`, `detail`, `instance`). A field of an odd type becomes None.

Rate: 10 synchronous requests a second (developer.vonage.com/api-errors/reports, "rate-limit"),
but each record is charged: see reconcile.config.VONAGE_RATE. 429 and Retry-After are handled by
`GatewayApi` as for the other gateways.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Identifier, Text
from smswatch.gateways.vonage.webhook import message_state, sms_state
from smswatch.reconcile.api import NOT_FOUND, BasicAuthApi, Lookup, RecipientOf, polled_event
from smswatch.reconcile.config import VONAGE_RATE
from smswatch.timefmt import to_us

RECORDS_PATH = "/v2/reports/records"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def product_of(message_id: str) -> str:
    """The Reports API product a message id belongs to: a Messages API `message_uuid` is a UUID,
    an SMS API `messageId` (16 hexadecimal digits) is not."""
    return "MESSAGES" if _UUID.fullmatch(message_id.strip()) else "SMS"


def _date(value: Any) -> int | None:
    """A Reports API time (ISO 8601, `+0000` or `Z`) in microseconds; None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return to_us(when) if when.tzinfo is not None else None


Date = Annotated[int | None, BeforeValidator(_date)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_id: Identifier = None
    to: Identifier = None
    status: Text = None
    error_code: Text = None
    error_code_description: Text = None
    date_received: Date = None
    date_finalized: Date = None


@dataclass(frozen=True, slots=True)
class VonageRecord:
    """One message (one part, one recipient) as the Reports API gives it. `state`: our state for
    its `status` (State.UNKNOWN for one smswatch does not know). Times in microseconds."""

    message_id: str
    product: str
    status: str | None
    state: State
    to: str | None = None
    error_code: str | None = None  # None for Vonage's "0"
    error_text: str | None = None
    date_received: int | None = None
    date_finalized: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_record(obj: Any, product: str, fallback_id: str) -> VonageRecord | None:
    """A record of an answer; None if it is not an object with a status."""
    if not isinstance(obj, dict) or "status" not in obj:
        return None
    r = _Record.model_validate(obj)
    code = (r.error_code or "").strip()
    none = not code or (code.isdigit() and not code.strip("0"))
    state = (message_state if product == "MESSAGES" else sms_state)(r.status)
    return VonageRecord(
        message_id=r.message_id or fallback_id,
        product=product,
        status=r.status,
        state=state,
        to=r.to,
        error_code=None if none else code,
        error_text=None if none else r.error_code_description,
        date_received=r.date_received,
        date_finalized=r.date_finalized,
        raw=obj,
    )


def record_event(rec: VonageRecord, received_at: int) -> Event | None:
    """An answer as its recipient's event, folded like a webhook's (a pushed final state is
    never replaced by a polled one: domain.fold); None for a status smswatch does not know or
    an answer that names no recipient."""
    state = rec.state
    if state is State.UNKNOWN or not rec.to:
        return None
    at = (rec.date_finalized if state.terminal else None) or rec.date_received
    raw = rec.raw or {"message_id": rec.message_id, "status": rec.status}
    status = rec.status or state.value
    error = (rec.error_code, rec.error_text)
    return polled_event(
        "vonage", rec.message_id, rec.to, state, status, at, received_at, raw, error
    )


class VonageApi(BasicAuthApi):
    name: ClassVar[str] = "vonage"
    title: ClassVar[str] = "Vonage"
    default_rate: ClassVar[int] = VONAGE_RATE

    async def record(self, message_id: str) -> VonageRecord | None:
        """One message's record; None if Vonage does not know it on this account. Raises
        ApiError, AuthError or RateLimited; ValueError for an id that would ask about others."""
        asked = message_id.strip()
        if not asked or "," in asked:  # the API takes a comma-separated list of ids
            raise ValueError(f"not one Vonage message id: {asked[:80]!r}")
        product = product_of(asked)
        params = {
            "account_id": self.user,
            "product": product,
            "direction": "outbound",
            "id": asked,
        }
        body = await self._get(RECORDS_PATH, params, lookup=True)
        if body is NOT_FOUND:
            return None
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise self._fail(
                "the answer is not a Reports API answer (no records): check --vonage-api-url"
            )
        for obj in records:
            found = parse_record(obj, product, asked)
            if found is not None and found.message_id.strip().lower() == asked.lower():
                return found
        if records:
            raise self.wrong_answer("the answer is about another message than the one asked about")
        return None  # listed in ids_not_found

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        rec = await self.record(message_id)
        if rec is None:
            return Lookup(found=False, final=False)
        to = await self.answer_recipient(message_id, rec.message_id, rec.to, recipient_of)
        rec = replace(rec, message_id=message_id, to=to)
        return Lookup(True, rec.state.terminal, record_event(rec, received_at()))
