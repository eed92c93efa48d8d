"""Plivo's Message API: `GET {base}/v1/Account/{auth_id}/Message/{message_uuid}/`, Basic auth
with the account's Auth ID and its auth token (api.plivo.com by default).

The answer is the Message Detail Record (plivo-python's tests/resources/fixtures/
messageGetResponse.json): `message_uuid`, `message_state` (the callbacks' vocabulary),
`to_number`, `from_number`, `error_code` (text, null or `000` unless failed or undelivered),
`total_amount`, `total_rate`, `units`, and the times `message_time`, `message_sent_time`,
`message_updated_time` as `YYYY-mm-dd HH:MM:SS[.ffffff]+HH:MM`. A 404 (`{"api_id", "error"}`)
is a message Plivo does not know on this account. A field of an odd type becomes None.

Rate: Plivo limits its API per account and answers 429 past it (reconcile.config.PLIVO_RATE);
429 and Retry-After are handled by `GatewayApi` as for the other gateways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Identifier, Text
from smswatch.gateways.plivo.webhook import error_of, plivo_time, state_of
from smswatch.reconcile.api import (
    NOT_FOUND,
    BasicAuthApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_event,
)
from smswatch.reconcile.config import PLIVO_RATE

API_VERSION = "v1"


def message_path(auth_id: str, uuid: str) -> str:
    return f"/{API_VERSION}/Account/{path_segment(auth_id)}/Message/{path_segment(uuid)}/"


def _time(value: Any) -> int | None:
    return plivo_time(value) if isinstance(value, str) else None


PlivoTime = Annotated[int | None, BeforeValidator(_time)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    message_uuid: Identifier = None
    message_state: Text = None
    to_number: Identifier = None
    error_code: Text = None
    message_time: PlivoTime = None
    message_sent_time: PlivoTime = None
    message_updated_time: PlivoTime = None


@dataclass(frozen=True, slots=True)
class PlivoMessage:
    """One message (one destination) as the Message API gives it. `state`: our state for its
    `message_state` (State.UNKNOWN for one smswatch does not know). Times in microseconds."""

    uuid: str
    status: str | None
    state: State
    to: str | None = None
    error_code: str | None = None
    message_time: int | None = None
    sent_time: int | None = None
    updated_time: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_message(obj: Any, fallback_uuid: str) -> PlivoMessage | None:
    """The message in an answer; None if the answer is not an object with a message_state."""
    if not isinstance(obj, dict) or "message_state" not in obj:
        return None
    m = _Message.model_validate(obj)
    return PlivoMessage(
        uuid=m.message_uuid or fallback_uuid,
        status=m.message_state,
        state=state_of(m.message_state),
        to=m.to_number,
        error_code=error_of(m.error_code),
        message_time=m.message_time,
        sent_time=m.message_sent_time,
        updated_time=m.message_updated_time,
        raw=obj,
    )


def message_event(msg: PlivoMessage, received_at: int) -> Event | None:
    """An answer as its recipient's event, folded like a callback's (a pushed final state is
    never replaced by a polled one: domain.fold); None for a status smswatch does not know or
    an answer that names no recipient."""
    state = msg.state
    if state is State.UNKNOWN or not msg.to:
        return None
    at = (msg.sent_time if state is State.SENT else None) or msg.updated_time or msg.message_time
    raw = msg.raw or {"message_uuid": msg.uuid, "message_state": msg.status}
    status = msg.status or state.value
    return polled_event(
        "plivo", msg.uuid, msg.to, state, status, at, received_at, raw, (msg.error_code, None)
    )


class PlivoApi(BasicAuthApi):
    name: ClassVar[str] = "plivo"
    title: ClassVar[str] = "Plivo"
    default_rate: ClassVar[int] = PLIVO_RATE

    async def message(self, uuid: str) -> PlivoMessage | None:
        """One message; None if Plivo does not know it on this account. Raises ApiError,
        AuthError or RateLimited."""
        body = await self._get(message_path(self.user, uuid), lookup=True)
        if body is NOT_FOUND:
            return None
        found = parse_message(body, uuid)
        if found is None:
            raise self._fail(
                "the answer is not a Message Detail Record (no message_state): check "
                "--plivo-api-url"
            )
        return found

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        msg = await self.message(message_id)
        if msg is None:
            return Lookup(found=False, final=False)
        to = await self.answer_recipient(message_id, msg.uuid, msg.to, recipient_of)
        msg = replace(msg, uuid=message_id, to=to)
        return Lookup(True, msg.state.terminal, message_event(msg, received_at()))
