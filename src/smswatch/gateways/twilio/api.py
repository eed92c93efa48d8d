"""Twilio's Messages resource: `GET {base}/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`,
Basic auth with the account SID and its auth token (api.twilio.com by default).

The answer is the Message resource (twilio-python's `MessageInstance`): `sid`, `status` (the
callbacks' vocabulary), `to`, `error_code` (an integer or null), `error_message`, and the times
`date_created`, `date_sent`, `date_updated` in RFC 2822 (`Mon, 16 Aug 2010 03:45:01 +0000`).
Errors are `{"code": 20404, "message": "...", "more_info": "...", "status": 404}`; a JSON 404 is
a message Twilio does not know (on this account). A field of an odd type becomes None.

Rate: Twilio limits concurrency, not calls a minute (reconcile.config.TWILIO_RATE says more);
429 and Retry-After are handled by `GatewayApi` as for the other gateways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Identifier, Text
from smswatch.gateways.twilio.webhook import state_of
from smswatch.reconcile.api import (
    NOT_FOUND,
    BasicAuthApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_event,
)
from smswatch.reconcile.config import TWILIO_RATE
from smswatch.timefmt import to_us

API_VERSION = "2010-04-01"


def message_path(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{path_segment(account_sid)}/Messages/{path_segment(sid)}.json"


def _rfc2822(value: Any) -> int | None:
    """A Twilio resource time (RFC 2822, GMT) in microseconds; None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 2822's -0000: UTC, zone unknown
        return None
    return to_us(when)


Rfc2822 = Annotated[int | None, BeforeValidator(_rfc2822)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    sid: Identifier = None
    status: Text = None
    to: Identifier = None
    error_code: Text = None  # an integer in the JSON; Text keeps it as digits
    error_message: Text = None
    date_created: Rfc2822 = None
    date_sent: Rfc2822 = None
    date_updated: Rfc2822 = None


@dataclass(frozen=True, slots=True)
class TwilioMessage:
    """One message (one recipient) as the Messages resource gives it. `state`: our state for its
    `status` (State.UNKNOWN for one smswatch does not know). Times in microseconds."""

    sid: str
    status: str | None
    state: State
    to: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    date_created: int | None = None
    date_sent: int | None = None
    date_updated: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_message(obj: Any, fallback_sid: str) -> TwilioMessage | None:
    """The message in an answer; None if the answer is not an object with a status."""
    if not isinstance(obj, dict) or "status" not in obj:
        return None
    m = _Message.model_validate(obj)
    return TwilioMessage(
        sid=m.sid or fallback_sid,
        status=m.status,
        state=state_of(m.status),
        to=m.to,
        error_code=m.error_code,
        error_message=m.error_message,
        date_created=m.date_created,
        date_sent=m.date_sent,
        date_updated=m.date_updated,
        raw=obj,
    )


def message_event(msg: TwilioMessage, received_at: int) -> Event | None:
    """An answer as its recipient's event, folded like a callback's (a pushed final state is
    never replaced by a polled one: domain.fold); None for a status smswatch does not know or
    an answer that names no recipient."""
    state = msg.state
    if state is State.UNKNOWN or not msg.to:
        return None
    at = (msg.date_sent if state is State.SENT else None) or msg.date_updated or msg.date_created
    raw = msg.raw or {"sid": msg.sid, "status": msg.status}
    error = (msg.error_code, msg.error_message)
    # Keyed by Twilio's own status: `partially_delivered` and `sent` are both our sent.
    status = msg.status or state.value
    return polled_event("twilio", msg.sid, msg.to, state, status, at, received_at, raw, error)


class TwilioApi(BasicAuthApi):
    name: ClassVar[str] = "twilio"
    title: ClassVar[str] = "Twilio"
    default_rate: ClassVar[int] = TWILIO_RATE

    async def message(self, sid: str) -> TwilioMessage | None:
        """One message; None if Twilio does not know it on this account. Raises ApiError,
        AuthError or RateLimited."""
        body = await self._get(message_path(self.user, sid), lookup=True)
        if body is NOT_FOUND:
            return None
        found = parse_message(body, sid)
        if found is None:
            raise self._fail(
                "the answer is not a Message resource (no status): check --twilio-api-url"
            )
        return found

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        msg = await self.message(message_id)
        if msg is None:
            return Lookup(found=False, final=False)
        to = await self.answer_recipient(message_id, msg.sid, msg.to, recipient_of)
        msg = replace(msg, sid=message_id, to=to)
        return Lookup(True, msg.state.terminal, message_event(msg, received_at()))
