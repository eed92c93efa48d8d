"""Twilio's Messages resource in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, Basic auth with the account SID and auth token:

- `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json` → 200, the Message resource as
  of now: `sid`, `account_sid`, `to`, `from`, `messaging_service_sid`, `status`, `error_code`
  (an integer, null unless failed or undelivered), `error_message`, `date_created`, `date_sent`
  (null until sent), `date_updated`, all times RFC 2822 in GMT as Twilio writes them.
- Errors as Twilio's: `{"code", "message", "more_info", "status"}`. 401 (code 20003) without
  Basic auth, with a token the sandbox does not take, with a user other than the path's
  account, or an account the simulator did not send from; 404 (20404) a message unknown on
  that account or not created yet; 429 (20429) over the limit, with `Retry-After`.

Twilio limits concurrency, not a rate, so the limit here (`--api-twilio-limit`, 60 calls per
account per rolling minute) is a guess that lets a test prove a client paces itself.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    SandboxHost,
    SandboxKeys,
    admitted,
    basic_credentials,
    status_at,
)
from smswatch.gateways.twilio.api import API_VERSION
from smswatch.gateways.twilio.sim import ACCOUNT_SID
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

PREFIX = f"/{API_VERSION}/Accounts"
INITIAL_STATUS = "queued"  # a message from a bare number; `accepted` through a Messaging Service
# The simulator's steps are our states; the Messages resource says Twilio's word for each.
_STATUS = {"queued": "queued", "processing": "sending", "sent": "sent", "delivered": "delivered"}


def _rfc2822(us: int | None) -> str | None:
    return None if us is None else format_datetime(from_us(us), usegmt=True)


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Any:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


class TwilioSandbox:
    name = "twilio"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._records: dict[str, GatewayRecord] = {}
        self._accounts: set[str] = set()  # a token opens its own account only

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.twilio_auth_token

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.twilio_per_window

    def add(self, record: GatewayRecord) -> None:
        self._records[record.truth.message_id] = record
        self._accounts.add(_account(record))

    def added(self) -> None:
        pass  # looked up by sid only: nothing to sort

    def route(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/{{account}}/Messages/{{sid}}.json", self._message)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith(PREFIX + "/"):
            return None
        return _error(status, 20404, f"The requested resource {request.path} was not found")

    def _auth(self, request: web.Request, account: str, now: int) -> Bucket | web.Response:
        user, token = basic_credentials(request.headers.get("Authorization"))
        mine = user == account and account in self._accounts
        return admitted(
            self.host,
            self.name,
            token if mine else None,
            now,
            lambda: _error(401, 20003, "Authenticate"),
            lambda refused: _error(
                429, 20429, "Too Many Requests", {"Retry-After": str(refused.retry_after)}
            ),
        )

    async def _message(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        account = request.match_info["account"]
        bucket = self._auth(request, account, now)
        if isinstance(bucket, web.Response):
            return bucket
        sid = request.match_info["sid"]
        record = self._records.get(sid)
        if record is None or record.created_us > now or _account(record) != account:
            with self.host.lock:
                bucket.not_found += 1
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return web.json_response(view(record, now))


def _account(record: GatewayRecord) -> str:
    return str(record.fields.get("account_sid", ACCOUNT_SID))


def view(record: GatewayRecord, now: int) -> dict[str, Any]:
    """One Twilio message as of `now`, as the Messages resource writes it."""
    t = record.truth
    f = record.fields
    initial = "accepted" if f.get("messaging_service_sid") else INITIAL_STATUS
    step, since = status_at(record, now, initial)
    final = step == "failed"
    status = f.get("final_status", "failed") if final else _STATUS.get(step, step)
    sent = next((at for at, s in record.steps if s == "sent" and at <= now), None)
    failed = status in ("failed", "undelivered")
    return {
        "sid": t.message_id,
        "account_sid": _account(record),
        "to": t.recipient,
        "from": f.get("from"),
        "messaging_service_sid": f.get("messaging_service_sid"),
        "status": status,
        "error_code": int(t.error_code) if failed and t.error_code else None,
        "error_message": f.get("error_message") if failed else None,
        "direction": "outbound-api",
        "api_version": API_VERSION,
        "num_segments": "1",
        "date_created": _rfc2822(record.created_us),
        "date_sent": _rfc2822(sent),
        "date_updated": _rfc2822(since),
        "uri": f"{PREFIX}/{_account(record)}/Messages/{t.message_id}.json",
    }
