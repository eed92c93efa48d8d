"""Infobip's delivery reports and message logs, asked about one message at a time:
`GET {base}/sms/3/reports?messageId=ID&limit=1`, then, when that has nothing,
`GET {base}/sms/3/logs?messageId=ID&limit=1`; the key in `Authorization: App KEY` (the
account's API key; the base URL is the account's own, `https://XXXXX.api.infobip.com`).

The reports endpoint (Infobip's "Get outbound SMS message delivery reports", v3 of
`/sms/1/reports`) gives each final report ONCE, and only in the last 48 hours: `{"results":
[report]}`, a report in the webhooks' shape (`bulkId`, `messageId`, `to`, `sender`, `sentAt`,
`doneAt`, `messageCount`, `mccMnc`, `callbackData`, `price`, `status`, `error`). A report taken
here is stored at once, like a webhook's, so nothing is lost by its being gone from Infobip
after. Empty results mean no final report is waiting for that message: not final yet, or its
report was already taken (pushed to the webhook, or polled); the logs endpoint ("Get outbound
SMS message logs", 48 hours, asked as often as one likes) then says where the message stands,
the same fields with `destination` for `to`. Neither knowing the message: not found.

Errors: `{"requestError": {"serviceException": {"messageId", "text"}}}` (v1) or `{"errorCode",
"description"}` (v3). Infobip publishes no rate for these endpoints: see
reconcile.config.INFOBIP_RATE. 429 and Retry-After are handled by `GatewayApi`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from smswatch.core.domain import Event, State
from smswatch.gateways.infobip.webhook import NO_ERROR, Report, read_report, state_of
from smswatch.reconcile.api import GatewayApi, Lookup, RecipientOf, polled_event
from smswatch.reconcile.config import INFOBIP_RATE

REPORTS_PATH = "/sms/3/reports"
LOGS_PATH = "/sms/3/logs"


@dataclass(frozen=True, slots=True)
class InfobipStatus:
    """What Infobip said of one message: its report or log, read as a webhook's report is,
    and which of the two it came from."""

    report: Report
    raw: dict[str, Any]
    source: str  # "report" (taken from the reports queue) or "log"

    @property
    def state(self) -> State:
        return state_of(self.report.status.name, self.report.status.groupName)


def _first(body: Any, message_id: str, source: str) -> InfobipStatus | None:
    """The entry of an answer about `message_id`; None if it has none."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise ValueError("the answer has no results")
    for item in results:
        if not isinstance(item, dict):
            continue
        obj = dict(item)
        if "to" not in obj and "destination" in obj:  # the logs' name for it
            obj["to"] = obj["destination"]
        try:
            report = read_report(obj)
        except ValueError:
            continue
        if (report.messageId or "").strip().lower() == message_id.strip().lower():
            return InfobipStatus(report, item, source)
    return None


def status_event(found: InfobipStatus, message_id: str, to: str, received_at: int) -> Event | None:
    """An answer as its recipient's event, folded like a webhook's (a pushed final state is
    never replaced by a polled one: domain.fold); None for a status smswatch does not know."""
    state = found.state
    if state is State.UNKNOWN:
        return None
    r = found.report
    at = (r.doneAt if state.terminal else None) or r.doneAt or r.sentAt
    status = r.status.name or r.status.groupName or state.value
    error = r.error
    name = error.name if error is not None and error.name != NO_ERROR else None
    code = (name or status) if state is State.FAILED else None
    text = error.description if error is not None and name else None
    return polled_event(
        "infobip", message_id, to, state, status, at, received_at, found.raw, (code, text)
    )


class InfobipApi(GatewayApi):
    name: ClassVar[str] = "infobip"
    title: ClassVar[str] = "Infobip"
    key_header: ClassVar[str] = "Authorization"
    default_rate: ClassVar[int] = INFOBIP_RATE

    def key_value(self) -> str:
        return f"App {self.key.reveal()}"

    def _describe(self, status: int, body: Any, raw: bytes) -> tuple[str, str | None]:
        if isinstance(body, dict):
            service = body.get("requestError", {})
            service = service.get("serviceException") if isinstance(service, dict) else None
            if isinstance(service, dict) and isinstance(service.get("text"), str):
                code = service.get("messageId")
                code = code if isinstance(code, str) else None
                words = f"HTTP {status}: {self._scrub(service['text'], 200)}"
                return words + (f" (code {self._scrub(code, 40)})" if code else ""), code
            if isinstance(body.get("description"), str):
                code = body.get("errorCode")
                code = code if isinstance(code, str) else None
                words = f"HTTP {status}: {self._scrub(body['description'], 200)}"
                return words + (f" (code {self._scrub(code, 40)})" if code else ""), code
        return super()._describe(status, body, raw)

    async def status(self, message_id: str) -> InfobipStatus | None:
        """Where Infobip says one message stands: its final report if one is waiting (taken,
        so never given again), else its log; None if neither knows it. Raises ApiError,
        AuthError or RateLimited; ValueError for an empty id."""
        asked = message_id.strip()
        if not asked:
            raise ValueError("not an Infobip message id: empty")
        for path, source in ((REPORTS_PATH, "report"), (LOGS_PATH, "log")):
            body = await self._get(path, {"messageId": asked, "limit": "1"})
            try:
                found = _first(body, asked, source)
            except ValueError:
                raise self._fail(
                    f"the answer of {path} has no results: check --infobip-api-url"
                ) from None
            if found is not None:
                return found
        return None

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        found = await self.status(message_id)
        if found is None:
            return Lookup(found=False, final=False)
        answered = found.report.messageId or message_id
        to = await self.answer_recipient(message_id, answered, found.report.to, recipient_of)
        if to is None:
            return Lookup(True, found.state.terminal)
        return Lookup(
            True, found.state.terminal, status_event(found, message_id, to, received_at())
        )
