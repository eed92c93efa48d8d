"""Sinch's delivery reports in the XMS API: `Authorization: Bearer` with the service plan's API
token, at the region's base URL (`https://us.sms.api.sinch.com` by default; `eu.`, `au.`, `br.`,
`ca.` for the others: the service plan's region, on the dashboard):

- `GET /xms/v1/{service_plan_id}/batches/{batch_id}/delivery_report?type=full`: the batch's
  report as its callback carries it (`statuses[]` with `status`, `code`, `count` and, `full`,
  `recipients[]`), for every recipient of the batch in one call;
- `GET /xms/v1/{service_plan_id}/batches/{batch_id}/delivery_report/{recipient}`: one
  recipient's, as its `recipient_delivery_report_sms` carries it (`status`, `code`, `at`,
  `operator_status_at`, `operator`).

(sinch-sdk-python `delivery_reports_endpoints.py`, `GetBatchDeliveryReportRequest`,
`GetRecipientDeliveryReportRequest`.) A lookup reads the batch's report first: one call says
where every recipient stands. A recipient the report does not list (a status entry without
recipients) is asked about on its own, the one the store has. Errors are XMS's
`{"code": "...", "text": "..."}`; a JSON 404 is a batch (or recipient) Sinch does not know on
this service plan.

Rate: see reconcile.config.SINCH_RATE; 429 and Retry-After are handled by `GatewayApi`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from smswatch.core.domain import Event, State
from smswatch.gateways.base import Identifier, Integer, Text, Time
from smswatch.gateways.sinch.webhook import error_code, read_entry, state_of
from smswatch.reconcile.api import (
    NOT_FOUND,
    GatewayApi,
    Lookup,
    RecipientOf,
    path_segment,
    polled_event,
    same_recipient,
)
from smswatch.reconcile.config import SINCH_RATE, ApiConfig, ApiKey

API_ROOT = "/xms/v1"


def batch_report_path(plan: str, batch_id: str) -> str:
    return f"{API_ROOT}/{path_segment(plan)}/batches/{path_segment(batch_id)}/delivery_report"


def recipient_report_path(plan: str, batch_id: str, recipient: str) -> str:
    return f"{batch_report_path(plan, batch_id)}/{path_segment(recipient)}"


@dataclass(frozen=True, slots=True)
class SinchRecipient:
    """One recipient of a batch as Sinch's API gives it. `state`: our state for its `status`
    (State.UNKNOWN for one smswatch does not know). `at` in microseconds, None if not given."""

    batch_id: str
    recipient: str
    status: str | None
    state: State
    code: int | None = None
    at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def error_code(self) -> str | None:
        return error_code(self.status, self.code, self.state)


class _One(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    recipient: Identifier = None
    status: Text = None
    code: Integer = None
    at: Time = None


def parse_recipient(obj: Any, batch_id: str) -> SinchRecipient | None:
    """A recipient delivery report answer; None if it is not one."""
    if not isinstance(obj, dict):
        return None
    one = _One.model_validate(obj)
    if not one.recipient or not one.status:
        return None
    return SinchRecipient(
        batch_id, one.recipient, one.status, state_of(one.status), one.code, one.at, obj
    )


def parse_batch(obj: Any, batch_id: str) -> tuple[list[SinchRecipient], bool] | None:
    """A batch report answer: every recipient it lists, and whether it is final (every entry
    in a final status, none left without its recipients); None if it is no batch report."""
    statuses = obj.get("statuses") if isinstance(obj, dict) else None
    if not isinstance(statuses, list):
        return None
    found: list[SinchRecipient] = []
    final = True
    for item in statuses:
        try:
            entry = read_entry(item)
        except ValueError:
            final = False  # an entry not read is no answer for its recipients
            continue
        state = state_of(entry.status)
        if not state.terminal or not entry.recipients:
            final = False
        for recipient in entry.recipients or ():
            if recipient:
                raw = {"batch_id": batch_id, "recipient": recipient, **item}
                raw.pop("recipients", None)
                found.append(
                    SinchRecipient(batch_id, recipient, entry.status, state, entry.code, None, raw)
                )
    total = obj.get("total_message_count")
    if isinstance(total, int) and not isinstance(total, bool) and len(found) < total:
        final = False
    return found, final


def recipient_event(rec: SinchRecipient, received_at: int) -> Event | None:
    """An answer as its recipient's polled event, folded like a webhook's (a pushed final state
    is never replaced by a polled one: domain.fold); None for a status smswatch does not know.
    The dedupe key names the recipient: one batch answers for many."""
    if rec.state is State.UNKNOWN:
        return None
    status = rec.status or rec.state.value
    event = polled_event(
        "sinch",
        rec.batch_id,
        rec.recipient,
        rec.state,
        status,
        rec.at,
        received_at,
        rec.raw or {"batch_id": rec.batch_id, "recipient": rec.recipient, "status": status},
        (rec.error_code, None),
    )
    code = "" if rec.code is None else rec.code
    key = f"sinch|poll.message|{rec.batch_id}|{rec.recipient}|{status.lower()}|{code}"
    if rec.at is not None:
        key += f"|{rec.at}"
    return replace(event, dedupe_key=key, event_id=f"poll:{rec.batch_id}:{rec.recipient}:{status}")


class SinchApi(GatewayApi):
    name: ClassVar[str] = "sinch"
    title: ClassVar[str] = "Sinch"
    key_header: ClassVar[str] = "Authorization"
    default_rate: ClassVar[int] = SINCH_RATE

    def __init__(self, key: ApiKey, base: str, *, service_plan_id: str, **kwargs: Any) -> None:
        super().__init__(key, base, **kwargs)
        self.service_plan_id = service_plan_id

    @classmethod
    def from_config(cls, config: ApiConfig, **kwargs: Any) -> Self | None:
        if config.sinch_service_plan_id is None:
            return None
        kwargs.setdefault("service_plan_id", config.sinch_service_plan_id)
        return super().from_config(config, **kwargs)

    def key_value(self) -> str:
        return f"Bearer {self.key.reveal()}"

    def _describe(self, status: int, body: Any, raw: bytes) -> tuple[str, str | None]:
        # XMS's errors: {"code": "unauthorized", "text": "..."}.
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            code = body.get("code") if isinstance(body.get("code"), str) else None
            words = f"HTTP {status}: {self._scrub(body['text'], 200)}"
            return words + (f" (code {self._scrub(code, 40)})" if code else ""), code
        return super()._describe(status, body, raw)

    async def batch(self, batch_id: str) -> tuple[list[SinchRecipient], bool] | None:
        """Every recipient the batch's report lists, and whether the batch is final; None if
        Sinch does not know the batch. Raises ApiError, AuthError or RateLimited."""
        path = batch_report_path(self.service_plan_id, batch_id)
        body = await self._get(path, {"type": "full"}, lookup=True)
        if body is NOT_FOUND:
            return None
        found = parse_batch(body, batch_id)
        if found is None:
            raise self._fail(
                "the answer is not a batch delivery report (no statuses): check --sinch-api-url"
            )
        return found

    async def recipient(self, batch_id: str, recipient: str) -> SinchRecipient | None:
        """One recipient's report; None if Sinch does not know it."""
        path = recipient_report_path(self.service_plan_id, batch_id, recipient)
        body = await self._get(path, lookup=True)
        if body is NOT_FOUND:
            return None
        found = parse_recipient(body, batch_id)
        if found is None:
            raise self._fail("the answer is not a recipient delivery report: check --sinch-api-url")
        answered = body.get("batch_id")
        if isinstance(answered, str):
            self.check_answer(batch_id, answered)
        if not same_recipient(found.recipient, recipient):
            raise self.wrong_answer("the answer is about another recipient than the one asked")
        return found

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        found = await self.batch(message_id)
        if found is None:
            return Lookup(found=False, final=False)
        recipients, final = found
        ours = await recipient_of(message_id)
        if ours and not any(same_recipient(r.recipient, ours) for r in recipients):
            # The report lists only some recipients (or none): ask about ours on its own.
            one = await self.recipient(message_id, ours)
            if one is not None:
                recipients.append(replace(one, recipient=ours))
            final = False  # the batch's other unlisted recipients are not known to be final
        now = received_at()
        events = [e for r in recipients if (e := recipient_event(r, now)) is not None]
        if not events:
            return Lookup(True, final)
        return Lookup(True, final, events[0], tuple(events[1:]))
