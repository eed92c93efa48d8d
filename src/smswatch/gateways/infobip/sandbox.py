"""Infobip's delivery reports and message logs in the sandbox (`smswatch.devtools.sandbox`),
answering from the simulator's truth. Base = `SandboxAPI.url`, `Authorization: App KEY`:

- `GET /sms/3/reports[?messageId=ID][&bulkId=ID][&limit=N]` → 200 `{"results": [...]}`: the
  final reports no one has taken yet (the message's final step is behind the clock), each
  given ONCE, as Infobip's report queue gives them (`limit` 50 by default, 1000 at most).
- `GET /sms/3/logs[?messageId=ID][&bulkId=ID][&limit=N]` → 200 `{"results": [...]}`: where
  each message stands as of now (`destination` for the reports' `to`), as often as asked.
- Errors as Infobip's: `{"requestError": {"serviceException": {"messageId", "text"}}}`. 401
  (UNAUTHORIZED) without `App` auth or with a key the sandbox does not take; 400 a `limit` that
  is not 1..1000; 429 (TOO_MANY_REQUESTS) over the limit, with `Retry-After`.

A message whose send the clock has not reached is in neither. Infobip publishes no rate for
these endpoints: the limit (`--api-infobip-limit`, 60 calls per key per rolling minute) is a
guess that lets a test prove the client paces itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.infobip.api import LOGS_PATH, REPORTS_PATH
from smswatch.gateways.infobip.sim import (
    ENROUTE,
    NO_ERROR,
    TO_HANDSET,
    TO_OPERATOR,
    error_object,
    status_object,
)
from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    SandboxHost,
    SandboxKeys,
    admitted,
    scheme_token,
    status_at,
)
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

ACCEPTED = (1, "PENDING", 26, "PENDING_ACCEPTED", "Message sent to next instance")
INITIAL_STATUS = "queued"  # our word for PENDING_ACCEPTED, before the first step
# The simulator's steps are our states; Infobip's status for each (the final one from the
# record's own fields).
_STATUS = {"processing": ENROUTE, "sent": TO_OPERATOR, "delivered": TO_HANDSET}
_FINAL = ("delivered", "failed", "unconfirmed")


def _refusal(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Any:
    body = {"requestError": {"serviceException": {"messageId": code, "text": text}}}
    return web.json_response(body, status=status, headers=headers)


def _time(us: int) -> str:
    at = from_us(us)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def view(record: GatewayRecord, now: int, log: bool = False) -> dict[str, Any]:
    """One Infobip message as of `now`: its report (or, `log`, its log entry)."""
    f = record.fields
    step, since = status_at(record, now, INITIAL_STATUS)
    final = step in _FINAL
    if final:
        status, error = f.get("final", TO_HANDSET), f.get("error", NO_ERROR)
    else:
        status, error = _STATUS.get(step, ACCEPTED), NO_ERROR
    parts = f.get("smsCount", 1)
    out: dict[str, Any] = {
        "bulkId": f.get("bulkId"),
        "messageId": record.truth.message_id,
        ("destination" if log else "to"): record.truth.recipient,
        "sender": f.get("sender"),
        "sentAt": f.get("sentAt") or _time(record.created_us),
        "doneAt": _time(since),
        "messageCount": parts,
        "mccMnc": f.get("mccMnc"),
        "price": {"pricePerMessage": f.get("price", 0.0), "currency": "EUR"},
        "status": status_object(status),
        "error": error_object(error),
    }
    if not log:
        out["callbackData"] = f.get("callbackData")
    return out


class InfobipSandbox:
    name = "infobip"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._records: dict[str, GatewayRecord] = {}
        self._taken: set[str] = set()  # final reports already given: Infobip gives each once

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.infobip_api_key

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.infobip_per_window

    def add(self, record: GatewayRecord) -> None:
        self._records[record.truth.message_id] = record

    def added(self) -> None:
        pass  # looked up by id, or walked in the order sent

    def route(self, app: web.Application) -> None:
        app.router.add_get(REPORTS_PATH, self._reports)
        app.router.add_get(LOGS_PATH, self._logs)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith("/sms/"):
            return None
        return _refusal(status, "NOT_FOUND", f"no resource {request.path}")

    def _auth(self, request: web.Request, now: int) -> Bucket | web.Response:
        return admitted(
            self.host,
            self.name,
            scheme_token(request.headers.get("Authorization"), "app"),
            now,
            lambda: _refusal(401, "UNAUTHORIZED", "Invalid login details"),
            lambda refused: _refusal(
                429,
                "TOO_MANY_REQUESTS",
                "Too many requests",
                {"Retry-After": str(refused.retry_after)},
            ),
        )

    def _asked(
        self, request: web.Request, now: int
    ) -> tuple[list[GatewayRecord], int] | web.Response:
        """The records a query names that the clock has reached, and its limit."""
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return _refusal(400, "BAD_REQUEST", "limit must be between 1 and 1000")
        if q.get("messageId"):
            found = self._records.get(q["messageId"].strip())
            records = [found] if found is not None else []
        else:
            records = list(self._records.values())
        bulk = q.get("bulkId")
        records = [
            r
            for r in records
            if r.created_us <= now and (not bulk or r.fields.get("bulkId") == bulk)
        ]
        return records, limit

    async def _reports(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        asked = self._asked(request, now)
        if isinstance(asked, web.Response):
            return asked
        records, limit = asked
        results = []
        with self.host.lock:
            for record in records:
                mid = record.truth.message_id
                if mid in self._taken or status_at(record, now, "")[0] not in _FINAL:
                    continue
                self._taken.add(mid)
                results.append(view(record, now))
                if len(results) >= limit:
                    break
            if not results and request.query.get("messageId"):
                bucket.not_found += 1
        return web.json_response({"results": results})

    async def _logs(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        asked = self._asked(request, now)
        if isinstance(asked, web.Response):
            return asked
        records, limit = asked
        if not records and request.query.get("messageId"):
            with self.host.lock:
                bucket.not_found += 1
        return web.json_response({"results": [view(r, now, log=True) for r in records[:limit]]})
