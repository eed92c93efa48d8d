"""Infobip: its SMS delivery reports, posted as JSON in batches to the notify URL, checked by
HTTP Basic auth (the subscription's BASIC security).

Body: `{"results": [report, ...]}`, up to 100 reports a post, one per message (one message per
destination). A report (Infobip's `SmsDeliveryReport`; the v1 reports' field names and the v3
ones' both read): `bulkId` (the send, when it had several destinations), `messageId`, `to`,
`sender`, `sentAt`, `doneAt` (`2019-11-09T16:00:00.000+0000`), `smsCount` / `messageCount`
(parts), `mccMnc`, `callbackData`, `price` {`pricePerMessage`, `currency`}, `status`
{`groupId`, `groupName`, `id`, `name`, `description`}, `error` {`groupId`, `groupName`, `id`,
`name`, `description`, `permanent`}.

A batch is one post: every valid report in it becomes an event, all committed in one
transaction before the 2xx (`Batch`); a report that is not one (not an object, no status, no
message id and no destination) is quarantined on its own and its neighbours are still stored.
A body that is not `{"results": [...]}`, or whose reports are all malformed, is 400. So the
body is read as JSON once and each report validated on its own (`REPORT.validate_python`),
rather than the whole envelope by one `validate_json`, which would refuse every report for one
bad one.

Mapping onto our states, by `status.name` first and else by `status.groupName` (a status name
of tomorrow in a known group still folds): PENDING_ACCEPTED and PENDING_APPROVAL: queued;
PENDING_ENROUTE: processing; PENDING_WAITING_DELIVERY and DELIVERED_TO_OPERATOR (the operator
took it; the handset's receipt may follow): sent; DELIVERED_TO_HANDSET: delivered; the
UNDELIVERABLE, EXPIRED and REJECTED groups: failed, with `error.name` as the code (else the
status name); EXPIRED_DLR_UNKNOWN (sent to the network, no receipt within the validity):
unconfirmed, the one status that says Infobip will never know. Anything else: `unknown`.

Identity: message_id = `messageId`, recipient = `to`, the carrier is `mccMnc` (informational),
`bulkId` groups the messages of one send into a campaign (`MessageInfo.group`), and the cost is
`price.pricePerMessage` × the parts, in `price.currency`. `error.permanent` is the event's
`retryable` (negated): a permanent failure of a number the catalogue marks `suppress` goes on
`export --suppression`, a non-permanent one never does. Dedupe key:
`infobip|messageId|status.name|doneAt` (a batch sent again stores nothing twice; the operator's
and the handset's reports of one message are two events). Event time: `doneAt`, else `sentAt`,
else the receive time, marked estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    JSON,
    AuthMode,
    BasicAuth,
    Batch,
    BodyFormat,
    Flag,
    Identifier,
    Integer,
    Number,
    RefusedPart,
    Text,
    Time,
    absent_if_blank,
    body_digest,
    derived_id,
    malformed,
    parse_object,
)

# Infobip's documented cap on the reports of one post.
MAX_REPORTS = 100
# A post of more than this is not Infobip's: refused whole rather than parsed at any length.
MAX_BATCH = 1000

# Status names (Infobip's "Response status and error codes") whose state differs from their
# group's, or that name their group's state more precisely.
STATUS_NAMES = {
    "pending_accepted": State.QUEUED,
    "pending_approval": State.QUEUED,
    "pending_enroute": State.PROCESSING,
    "pending_waiting_delivery": State.SENT,
    "delivered_to_operator": State.SENT,
    "delivered_to_handset": State.DELIVERED,
    "expired_dlr_unknown": State.UNCONFIRMED,
}
STATUS_GROUPS = {
    "accepted": State.QUEUED,
    "pending": State.QUEUED,
    "delivered": State.DELIVERED,
    "undeliverable": State.FAILED,
    "expired": State.FAILED,
    "rejected": State.FAILED,
}
NO_ERROR = "NO_ERROR"


def state_of(name: str | None, group: str | None) -> State:
    """Our state for an Infobip status (the webhooks' and the reports API's): by its name, else
    its group, in any case; `unknown` for neither."""
    if name:
        found = STATUS_NAMES.get(name.strip().lower())
        if found is not None:
            return found
    if group:
        return STATUS_GROUPS.get(group.strip().lower(), State.UNKNOWN)
    return State.UNKNOWN


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class Status(_Model):
    groupId: Integer = None  # Infobip's field names, as they come
    groupName: Text = None
    id: Integer = None
    name: Text = None
    description: Text = None


class Error(_Model):
    groupId: Integer = None
    groupName: Text = None
    id: Integer = None
    name: Text = None
    description: Text = None
    permanent: Flag = None


class Price(_Model):
    pricePerMessage: Number = None
    currency: Text = None


class Report(_Model):
    """One delivery report. Lenient inside, as every gateway's data is: a field of a wrong type
    is None, the report is still stored; only what makes it no report at all refuses it."""

    bulkId: Identifier = None
    messageId: Identifier = None
    to: Identifier = None
    sender: Text = None
    sentAt: Time = None
    doneAt: Time = None
    smsCount: Integer = None  # v1's name
    messageCount: Integer = None  # v3's
    mccMnc: Text = None
    callbackData: Text = None
    price: Price | None = None
    status: Status
    error: Error | None = None


REPORT: TypeAdapter[Report] = TypeAdapter(Report)


def read_report(item: Any) -> Report:
    """A report of `results[]`, validated; raises ValueError saying why it is none."""
    if not isinstance(item, dict):
        raise ValueError("a report is not a JSON object")
    status = item.get("status")
    if not isinstance(status, dict):
        raise ValueError("a report has no status object")
    clean = dict(item)
    for name in ("price", "error"):
        if name in clean and not isinstance(clean[name], dict):
            clean[name] = None  # a wrong type is dropped, the report kept
    try:
        report = REPORT.validate_python(clean)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"invalid report field {where}: {first['msg']}") from None
    if not (report.status.name or report.status.groupName):
        raise ValueError("a report's status has neither a name nor a groupName")
    if report.messageId is None and report.to is None:
        raise ValueError("a report has neither a messageId nor a destination (to)")
    return report


def report_event(report: Report, payload: str, received_at: int) -> Event:
    """One report of a webhook's batch as its recipient's event."""
    status = report.status
    name = absent_if_blank(status.name) or absent_if_blank(status.groupName) or "unknown"
    state = state_of(status.name, status.groupName)
    message_id = report.messageId
    done = report.doneAt
    if message_id is not None:
        key = f"infobip|{message_id}|{name}|{'' if done is None else done}"
    else:
        key = f"infobip|sha256:{body_digest(payload.encode())}"
    occurred = done if done is not None else report.sentAt
    failed = state is State.FAILED
    error = report.error
    error_name = absent_if_blank(error.name) if error is not None else None
    if error_name is not None and error_name.upper() == NO_ERROR:
        error_name = None
    code = (error_name or name) if failed else None
    parts = report.messageCount if report.messageCount is not None else report.smsCount
    price = report.price
    cost = price.pricePerMessage if price is not None else None
    if cost is not None and parts is not None and parts > 0:
        cost *= parts
    return Event(
        provider=Infobip.name,
        event_id=derived_id(key),
        dedupe_key=key,
        event_type=name,
        state=state,
        message_id=message_id,
        recipient=report.to,
        occurred_at=occurred if occurred is not None else received_at,
        received_at=received_at,
        payload=payload,
        time_estimated=occurred is None,
        carrier=absent_if_blank(report.mccMnc),
        error_code=code,
        error_message=(error.description if error is not None and error_name else None)
        if failed
        else None,
        # `permanent` of NO_ERROR says nothing: only a named error's is the gateway's verdict.
        retryable=(not error.permanent)
        if failed and error is not None and error_name and error.permanent is not None
        else None,
        message_info=MessageInfo(
            total_recipients=1,
            total_messages=parts,
            total_cost=cost,
            currency=price.currency if price is not None else None,
            channel="sms",
            group=report.bulkId,
        ),
    )


def _payload(item: Any) -> str:
    # The report as the JSON it came as (key order kept; the body was valid JSON, so every
    # string is valid UTF-8 and every number finite).
    return pydantic_core.to_json(item).decode()


class Infobip:
    name: ClassVar[str] = "infobip"
    title: ClassVar[str] = "Infobip"
    body_format: ClassVar[BodyFormat] = JSON
    checks_url: ClassVar[bool] = False  # Basic auth is in the headers

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self._basic = BasicAuth(*basic_auth) if basic_auth else None

    def auth_mode(self) -> AuthMode:
        if self._basic is not None:
            return AuthMode(True, f"Basic auth (user {self._basic.user})")
        return AuthMode(False, "no Basic auth configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._basic is not None:
            self._basic.check(headers)

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return False  # Basic auth is not specific to Infobip

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("results"), list)

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        obj = parse_object(body)
        results = obj.get("results")
        if not isinstance(results, list):
            raise malformed(
                'body is JSON but not an Infobip delivery report batch ({"results": [...]})',
                "unknown_envelope",
            )
        if not results:
            raise malformed("the batch has no reports (results is empty)", "invalid_envelope")
        if len(results) > MAX_BATCH:
            raise malformed(
                f"the batch has {len(results)} reports; Infobip posts {MAX_REPORTS} at most",
                "invalid_envelope",
            )
        events: list[Event] = []
        refused: list[RefusedPart] = []
        for index, item in enumerate(results):
            payload = _payload(item)
            try:
                report = read_report(item)
            except ValueError as exc:
                why = Rejected(400, "malformed_report", f"results[{index}]: {exc}")
                refused.append(RefusedPart(why, payload.encode()))
                continue
            events.append(report_event(report, payload, received_at))
        if not events:
            first = refused[0].rejected
            raise malformed(
                f"no report of the batch is valid ({len(refused)} refused; {first.detail})",
                "invalid_envelope",
            )
        return Batch(events, tuple(refused))
