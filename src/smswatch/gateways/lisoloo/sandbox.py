"""Lisoloo's status API in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, header `app-key` (shared/gateways.md §1.4–1.6):

- `GET /api/v1/lisoloo/sms-api/status/{message_id}` → 200 `{"status_code": 200, "data":
  {"message_id", "status", "total_recipients", "delivered", "failed", "pending", "created_at",
  "updated_at"}}`; 404 `{"detail": "Message not found"}`; 401 `{"detail": "Missing or invalid
  app-key"}`; 429 with `Retry-After` and the error envelope of §1.5 (`error_code` "1301",
  `retryable` true, `retry_after`). 120 calls per key per rolling minute, as documented.
- `GET /api/v1/lisoloo/sms-api/health` → 200 `{"status": "ok"}`: no auth, never limited.

Lisoloo's aggregate `status` is not defined for a batch: here it is `delivered` once every
recipient is final and at least one was delivered, `failed` if none was, and otherwise the least
advanced unfinished recipient's status (`pending` < `processing` < `sent`). Clients should read
the counts, which are exact.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    GatewayRecord,
    Refused,
    SandboxHost,
    SandboxKeys,
    status_at,
)
from smswatch.timefmt import iso

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

PREFIX = "/api/v1/lisoloo/sms-api"
# How far along an unfinished Lisoloo recipient is, for the message's aggregate status.
PROGRESS = {"pending": 0, "processing": 1, "sent": 2}


@dataclass
class _Message:
    message_id: str
    created_us: int
    total: int
    recipients: list[GatewayRecord]


class LisolooSandbox:
    name = "lisoloo"
    initial_status = "pending"  # a recipient's status before its first step

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._messages: dict[str, _Message] = {}

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.lisoloo_app_key

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.lisoloo_per_window

    def add(self, record: GatewayRecord) -> None:
        t = record.truth
        msg = self._messages.get(t.message_id)
        if msg is None:
            msg = _Message(t.message_id, record.created_us, record.total_recipients, [])
            self._messages[t.message_id] = msg
        msg.recipients.append(record)

    def added(self) -> None:
        pass

    def route(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/status/{{message_id}}", self._status)
        app.router.add_get(f"{PREFIX}/health", self._health)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        """Lisoloo's own answer to an unknown path or method under its prefix."""
        if not request.path.startswith(PREFIX):
            return None
        detail = "Not Found" if status == 404 else "Method Not Allowed"
        return web.json_response({"detail": detail}, status=status)

    async def _health(self, request: web.Request) -> web.Response:
        self.host.count_health()
        return web.json_response({"status": "ok"})

    async def _status(self, request: web.Request) -> web.Response:
        host = self.host
        now = host.clock()
        key = host.key(self.name, request.headers.get("app-key"))
        if key is None:
            host.count_unauthorized(self.name)
            return web.json_response({"detail": "Missing or invalid app-key"}, status=401)
        try:
            bucket = host.admit(self.name, key, now)
        except Refused as refused:
            return self._429(refused, now)
        msg = self._messages.get(request.match_info["message_id"])
        if msg is None or msg.created_us > now:
            with host.lock:
                bucket.not_found += 1
            return web.json_response({"detail": "Message not found"}, status=404)
        return web.json_response({"status_code": 200, "data": self._view(msg, now)})

    @staticmethod
    def _429(refused: Refused, now: int) -> web.Response:
        seconds = refused.retry_after
        body = {
            "success": False,
            "status_code": 429,
            "error_code": "1301",
            "message": f"Rate limit exceeded: retry after {seconds} s.",
            "details": None,
            "timestamp": iso(now),
            "request_id": str(uuid.uuid4()),
            "retryable": True,
            "retry_after": seconds,
        }
        return web.json_response(body, status=429, headers={"Retry-After": str(seconds)})

    def _view(self, msg: _Message, now: int) -> dict[str, Any]:
        delivered = failed = 0
        least: str | None = None
        updated = msg.created_us
        for r in list(msg.recipients):  # a copy: the demo may add recipients meanwhile
            status, since = status_at(r, now, self.initial_status)
            updated = max(updated, since)
            if status == "delivered":
                delivered += 1
            elif status == "failed":
                failed += 1
            elif least is None or PROGRESS[status] < PROGRESS[least]:
                least = status
        pending = msg.total - delivered - failed
        if pending == 0:
            least = "delivered" if delivered else "failed"
        return {
            "message_id": msg.message_id,
            "status": least or "pending",
            "total_recipients": msg.total,
            "delivered": delivered,
            "failed": failed,
            "pending": pending,
            "created_at": iso(msg.created_us),
            "updated_at": iso(updated),
        }
