"""What a gateway's simulated side is built on: the record of what it sent (the simulator's
ledger), and the pieces of the sandbox its status API answers in (keys, rate limits, refusals).
The sandbox server itself is smswatch.devtools.sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from smswatch.devtools.sandbox import SandboxLimits
    from smswatch.devtools.simulate import Truth

import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from smswatch.timefmt import iso

Clock = Callable[[], int]  # epoch microseconds


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """What the gateway itself knows of one recipient, whether or not its webhooks got through:
    what its status API answers from (smswatch.devtools.sandbox)."""

    truth: Truth
    created_us: int  # the message's send: Lisoloo `sms.queued`, YeboLink `message.queued`
    # (epoch µs, the gateway's status) in order from creation; before the first, a Lisoloo
    # recipient is `pending`.
    steps: tuple[tuple[int, str], ...]
    total_recipients: int = 1  # of the message (Lisoloo sends to many)
    # YeboLink: the message's own fields (channel, credits_used, provider_message_id,
    # error_message, metadata) as its webhooks carry them.
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxKeys:
    """The keys the sandbox accepts; None accepts any non-empty key."""

    lisoloo_app_key: str | None = None
    yebolink_api_key: str | None = None
    twilio_auth_token: str | None = None  # Basic auth's password, the account SID its user
    vonage_api_secret: str | None = None  # Basic auth's password, the API key its user
    infobip_api_key: str | None = None  # `Authorization: App KEY`
    telnyx_api_key: str | None = None  # a Bearer token
    plivo_auth_token: str | None = None  # Basic auth's password, the Auth ID its user
    sinch_api_token: str | None = None  # a Bearer token


def key_label(key: str) -> str:
    """How stats name a key: enough to tell keys apart, not enough to reuse one."""
    return key if len(key) <= 12 else f"{key[:8]}…{key[-4:]}"


@dataclass
class Bucket:
    """One key's calls to one gateway's API."""

    attempts: deque[int] = field(default_factory=deque)  # every call in the window
    answered: deque[int] = field(default_factory=deque)  # calls within the limit, in the window
    calls: int = 0
    served: int = 0
    limited: int = 0
    burst: int = 0
    not_found: int = 0
    max_in_window: int = 0
    max_served_in_window: int = 0
    per_minute: Counter[int] = field(default_factory=Counter)  # minute since epoch → calls

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "served": self.served,
            "limited": self.limited,
            "burst": self.burst,
            "not_found": self.not_found,
            "max_in_window": self.max_in_window,
            "max_served_in_window": self.max_served_in_window,
            "per_minute": {iso(m * 60_000_000): n for m, n in sorted(self.per_minute.items())},
        }


class Refused(Exception):
    """A call answered 429: by the rate limit, or by the burst fault."""

    def __init__(self, retry_after: int, remaining: int = 0) -> None:
        self.retry_after = retry_after
        self.remaining = remaining


def admitted(
    host: SandboxHost,
    gateway: str,
    given: str | None,
    now: int,
    unauthorized: Callable[[], web.Response],
    limited: Callable[[Refused], web.Response],
) -> Bucket | web.Response:
    """The caller's bucket when `given` is the gateway's key and the call is within its limit;
    else the gateway's own 401 (counted as unauthorized) or 429, in its own words."""
    key = host.key(gateway, given)
    if key is None:
        host.count_unauthorized(gateway)
        return unauthorized()
    try:
        return host.admit(gateway, key, now)
    except Refused as refused:
        return limited(refused)


def scheme_token(header: str | None, scheme: str) -> str | None:
    """The credential of an `Authorization: SCHEME TOKEN` header (the scheme in any case), or
    None when the header names another scheme or none."""
    name, _, token = (header or "").strip().partition(" ")
    return token.strip() if name.lower() == scheme else None


def status_at(record: GatewayRecord, now: int, initial: str) -> tuple[str, int]:
    """The gateway's status of one recipient as of `now`, and since when; `initial` before
    its first step."""
    status = initial
    since = record.created_us
    for at, step in record.steps:
        if at > now:
            break
        status, since = step, at
    return status, since


class SandboxHost(Protocol):
    """What a gateway's sandbox answers with: the clock, the keys, the limits, the counters."""

    clock: Clock
    limits: SandboxLimits
    lock: threading.Lock

    def key(self, gateway: str, given: str | None) -> str | None: ...

    def admit(self, gateway: str, key: str, now: int) -> Bucket: ...

    def remaining(self, gateway: str, bucket: Bucket) -> int: ...

    def count_unauthorized(self, gateway: str) -> None: ...

    def count_health(self) -> None: ...


class GatewaySandbox(Protocol):
    """One gateway's status API in the sandbox (`Gateway.sandbox`): its records, its routes
    and its answers; the host counts and limits the calls."""

    name: str
    initial_status: str  # a recipient's status before its first step

    def __init__(self, host: SandboxHost) -> None: ...

    @staticmethod
    def expected_key(keys: SandboxKeys) -> str | None: ...

    @staticmethod
    def limit(limits: SandboxLimits) -> int: ...

    def add(self, record: GatewayRecord) -> None:
        """Know one more recipient (under the host's lock)."""

    def added(self) -> None:
        """After a batch of `add`s (under the host's lock)."""

    def route(self, app: web.Application) -> None: ...

    def unrouted(self, request: web.Request, status: int) -> web.Response | None:
        """Its own answer to an unknown path or method (404, 405), None if not its path."""


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(user, password) of a Basic Authorization header, (None, None) if it is not one: how the
    sandbox's status APIs that take Basic auth (Twilio's, Vonage's) read who is asking."""
    from aiohttp import BasicAuth  # the sandbox's own server is aiohttp's; the listener is not

    if not header:
        return None, None
    try:
        auth = BasicAuth.decode(header, encoding="utf-8")
    except ValueError:  # not Basic, bad base64, no colon, not UTF-8
        return None, None
    return auth.login, auth.password
