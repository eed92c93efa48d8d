"""Telnyx's message detail record: `GET {base}/v2/messages/{id}`, `Authorization: Bearer` with
the account's API key (api.telnyx.com by default; telnyx-python `MessagesResource.retrieve`,
developers.telnyx.com "Message Detail Records").

The answer is `{"data": {...}}`, the message as its webhooks' payload has it: `id`, `to[]`
(each recipient's `phone_number`, `status` in the webhooks' vocabulary, `carrier`,
`updated_at`), `errors[]`, `sent_at`, `completed_at`, `received_at`, `cost`. Errors are
`{"errors": [{"code": "10005", "title": "Resource not found", "detail": ...}]}`; a JSON 404 is a
message Telnyx does not know on this account, or one older than the ten days the endpoint
keeps. A field of an odd type becomes None.

One lookup asks about one message, and names one recipient: a group MMS's `to[]` holds several,
and the answer is read for the one the store has (the reconciler asks per message).

Rate: see reconcile.config.TELNYX_RATE; 429 (code 10011) and Retry-After are handled by
`GatewayApi` as for the other gateways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Identifier, Text, Time
from smswatch.gateways.telnyx.webhook import Problem, error_for, objects, state_of
from smswatch.reconcile.api import (
    NOT_FOUND,
    GatewayApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_event,
    same_recipient,
)
from smswatch.reconcile.config import TELNYX_RATE

MESSAGES_PATH = "/v2/messages"


def message_path(message_id: str) -> str:
    return f"{MESSAGES_PATH}/{path_segment(message_id)}"


class _To(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    phone_number: Identifier = None
    status: Text = None
    updated_at: Time = None


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: Identifier = None
    to: Annotated[list[_To], BeforeValidator(objects)] = Field(default_factory=list)
    errors: Annotated[list[Problem], BeforeValidator(objects)] = Field(default_factory=list)
    received_at: Time = None
    sent_at: Time = None
    completed_at: Time = None


@dataclass(frozen=True, slots=True)
class TelnyxRecipient:
    """One recipient of a message as the detail record gives it. `state`: our state for its
    `status` (State.UNKNOWN for one smswatch does not know). Times in microseconds."""

    message_id: str
    phone_number: str | None
    status: str | None
    state: State
    error_code: str | None = None
    error_text: str | None = None
    at: int | None = None  # when it reached its status, as well as the record says
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_record(obj: Any, fallback_id: str, recipient: str | None) -> TelnyxRecipient | None:
    """The recipient `recipient` of an answer (the only one, when it names one recipient and
    the store none); None if the answer is no message with recipients."""
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("to"), list):
        return None
    record = _Record.model_validate(data)
    if not record.to:
        return None
    index = next(
        (
            i
            for i, to in enumerate(record.to)
            if recipient and to.phone_number and same_recipient(to.phone_number, recipient)
        ),
        0 if len(record.to) == 1 else None,
    )
    if index is None:
        return None
    to = record.to[index]
    state = state_of(to.status)
    error = error_for(record.errors, index) if state in (State.FAILED, State.UNCONFIRMED) else None
    terminal = record.completed_at if state.terminal else None
    return TelnyxRecipient(
        message_id=record.id or fallback_id,
        phone_number=to.phone_number,
        status=to.status,
        state=state,
        error_code=error.code.strip() if error and error.code else None,
        error_text=(error.detail or error.title) if error else None,
        at=to.updated_at or terminal or record.sent_at or record.received_at,
        raw=data,
    )


def recipient_event(rec: TelnyxRecipient, received_at: int) -> Event | None:
    """An answer as its recipient's event, folded like a webhook's (a pushed final state is
    never replaced by a polled one: domain.fold); None for a status smswatch does not know or
    an answer that names no recipient."""
    if rec.state is State.UNKNOWN or not rec.phone_number:
        return None
    raw = rec.raw or {"id": rec.message_id, "status": rec.status}
    status = rec.status or rec.state.value
    error = (rec.error_code, rec.error_text)
    return polled_event(
        "telnyx",
        rec.message_id,
        rec.phone_number,
        rec.state,
        status,
        rec.at,
        received_at,
        raw,
        error,
    )


class TelnyxApi(GatewayApi):
    name: ClassVar[str] = "telnyx"
    title: ClassVar[str] = "Telnyx"
    key_header: ClassVar[str] = "Authorization"
    default_rate: ClassVar[int] = TELNYX_RATE

    def key_value(self) -> str:
        return f"Bearer {self.key.reveal()}"

    def _describe(self, status: int, body: Any, raw: bytes) -> tuple[str, str | None]:
        # Telnyx's errors are a list: its first says what went wrong, in Telnyx's words.
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else None
        if not isinstance(first, dict):
            return super()._describe(status, body, raw)
        text = " ".join(str(first[k]) for k in ("title", "detail") if first.get(k))
        code = str(first["code"]) if isinstance(first.get("code"), str | int) else None
        words = f"HTTP {status}" + (f": {self._scrub(text, 200)}" if text else "")
        return words + (f" (code {self._scrub(code, 20)})" if code else ""), code

    async def recipient(self, message_id: str, recipient: str | None) -> TelnyxRecipient | None:
        """One recipient of one message; None if Telnyx does not know the message on this
        account (or no longer: ten days). Raises ApiError, AuthError or RateLimited."""
        body = await self._get(message_path(message_id), lookup=True)
        if body is NOT_FOUND:
            return None
        found = parse_record(body, message_id, recipient)
        if found is None:
            raise self._fail(
                "the answer is not a message detail record of that recipient (no data.to "
                "naming it): check --telnyx-api-url"
            )
        return found

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        ours = await recipient_of(message_id)
        rec = await self.recipient(message_id, ours)
        if rec is None:
            return Lookup(found=False, final=False)
        self.check_answer(message_id, rec.message_id)
        rec = replace(rec, message_id=message_id, phone_number=rec.phone_number or ours)
        return Lookup(True, rec.state.terminal, recipient_event(rec, received_at()))
