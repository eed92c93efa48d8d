"""Sinch's delivery reports API in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, `Authorization: Bearer` with the API token, the
simulated service plan (`SERVICE_PLAN_ID`) in the path:

- `GET /xms/v1/{plan}/batches/{batch_id}/delivery_report[?type=summary|full]` → 200, the batch's
  report as of now: `type` delivery_report_sms, `batch_id`, `client_reference`,
  `total_message_count`, `statuses[]` (`status`, `code`, `count`, and `recipients[]` unless
  `type=summary`), a status per (status, code) with at least one recipient;
- `GET /xms/v1/{plan}/batches/{batch_id}/delivery_report/{recipient}` → 200, the recipient's
  report as of now: `type` recipient_delivery_report_sms, `batch_id`, `recipient`, `status`,
  `code`, `at`, `operator_status_at`, `operator`, `client_reference`.
- Errors as XMS's: `{"code": "...", "text": "..."}`. 401 (`unauthorized`) without a Bearer token
  or with one the sandbox does not take; 403 (`forbidden`) another service plan; 404
  (`not_found`) a batch or recipient unknown or not sent yet; 429 (`too_many_requests`) over the
  limit, with `Retry-After`.

The limit (`--api-sinch-limit`, 60 calls per token per rolling minute) is ours, not Sinch's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    Refused,
    SandboxHost,
    SandboxKeys,
    scheme_token,
    status_at,
)
from smswatch.gateways.sinch.api import API_ROOT
from smswatch.gateways.sinch.sim import SERVICE_PLAN_ID
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

INITIAL_STATUS = "queued"
# The simulator's steps are our states; the answer says Sinch's word and code for each.
_WORD = {"queued": ("Queued", 400), "sent": ("Dispatched", 401)}


def _time(us: int | None) -> str | None:
    """A time as Sinch writes one: `2022-08-30T08:16:08.930Z`."""
    if us is None:
        return None
    when = from_us(us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _error(status: int, code: str, text: str, headers: Any = None) -> web.Response:
    return web.json_response({"code": code, "text": text}, status=status, headers=headers)


def now_status(record: GatewayRecord, now: int) -> tuple[str, int, int]:
    """A recipient's (Sinch status, code, since when) as of `now`."""
    step, since = status_at(record, now, INITIAL_STATUS)
    final = bool(record.steps) and since == record.steps[-1][0] and step == record.steps[-1][1]
    if final:
        return str(record.fields.get("status", "Delivered")), int(record.fields["code"]), since
    word, code = _WORD.get(step, ("Queued", 400))
    return word, code, since


class SinchSandbox:
    name = "sinch"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._batches: dict[str, list[GatewayRecord]] = {}

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.sinch_api_token

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.sinch_per_window

    def add(self, record: GatewayRecord) -> None:
        self._batches.setdefault(record.truth.message_id, []).append(record)

    def added(self) -> None:
        pass  # looked up by id only: nothing to sort

    def route(self, app: web.Application) -> None:
        base = f"{API_ROOT}/{{plan}}/batches/{{batch}}/delivery_report"
        app.router.add_get(base, self._batch)
        app.router.add_get(base + "/{recipient}", self._recipient)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith(API_ROOT + "/"):
            return None
        return _error(status, "not_found", f"no resource {request.path}")

    def _auth(self, request: web.Request, now: int) -> Bucket | web.Response:
        token = scheme_token(request.headers.get("Authorization"), "bearer")
        key = self.host.key(self.name, token)
        if key is None:
            self.host.count_unauthorized(self.name)
            return _error(401, "unauthorized", "Invalid or missing credentials")
        if request.match_info["plan"] != SERVICE_PLAN_ID:
            return _error(403, "forbidden", "The token is not for this service plan")
        try:
            return self.host.admit(self.name, key, now)
        except Refused as refused:
            return _error(
                429,
                "too_many_requests",
                "Too many requests",
                {"Retry-After": str(refused.retry_after)},
            )

    def _records(self, request: web.Request, bucket: Bucket, now: int) -> list[GatewayRecord]:
        records = self._batches.get(request.match_info["batch"], [])
        known = [r for r in records if r.created_us <= now]
        if not known:
            with self.host.lock:
                bucket.not_found += 1
        return known

    async def _batch(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        records = self._records(request, bucket, now)
        if not records:
            return _error(404, "not_found", "Batch not found")
        full = request.query.get("type", "summary") == "full"
        return web.json_response(view(records, now, full))

    async def _recipient(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        asked = request.match_info["recipient"].lstrip("+")
        records = self._records(request, bucket, now)
        record = next((r for r in records if r.truth.recipient.lstrip("+") == asked), None)
        if record is None:
            return _error(404, "not_found", "Recipient not found in the batch")
        status, code, since = now_status(record, now)
        f = record.fields
        body: dict[str, Any] = {
            "at": _time(since),
            "batch_id": record.truth.message_id,
            "code": code,
            "operator": f.get("operator"),
            "operator_status_at": _time(since),
            "recipient": record.truth.recipient,
            "status": status,
            "type": "recipient_delivery_report_sms",
        }
        if f.get("reference"):
            body["client_reference"] = f["reference"]
        return web.json_response(body)


def view(records: list[GatewayRecord], now: int, full: bool) -> dict[str, Any]:
    """One batch's delivery report as of `now`, as the API writes it."""
    grouped: dict[tuple[str, int], list[str]] = {}
    for record in records:
        status, code, _ = now_status(record, now)
        grouped.setdefault((status, code), []).append(record.truth.recipient)
    statuses = []
    for (status, code), phones in grouped.items():
        entry: dict[str, Any] = {"code": code, "count": len(phones), "status": status}
        if full:
            entry["recipients"] = phones
        statuses.append(entry)
    body: dict[str, Any] = {
        "batch_id": records[0].truth.message_id,
        "statuses": statuses,
        "total_message_count": len(records),
        "type": "delivery_report_sms",
    }
    reference = records[0].fields.get("reference")
    if reference:
        body["client_reference"] = reference
    return body
