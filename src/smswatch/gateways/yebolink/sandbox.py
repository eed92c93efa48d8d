"""YeboLink's messages API in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, header `X-API-Key` (§2.5):

- `GET /api/v1/messages/{id}` → 200 `{"success": true, "data": {message}}`.
- `GET /api/v1/messages?channel=&status=&startDate=&endDate=&page=&limit=` → 200
  `{"success": true, "data": {"messages": [message, …], "page", "limit", "total"}}`.
- Errors `{"success": false, "error": "…"}`: 400 a bad filter (limit outside 1..100, unknown
  status or channel, a date that is not ISO 8601, page < 1), 401 a missing or wrong key, 404 an
  unknown id, 429 over the limit with `Retry-After`. Every answer to a key carries
  `RateLimit-Limit` / `RateLimit-Remaining`, as express-rate-limit (the usual Node limiter) does.

YeboLink publishes neither the shape of these answers nor a limit for them; what this sandbox
does there is our guess, kept close to what the webhooks carry:
- A message is `{"message_id", "channel", "recipient", "status", "credits_used", "metadata",
  "created_at", "updated_at"}`, plus `"provider_message_id"` and `"sent_at"` once sent,
  `"delivered_at"` once delivered, `"error_code"`, `"error_message"` and `"failed_at"` once
  failed: as in the webhooks, a field that does not apply yet is absent, not null.
- The list is newest first (created_at, then message_id); the status filter is on the status as
  of now; startDate/endDate bound created_at, both inclusive (a bare date is its midnight UTC).
- 60 calls per key per rolling minute over both endpoints together (`--api-yebolink-limit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    Refused,
    SandboxHost,
    SandboxKeys,
    status_at,
)
from smswatch.timefmt import iso, to_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

PREFIX = "/api/v1/messages"
STATUSES = ("queued", "sent", "delivered", "failed")
CHANNELS = ("sms", "whatsapp", "email", "voice")
MAX_LIMIT = 100  # YeboLink's documented page size cap
DEFAULT_LIMIT = 50
INITIAL_STATUS = "queued"  # a message's status before its first step


class YeboLinkSandbox:
    name = "yebolink"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._records: dict[str, GatewayRecord] = {}
        self._newest: list[GatewayRecord] = []  # newest first, for the list endpoint

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.yebolink_api_key

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.yebolink_per_window

    def add(self, record: GatewayRecord) -> None:
        self._records[record.truth.message_id] = record

    def added(self) -> None:
        # A new list, not an in-place sort: a reader mid-iteration keeps the old one.
        self._newest = sorted(
            self._records.values(),
            key=lambda r: (r.created_us, r.truth.message_id),
            reverse=True,
        )

    def route(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/{{message_id}}", self._message)
        app.router.add_get(PREFIX, self._list)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        return None  # the sandbox's own Express-style answer is YeboLink's

    def _auth(self, request: web.Request, now: int) -> Bucket | web.Response:
        host = self.host
        key = host.key(self.name, request.headers.get("X-API-Key"))
        if key is None:
            host.count_unauthorized(self.name)
            return web.json_response(
                {"success": False, "error": "Invalid or missing API key"}, status=401
            )
        try:
            return host.admit(self.name, key, now)
        except Refused as refused:
            headers = {
                "Retry-After": str(refused.retry_after),
                "RateLimit-Limit": str(self.limit(host.limits)),
                "RateLimit-Remaining": str(refused.remaining),
                "RateLimit-Reset": str(refused.retry_after),
            }
            return web.json_response(
                {"success": False, "error": "Too many requests, please try again later."},
                status=429,
                headers=headers,
            )

    def _headers(self, bucket: Bucket) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit(self.host.limits)),
            "RateLimit-Remaining": str(self.host.remaining(self.name, bucket)),
        }

    async def _message(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        headers = self._headers(bucket)
        record = self._records.get(request.match_info["message_id"])
        if record is None or record.created_us > now:
            with self.host.lock:
                bucket.not_found += 1
            return web.json_response(
                {"success": False, "error": "Message not found"}, status=404, headers=headers
            )
        return web.json_response({"success": True, "data": view(record, now)}, headers=headers)

    async def _list(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        headers = self._headers(bucket)
        try:
            query = ListQuery.parse(request.query)
        except ValueError as exc:
            return web.json_response(
                {"success": False, "error": str(exc)}, status=400, headers=headers
            )
        matching = []
        for record in self._newest:
            if record.created_us > now or not query.created_ok(record.created_us):
                continue
            if query.channel and record.fields.get("channel", "sms") != query.channel:
                continue
            if query.status and status_at(record, now, INITIAL_STATUS)[0] != query.status:
                continue
            matching.append(record)
        first = (query.page - 1) * query.limit
        page = [view(r, now) for r in matching[first : first + query.limit]]
        data = {"messages": page, "page": query.page, "limit": query.limit, "total": len(matching)}
        return web.json_response({"success": True, "data": data}, headers=headers)


def view(record: GatewayRecord, now: int) -> dict[str, Any]:
    """One YeboLink message as of `now`, with the fields its webhooks would have carried."""
    t = record.truth
    f = record.fields
    status, since = status_at(record, now, INITIAL_STATUS)
    data: dict[str, Any] = {
        "message_id": t.message_id,
        "channel": f.get("channel", "sms"),
        "recipient": t.recipient,
        "status": status,
        "credits_used": f.get("credits_used", 1),
    }
    if f.get("metadata"):
        data["metadata"] = f["metadata"]
    data["created_at"] = iso(record.created_us)
    data["updated_at"] = iso(since)
    if status != "queued":
        data["provider_message_id"] = f.get("provider_message_id")
        sent = next((at for at, step in record.steps if step == "sent"), None)
        if sent is not None:
            data["sent_at"] = iso(sent)
    if status == "delivered":
        data["delivered_at"] = iso(since)
    elif status == "failed":
        data["error_code"] = t.error_code
        data["error_message"] = f.get("error_message")
        data["failed_at"] = iso(since)
    return data


@dataclass(frozen=True)
class ListQuery:
    """`GET /api/v1/messages`' filters, validated as the documented ranges say."""

    status: str | None = None
    channel: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    page: int = 1
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, query: Any) -> ListQuery:
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        channel = query.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        page = _integer(query.get("page"), "page", 1, None, 1)
        limit = _integer(query.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
        return cls(
            status,
            channel,
            _date(query.get("startDate"), "startDate"),
            _date(query.get("endDate"), "endDate"),
            page,
            limit,
        )

    def created_ok(self, created_us: int) -> bool:
        if self.start_us is not None and created_us < self.start_us:
            return False
        return self.end_us is None or created_us <= self.end_us


def _integer(text: str | None, name: str, low: int, high: int | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}")
    return value


def _date(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        return to_us(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date") from None
