"""Vonage's Reports API in the sandbox (`smswatch.devtools.sandbox`), answering from the
simulator's truth. Base = `SandboxAPI.url`, Basic auth with the API key and its secret:

- `GET /v2/reports/records?account_id=KEY&product=SMS|MESSAGES&direction=outbound&id=ID[,ID…]`
  → 200, as the synchronous Reports API answers: `request_id`, `request_status` SUCCESS,
  `received_at`, `account_id`, `product`, `direction`, `items_count`, `records` (one per id
  known as of now: `account_id`, `message_id`, `client_ref`, `direction`, `from`, `to`,
  `network`, `network_name`, `status` in Vonage's words, `error_code` (`"0"` unless failed),
  `error_code_description`, `date_received`, `date_finalized` (once final), `currency`,
  `total_price`), and `ids_not_found` listing the others (an id of the other product, or one
  whose send the clock has not reached).
- Errors as Vonage's, RFC 7807 (`type`, `title`, `detail`, `instance`): 401 without Basic auth,
  with a secret the sandbox does not take or a user the simulator did not send as; 403 an
  `account_id` other than the user's; 422 a missing or invalid parameter (this sandbox looks
  messages up by id only: a date query is 422 here); 429 over the limit, with `Retry-After`.

The limit (`--api-vonage-limit`, 600 calls per key per rolling minute) is Vonage's 10 a second
spread over the sandbox's minute.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from smswatch.gateways.sandboxing import (
    Bucket,
    GatewayRecord,
    Refused,
    SandboxHost,
    SandboxKeys,
    basic_credentials,
)
from smswatch.gateways.vonage.api import RECORDS_PATH
from smswatch.gateways.vonage.sim import API_KEY
from smswatch.timefmt import from_us

if TYPE_CHECKING:
    from smswatch.devtools.sandbox import SandboxLimits

# A message's status before its first receipt or callback.
INITIAL = {"SMS": "accepted", "MESSAGES": "submitted"}
ERRORS = {  # err-code → error_code_description, as the Reports API writes them
    "0": "Delivered",
    "1": "Unknown",
    "2": "Absent Subscriber - Temporary",
    "3": "Absent Subscriber - Permanent",
    "4": "Call Barred by User",
    "6": "Anti-Spam Rejection",
    "7": "Handset Busy",
    "8": "Network Error",
    "9": "Illegal Number",
    "14": "Number Blocked by Carrier",
    "99": "General Error",
}
_DOCS = "https://developer.nexmo.com/api-errors"


def _time(us: int | None) -> str | None:
    """A time as the Reports API writes one: `2019-06-28T15:30:00+0000`."""
    return None if us is None else from_us(us).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _error(status: int, kind: str, title: str, detail: str, headers: Any = None) -> Any:
    body = {
        "type": f"{_DOCS}#{kind}",
        "title": title,
        "detail": detail,
        "instance": uuid.uuid4().hex,
    }
    return web.json_response(body, status=status, headers=headers)


def _product(record: GatewayRecord) -> str:
    return "MESSAGES" if record.fields.get("api") == "messages" else "SMS"


class VonageSandbox:
    name = "vonage"
    initial_status = "accepted"

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self._records: dict[str, GatewayRecord] = {}
        self._accounts: set[str] = set()  # a secret opens its own account's records only

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None:
        return keys.vonage_api_secret

    @staticmethod
    def limit(limits: SandboxLimits) -> int:
        return limits.vonage_per_window

    def add(self, record: GatewayRecord) -> None:
        self._records[record.truth.message_id.lower()] = record
        self._accounts.add(_account(record))

    def added(self) -> None:
        pass  # looked up by id only: nothing to sort

    def route(self, app: web.Application) -> None:
        app.router.add_get(RECORDS_PATH, self._records_page)

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        if not request.path.startswith("/v2/reports"):
            return None
        return _error(status, "not-found", "Not found", f"no resource {request.path}")

    def _auth(self, request: web.Request, now: int) -> tuple[str, Bucket] | web.Response:
        user, secret = basic_credentials(request.headers.get("Authorization"))
        key = self.host.key(self.name, secret) if user in self._accounts else None
        if key is None or user is None:
            self.host.count_unauthorized(self.name)
            return _error(
                401, "unauthorized", "Unauthorized", "You did not provide correct credentials."
            )
        try:
            return user, self.host.admit(self.name, key, now)
        except Refused as refused:
            return _error(
                429,
                "rate-limit",
                "Rate Limit Hit",
                "The Reports API supports 10 requests per second synchronously. Slow down.",
                {"Retry-After": str(refused.retry_after)},
            )

    async def _records_page(self, request: web.Request) -> web.Response:
        now = self.host.clock()
        allowed = self._auth(request, now)
        if isinstance(allowed, web.Response):
            return allowed
        user, bucket = allowed
        q = request.query
        missing = [name for name in ("account_id", "product", "direction") if not q.get(name)]
        if missing:
            return _invalid(missing[0], "Missing required parameter")
        if q["account_id"] != user:
            return _error(
                403, "forbidden", "Forbidden", "User not authorized to query the requested data"
            )
        product = q["product"]
        if product not in INITIAL:
            return _invalid("product", "this sandbox answers products SMS and MESSAGES")
        if q["direction"] != "outbound":
            return _invalid("direction", "this sandbox has outbound messages only")
        if not q.get("id"):
            return _invalid("id", "this sandbox looks messages up by id only")
        records, not_found = [], []
        for asked in (i.strip() for i in q["id"].split(",") if i.strip()):
            record = self._records.get(asked.lower())
            known = (
                record is not None
                and record.created_us <= now
                and _product(record) == product
                and _account(record) == user
            )
            if record is not None and known:
                records.append(view(record, now))
            else:
                not_found.append(asked)
        if not_found:
            with self.host.lock:
                bucket.not_found += len(not_found)
        answer: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "request_status": "SUCCESS",
            "received_at": _time(now),
            "price": 0.0004 * len(records),
            "currency": "EUR",
            "account_id": user,
            "product": product,
            "direction": "outbound",
            "include_message": False,
            "items_count": len(records),
            "records": records,
        }
        if not_found:
            answer["ids_not_found"] = ",".join(not_found)
        return web.json_response(answer)


def _invalid(name: str, reason: str) -> web.Response:
    body = {
        "title": "Unprocessable entity",
        "invalid_parameters": [{"name": name, "reason": reason}],
        "instance": uuid.uuid4().hex,
    }
    return web.json_response(body, status=422)


def _account(record: GatewayRecord) -> str:
    return str(record.fields.get("account", API_KEY))


def view(record: GatewayRecord, now: int) -> dict[str, Any]:
    """One Vonage message (one part, one recipient) as of `now`, as the Reports API writes it."""
    t, f = record.truth, record.fields
    product = _product(record)
    statuses = f.get("statuses", ())
    status, index = INITIAL[product], -1
    for i, (at, _) in enumerate(record.steps):
        if at > now:
            break
        index = i
        status = statuses[i] if i < len(statuses) else status
    final = index == len(record.steps) - 1 and index >= 0
    failed = final and t.state == "failed"
    code = t.error_code if failed and t.error_code else "0" if product == "SMS" else None
    if final and t.state == "unconfirmed":
        code = "1"
    out: dict[str, Any] = {
        "account_id": _account(record),
        "message_id": t.message_id,
        "client_ref": f.get("client_ref"),
        "direction": "outbound",
        "from": f.get("from"),
        "to": t.recipient,
        "network": f.get("network"),
        "network_name": f.get("network_name"),
        "status": status,
        "error_code": code,
        "error_code_description": (
            f.get("error_message") if product == "MESSAGES" else ERRORS.get(code or "")
        ),
        "date_received": _time(record.created_us),
        "date_finalized": _time(record.steps[-1][0]) if final else None,
        "latency": (record.steps[-1][0] - record.created_us) // 1000 if final else None,
        "currency": f.get("currency", "EUR"),
        "total_price": f"{f.get('price', 0.0):.8f}",
    }
    if product == "MESSAGES":
        out["provider"] = f.get("channel")
    return out
