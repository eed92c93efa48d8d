"""Africa's Talking: its SMS delivery reports, one per status change of one message to one
recipient, posted as an HTML form to the callback URL set in its dashboard (SMS -> SMS Callback
URLs -> Delivery Reports).

Sources: Africa's Talking's documentation of SMS notifications (docs.africastalking.com/sms/
notifications and /sms/deliveryreports: "sent as a POST request ... as
application/x-www-form-urlencoded", the fields and the status and failureReason values); its
help centre's "Why did my messages fail?" (help.africastalking.com/articles/742491); the
status table of nyaruka/courier's handler (handlers/africastalking/handler.go: Success,
Sent, Buffered, Rejected, Failed and Expired); and the enums of SamuelMwangiW/
africastalking-laravel (src/Enum/Status.php, src/Enum/FailureReason.php).

Body (`application/x-www-form-urlencoded`): `id` (the messageId the send returned, one per
recipient), `status`, `phoneNumber` (the recipient), `networkCode` (the telco, e.g. 63902
Safaricom), and as they apply `failureReason` (only with Rejected or Failed, and only from
telcos that give one) and `retryCount` (premium SMS: how many times sending to the handset was
retried). A form without `id` or `status` (blank counts as absent) is no delivery report:
400, quarantined.

Verification: Africa's Talking signs nothing and sends no credential. The callback URL the team
pastes carries a shared secret, `?token=…` (`--africastalking-token`), which is compared in
constant time with the one configured; a missing, repeated or wrong token is 401. The token is
read from the URL alone: it is never part of the stored payload, and no answer or quarantine
record repeats it. It is only as secret as the URL: give Africa's Talking an https one.

Mapping onto our states (case-insensitive): Sent (left Africa's Talking for the telco),
Submitted (the telco took it) and Buffered (the telco holds it, the handset being out of reach
for now) are all `sent`: each says the carrier has the message and none says more, as
courier maps them; the fold keeps them apart by time only. Success: delivered. Failed, Rejected,
Expired (the telco discarded it: courier has it, and Africa's Talking's current list) and
AbsentSubscriber (the handset could not be reached; in the same list): failed, with the
failureReason as the error code, or, for the two statuses that name their cause, the status
itself when no reason came. Any other status is stored as `unknown` and acknowledged.

Identity: message_id = id, recipient = phoneNumber, carrier = the telco's name for the
networkCode (the code itself when it is not one Africa's Talking lists). There is no event id:
the dedupe key is `africastalking|id|status` (the status lower-cased: the mapping ignores its
case). retryCount is left out of it: it counts attempts to reach the handset, which a report
describes once, and a report Africa's Talking posts again carries the same count, so a retried
post must be one event whatever it says. Event time: the reports carry none, so the receive
time, marked estimated.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from smswatch.core.domain import Event, MessageInfo, State
from smswatch.core.rejected import Rejected
from smswatch.gateways.base import (
    FORM,
    MAX_FIELD,
    AuthMode,
    BodyFormat,
    absent_if_blank,
    derived_id,
    form_payload,
    malformed,
    mapped_state,
    parse_form,
)
from smswatch.gateways.verifiers import query_values

TOKEN_PARAMETER = "token"  # core.credentials declares the same (GatewayCredential.query)
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_STATUS = 128

STATES = {
    "sent": State.SENT,
    "submitted": State.SENT,
    "buffered": State.SENT,
    "success": State.DELIVERED,
    "failed": State.FAILED,
    "rejected": State.FAILED,
    "expired": State.FAILED,
    "absentsubscriber": State.FAILED,
}
# Final statuses that are their own cause: with no failureReason, the error code.
SELF_EXPLAINED = {"expired": "Expired", "absentsubscriber": "AbsentSubscriber"}

# networkCode -> the telco, as Africa's Talking's notification documentation lists them.
NETWORKS = {
    "62120": "Airtel Nigeria",
    "62130": "MTN Nigeria",
    "62150": "Glo Nigeria",
    "62160": "Etisalat Nigeria",
    "63510": "MTN Rwanda",
    "63513": "Tigo Rwanda",
    "63514": "Airtel Rwanda",
    "63902": "Safaricom",
    "63903": "Airtel Kenya",
    "63907": "Orange Kenya",
    "63999": "Equitel Kenya",
    "64002": "Tigo Tanzania",
    "64003": "Zantel Tanzania",
    "64004": "Vodacom Tanzania",
    "64005": "Airtel Tanzania",
    "64007": "TTCL Tanzania",
    "64009": "Halotel Tanzania",
    "64101": "Airtel Uganda",
    "64110": "MTN Uganda",
    "64111": "UTL Uganda",
    "64114": "Africell Uganda",
    "65001": "TNM Malawi",
    "65010": "Airtel Malawi",
    "99999": "Athena (sandbox)",
}


def state_of(status: str | None) -> State:
    """Our state for one of Africa's Talking's delivery-report statuses."""
    return mapped_state(STATES, status)


def _field(fields: Mapping[str, str], name: str) -> str | None:
    """A field, bounded (the whole value stays in the payload), blank as absent."""
    value = fields.get(name)
    return absent_if_blank(value[:MAX_FIELD]) if value is not None else None


def query_tokens(url: str | None) -> list[str]:
    """Every `token` value in a URL's query, percent-decoded; bytes that are not UTF-8 kept as
    surrogates, so they compare as the bytes they were. Raises ValueError on a query with more
    parameters than a form may have fields."""
    return query_values(url, TOKEN_PARAMETER)


class AfricasTalking:
    name: ClassVar[str] = "africastalking"
    title: ClassVar[str] = "Africa's Talking"
    body_format: ClassVar[BodyFormat] = FORM
    checks_url: ClassVar[bool] = True  # its token is in the query

    def __init__(self, token: str | None = None) -> None:
        self._token = token.encode("utf-8", "surrogateescape") if token else None

    def auth_mode(self) -> AuthMode:
        if self._token is not None:
            return AuthMode(True, "token in the URL (?token=)")
        return AuthMode(False, "no token configured")

    def check_auth(self, headers: Mapping[str, str], body: bytes, url: str | None = None) -> None:
        if self._token is None:
            return
        # No detail below repeats what was given: a near miss of the token is still most of it.
        try:
            given = query_tokens(url)
        except ValueError:
            given = []
        if not given:
            raise Rejected(
                401,
                "missing_token",
                f"no {TOKEN_PARAMETER} query parameter: the delivery-report callback URL set in "
                f"Africa's Talking must end in ?{TOKEN_PARAMETER}= followed by the "
                "--africastalking-token value",
            )
        if len(given) > 1:
            raise Rejected(
                401, "bad_token", f"more than one {TOKEN_PARAMETER} query parameter in the URL"
            )
        if not hmac.compare_digest(given[0].encode("utf-8", "surrogateescape"), self._token):
            raise Rejected(
                401,
                "bad_token",
                f"the {TOKEN_PARAMETER} query parameter does not match --africastalking-token: "
                "is the callback URL in the Africa's Talking dashboard the current one?",
            )

    def claims_headers(self, headers: Mapping[str, str]) -> bool:
        return False  # nothing in its requests says where they come from

    def claims_body(self, obj: dict[str, Any]) -> bool:
        return False  # its delivery reports are forms, never JSON

    def parse(self, body: bytes, received_at: int) -> list[Event]:
        pairs = parse_form(body)
        fields: dict[str, str] = {}
        for name, value in pairs:
            fields.setdefault(name, value)  # a repeated field: its first value
        message_id = _field(fields, "id")
        status = _field(fields, "status")
        if message_id is None or status is None:
            raise malformed(
                "body is a form but not an Africa's Talking delivery report (it needs an id "
                "and a status, neither blank)",
                "unknown_envelope",
            )
        status = status[:MAX_STATUS]
        folded = status.strip().lower()
        key = f"africastalking|{message_id}|{folded}"
        state = state_of(status)
        code = _field(fields, "failureReason")
        if code is None and state is State.FAILED:
            code = SELF_EXPLAINED.get(folded)
        network = _field(fields, "networkCode")
        return [
            Event(
                provider=self.name,
                event_id=derived_id(key),
                dedupe_key=key,
                event_type=status,
                state=state,
                message_id=message_id,
                recipient=_field(fields, "phoneNumber"),
                occurred_at=received_at,
                received_at=received_at,
                time_estimated=True,
                payload=form_payload(pairs),
                carrier=NETWORKS.get(network, network) if network is not None else None,
                error_code=code,
                message_info=MessageInfo(total_recipients=1, channel="sms"),
            )
        ]
