"""Plivo's Message API in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, Basic auth with the Auth ID and auth token:

- `GET /v1/Account/{auth_id}/Message/{message_uuid}/` → 200, the Message Detail Record as of
  now: `api_id`, `message_uuid`, `message_state`, `message_direction`, `message_type`,
  `from_number`, `to_number`, `error_code` (text, `000` once delivered, null before a final
  state), `units`, `total_rate`, `total_amount`, `powerpack_id`, `message_time`,
  `message_sent_time` (null until sent), `message_updated_time`, `resource_uri`, times as
  `YYYY-mm-dd HH:MM:SS.ffffff+00:00` as Plivo's API writes them.
- Errors as Plivo's: `{"api_id", "error"}`. 401 without Basic auth, with a token the sandbox
  does not take, with a user other than the path's account, or an account the simulator did not
  send from; 404 a message unknown on that account or not created yet; 429 over the limit, with
  `Retry-After`.

Plivo publishes no limit for its Message API, so the limit here (`--api-plivo-limit`, 60 calls
per account per rolling minute) is a guess that lets a test prove a client paces itself.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.plivo.api import API_VERSION
from smswatch.gateways.plivo.sim import AUTH_ID
from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    SandboxHost,
    SandboxKeys,
    admitted,
    basic_credentials,
    status_at,
)
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

PREFIX = f"/{API_VERSION}/Account"
INITIAL_STATUS = "queued"  # Plivo queues a message as it accepts it
# The simulator's steps are our states; the Message API says Plivo's word for each.
_STATUS = {"queued": "queued", "sent": "sent", "delivered": "delivered"}


def _time(us: int | None) -> str | None:
    return None if us is None else from_us(us).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    body = {"api_id": str(uuid.uuid4()), "error": message}
    return web.json_response(body, status=status, headers=headers)


class PlivoSandbox:
    name = "plivo"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._records: dict[str, GatewayRecord] = {}
        self._accounts: set[str] = set()  # a token opens its own account only

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.plivo_auth_token

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.plivo_per_window

    def add(self, record: GatewayRecord) -> None:
        self._records[record.truth.message_id] = record
        self._accounts.add(_account(record))

    def added(self) -> None:
        pass  # looked up by uuid only: nothing to sort

    def route(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/{{account}}/Message/{{uuid}}/", self._message)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith(PREFIX + "/"):
            return None
        return _error(status, "not found" if status == 404 else "method not allowed")

    def _auth(self, request: web.Request, account: str, now: int) -> Bucket | web.Response:
        user, token = basic_credentials(request.headers.get("Authorization"))
        mine = user == account and account in self._accounts
        return admitted(
            self.host,
            self.name,
            token if mine else None,
            now,
            lambda: _error(401, "authentication failed"),
            lambda refused: _error(
                429, "too many requests", {"Retry-After": str(refused.retry_after)}
            ),
        )

    async def _message(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        account = request.match_info["account"]
        bucket = self._auth(request, account, now)
        if isinstance(bucket, web.Response):
            return bucket
        message_uuid = request.match_info["uuid"]
        record = self._records.get(message_uuid)
        if record is None or record.created_us > now or _account(record) != account:
            with self.host.lock:
                bucket.not_found += 1
            return _error(404, "not found")
        return web.json_response(view(record, now))


def _account(record: GatewayRecord) -> str:
    return str(record.fields.get("auth_id", AUTH_ID))


def view(record: GatewayRecord, now: int) -> dict[str, Any]:
    """One Plivo message as of `now`, as the Message API writes it."""
    t = record.truth
    f = record.fields
    step, since = status_at(record, now, INITIAL_STATUS)
    final = step == "failed"
    status = f.get("final_status", "failed") if final else _STATUS.get(step, step)
    sent = next((at for at, s in record.steps if s == "sent" and at <= now), None)
    units = int(f.get("units", 1))
    rate = str(f.get("rate", "0.00500"))
    error = (t.error_code or "1000") if final else "000" if status == "delivered" else None
    return {
        "api_id": str(uuid.UUID(int=record.created_us)),
        "message_uuid": t.message_id,
        "message_state": status,
        "message_direction": "outbound",
        "message_type": "sms",
        "from_number": f.get("from"),
        "to_number": t.recipient,
        "error_code": error,
        "error_message": "",
        "units": units,
        "total_rate": rate,
        "total_amount": f"{float(rate) * units:.5f}",
        "powerpack_id": f.get("powerpack") or None,
        "message_time": _time(record.created_us),
        "message_sent_time": _time(sent),
        "message_updated_time": _time(since),
        "resource_uri": f"{PREFIX}/{_account(record)}/Message/{t.message_id}/",
    }
