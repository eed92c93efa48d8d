"""Telnyx's message detail records in the sandbox (`smswatch.devtools.sandbox`), answering from
the simulator's truth. Base = `SandboxAPI.url`, `Authorization: Bearer` with the API key:

- `GET /v2/messages/{id}` → 200, `{"data": {...}}` as of now: `record_type` message, `id`,
  `direction` outbound, `type` (SMS, MMS), `from`, `to[]` (every recipient of the message, a
  group MMS's too: `phone_number`, `status` in Telnyx's words, `carrier`, `updated_at`),
  `messaging_profile_id`, `tags`, `cost`, `errors[]` (a failure's code, `source.pointer` naming
  its recipient), `received_at`, `sent_at`, `completed_at` (once every recipient is final).
- Errors as Telnyx's: `{"errors": [{"code", "title", "detail"}]}`. 401 (10009) without a Bearer
  key or with one the sandbox does not take; 404 (10005) a message unknown or not sent yet;
  429 (10011) over the limit, with `Retry-After`.

The limit (`--api-telnyx-limit`, 600 calls per key per rolling minute) is not Telnyx's (it
publishes none for this endpoint): a test proves a client paces itself under a lower one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    SandboxHost,
    SandboxKeys,
    admitted,
    scheme_token,
    status_at,
)
from smswatch.gateways.telnyx.api import MESSAGES_PATH
from smswatch.gateways.telnyx.sim import PROFILE_ID
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

INITIAL_STATUS = "queued"
# The simulator's steps are our states; the record says Telnyx's word for each.
_WORD = {"queued": "queued", "processing": "sending", "sent": "sent"}


def _time(us: int | None) -> str | None:
    """A time as Telnyx writes one: `2019-01-23T18:10:02.574+00:00`."""
    if us is None:
        return None
    when = from_us(us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+00:00"


def _error(status: int, code: str, title: str, detail: str, headers: Any = None) -> Any:
    body = {"errors": [{"code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status, headers=headers)


class TelnyxSandbox:
    name = "telnyx"
    initial_status = INITIAL_STATUS

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        # A group MMS is one message of several recipients: its records, in send order.
        self._messages: dict[str, list[GatewayRecord]] = {}

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.telnyx_api_key

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.telnyx_per_window

    def add(self, record: GatewayRecord) -> None:
        self._messages.setdefault(record.truth.message_id, []).append(record)

    def added(self) -> None:
        pass  # looked up by id only: nothing to sort

    def route(self, app: web.Application) -> None:
        app.router.add_get(f"{MESSAGES_PATH}/{{id}}", self._message)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith(MESSAGES_PATH):
            return None
        return _error(status, "10005", "Resource not found", f"no resource {request.path}")

    def _auth(self, request: web.Request, now: int) -> Bucket | web.Response:
        return admitted(
            self.host,
            self.name,
            scheme_token(request.headers.get("Authorization"), "bearer"),
            now,
            lambda: _error(
                401,
                "10009",
                "Authentication failed",
                "The required authentication headers were either invalid or not included.",
            ),
            lambda refused: _error(
                429,
                "10011",
                "Too many requests",
                "You have exceeded the maximum number of allowed requests.",
                {"Retry-After": str(refused.retry_after)},
            ),
        )

    async def _message(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        bucket = self._auth(request, now)
        if isinstance(bucket, web.Response):
            return bucket
        records = self._messages.get(request.match_info["id"])
        if not records or records[0].created_us > now:
            with self.host.lock:
                bucket.not_found += 1
            return _error(404, "10005", "Resource not found", "The message was not found.")
        return web.json_response({"data": view(records, now)})


def _recipient(record: GatewayRecord, now: int) -> tuple[dict[str, Any], bool, int]:
    """One recipient's entry of `to[]` as of `now`, whether it is final, and since when."""
    t, f = record.truth, record.fields
    step, since = status_at(record, now, INITIAL_STATUS)
    final = bool(record.steps) and since == record.steps[-1][0] and step == record.steps[-1][1]
    word = f.get("final_status", "delivered") if final else _WORD.get(step, step)
    entry = {
        "phone_number": t.recipient,
        "status": word,
        "carrier": f.get("carrier"),
        "line_type": "Wireless",
        "updated_at": _time(since),
    }
    return entry, final, since


def view(records: list[GatewayRecord], now: int) -> dict[str, Any]:
    """One Telnyx message (all its recipients) as of `now`, as the detail record writes it."""
    first = records[0]
    f = first.fields
    to, errors, finals = [], [], []
    for index, record in enumerate(records):
        entry, final, since = _recipient(record, now)
        to.append(entry)
        if final:
            finals.append(since)
            error = record.fields.get("error")
            if error is not None:
                errors.append({**error, "source": {"pointer": f"/to/{index}"}})
    sent = next((at for at, s in first.steps if s == "sent" and at <= now), None)
    done = len(finals) == len(records)
    return {
        "record_type": "message",
        "id": first.truth.message_id,
        "direction": "outbound",
        "type": f.get("type", "SMS"),
        "from": {"phone_number": f.get("from"), "carrier": "TELNYX LLC", "line_type": "VoIP"},
        "to": to,
        "messaging_profile_id": PROFILE_ID,
        "tags": list(f.get("tags", ())),
        "cost": {"amount": f"{f.get('cost', 0.0):.4f}", "currency": "USD"},
        "errors": errors,
        "parts": 1,
        "received_at": _time(first.created_us),
        "sent_at": _time(sent),
        "completed_at": _time(max(finals)) if done else None,
    }
