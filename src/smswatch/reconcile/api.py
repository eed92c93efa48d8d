"""What every gateway API client shares: the key, the HTTP session, the rate limit, retries,
and errors that never carry the key.

Each gateway's `gateways/<name>/api.py` subclasses `GatewayApi` with its paths, its key header,
its parsing and `lookup` (its answer as an event); a gateway that can list its messages also
implements `ListingApi`. `clients.build()` makes one client per gateway that has a key: like the
webhook adapters, a new gateway is one new package plus its registration.

Failure policy, per call:
- 2xx: parsed by the gateway module. 404 on a lookup: None (not found), but only when the body
  is JSON: an HTML 404 means a wrong base URL, and reading it as "not found" would make every
  message look unknown to the gateway.
- 401/403: `AuthError` at once, never retried (a wrong or suspended key does not heal, and
  Lisoloo may suspend a key that keeps knocking).
- 429: the whole key pauses for Retry-After (seconds or an HTTP date; else the body's
  `retry_after`; else exponential backoff), then the call is retried, a bounded number of times.
- 5xx, 408, timeouts, connection failures: retried with exponential backoff (and Retry-After if
  given), unless the body says `"retryable": false`.
- 3xx: an error, not followed, because the key header would follow the redirect to its target.
- any other 4xx: `ApiError` at once.
Every retry takes a new place in the rate limit: the gateway counts it.

Keys: set as a header from `ApiKey.reveal()` and nowhere else. Exception texts are built here
from the status and the gateway's own message, with the key scrubbed from it (a gateway may
echo a rejected key back), and are raised outside any `except` block so that no aiohttp
exception (whose request info holds the headers) rides along as `__context__`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, Self, runtime_checkable
from urllib.parse import quote

import aiohttp
from yarl import URL

from smswatch import __version__
from smswatch.core.domain import POLLED_PREFIX, Event, State
from smswatch.reconcile.config import ApiConfig, ApiKey, base_url
from smswatch.reconcile.ratelimit import Clock, RollingWindow, Sleep
from smswatch.sanitize import safe

log = logging.getLogger(__name__)

MAX_RESPONSE = 8 * 1024 * 1024  # a page of 100 messages with metadata is far below this
# The longest pause a Retry-After can put on a key: one that says "forever" (or a bad date in
# 2100) must not stop reconciling for good; an hour of quiet is already far past any limit.
MAX_PAUSE = 3600.0
NOT_FOUND: Any = object()  # what `_get` returns for a JSON 404 on a lookup


class ApiError(Exception):
    """A gateway API call that did not give an answer. `status` is the HTTP status (None: no
    answer at all); `code` the gateway's error code where it sends one (Lisoloo's 4-digit
    strings). The text is safe to log and show: no key, no control characters, bounded."""

    def __init__(
        self,
        gateway: str,
        message: str,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{gateway} API: {message}")
        self.gateway = gateway
        self.status = status
        self.code = code


class AuthError(ApiError):
    """401/403: the key is wrong, for another environment, or suspended. Not retried."""


class RateLimited(ApiError):
    """Still 429 after the retries, or asked to wait longer than `RetryPolicy.max_retry_after`.
    The key stays paused for `retry_after` seconds either way."""

    def __init__(self, gateway: str, message: str, retry_after: float, code: str | None) -> None:
        super().__init__(gateway, message, 429, code)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries per call, the first included
    base_delay: float = 0.5  # seconds before the first retry without Retry-After; then doubles
    max_delay: float = 30.0
    # A longer Retry-After is honoured (the key stays paused) but the call is not kept waiting:
    # it fails with RateLimited, and the reconciler tries again on its next round.
    max_retry_after: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1 for the first), with jitter over the upper
        half so that calls failed together do not come back together."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)


def retry_after_seconds(header: str | None, body: Any) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), else the body's `retry_after`
    (Lisoloo's error envelope), else None."""
    if header:
        value = header.strip()
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return min(max(0.0, seconds), MAX_PAUSE)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_PAUSE)
    if isinstance(body, dict):
        for name in ("retry_after", "retryAfter"):
            given = body.get(name)
            if isinstance(given, int | float) and not isinstance(given, bool) and given >= 0:
                return min(float(given), MAX_PAUSE)
    return None


def path_segment(value: str) -> str:
    """A message id as one path segment: every reserved character escaped, so an id cannot
    reach another endpoint (`../balance`) with our key."""
    if not isinstance(value, str) or not value.strip() or value in (".", ".."):
        raise ValueError(f"not a message id: {safe(repr(value), 80)}")
    return quote(value, safe="")


def same_recipient(a: str, b: str) -> bool:
    """The same phone number (whatever its punctuation) or address (whatever its case)."""
    if "@" in a or "@" in b:
        return a.strip().lower() == b.strip().lower()
    digits_a, digits_b = (re.sub(r"\D", "", x) for x in (a, b))
    return digits_a == digits_b if digits_a and digits_b else a.strip() == b.strip()


def polled_payload(raw: dict[str, Any]) -> str:
    """A status answer as a polled event's payload. A poll's event is stored in the log like a
    webhook's and folded by the same rules, marked as polled (its type starts with `poll.`);
    its dedupe key is the answer itself, so asking again and getting the same answer stores
    nothing."""
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)


def polled_event(
    provider: str,
    message_id: str,
    recipient: str,
    state: State,
    status: str,
    at: int | None,
    received_at: int,
    raw: dict[str, Any],
    error: tuple[str | None, str | None] = (None, None),
) -> Event:
    """A status API's answer about one message to one recipient (the gateways with a message
    per recipient) as that recipient's event: `status` as the answer says it, `at` its time
    (None: unknown, the receive time stands in), `error` its code and text (kept for a
    failure only). Folded like a webhook's, except that a final state a webhook pushed is never
    replaced by a polled one (domain.fold); the same answer twice is stored once."""
    estimated = at is None
    at = at or received_at
    failed = state == State.FAILED
    return Event(
        provider=provider,
        event_id=f"poll:{message_id}:{state.value}",
        dedupe_key=f"{provider}|{POLLED_PREFIX}message|{message_id}|{status}|{at}",
        event_type=f"{POLLED_PREFIX}message",
        state=state,
        message_id=message_id,
        recipient=recipient,
        occurred_at=at,
        received_at=received_at,
        payload=polled_payload(raw),
        time_estimated=estimated,
        error_code=error[0] if failed else None,
        error_message=error[1] if failed else None,
    )


@dataclass(frozen=True, slots=True)
class Lookup:
    """What asking a gateway about one message found: whether the gateway knows it, whether
    its answer is final, and the answer as an event (None: a status smswatch cannot fold)."""

    found: bool
    final: bool
    event: Event | None = None
    # The answer's other events, for a gateway whose message has many recipients and whose
    # API answers for all of them at once (Sinch's batch report): stored with `event`.
    more: tuple[Event, ...] = ()


# The recipient the store has for a message (gateways with one message per recipient check the
# answer against it, and fill it in when the answer names none).
RecipientOf = Callable[[str], Awaitable[str | None]]


class GatewayApi:
    """Base of the gateway API clients: one aiohttp session (connections reused), one rolling
    window per key, the retry policy above. Use as `async with` or call `close()`."""

    name: ClassVar[str]
    title: ClassVar[str]
    key_header: ClassVar[str]
    default_rate: ClassVar[int]

    def __init__(
        self,
        key: ApiKey,
        base: str,
        *,
        rate: int | None = None,
        window: float = 60.0,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # The type is the guard: without an ApiKey there is no client, so no call is ever made
        # without a key (and a bare string, which would print itself, is refused).
        if not isinstance(key, ApiKey):
            raise TypeError(f"{self.title} API client needs an ApiKey")
        self.key = key
        self.base_url = base_url(base, f"{self.title} API URL")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = RollingWindow(rate or self.default_rate, window, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        if self.base_url.startswith("http://") and URL(self.base_url).host not in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            log.warning(
                "%s API at %s is plain http: the key crosses the network unencrypted",
                self.title,
                self.base_url,
            )

    @classmethod
    def from_config(cls, config: ApiConfig, **kwargs: Any) -> Self | None:
        """The client, or None without a key: then nothing is ever polled."""
        access = config.access(cls.name)
        if access is None or access.url is None:
            return None
        kwargs.setdefault("rate", access.rate)
        kwargs.setdefault("timeout", config.timeout)
        return cls(access.key, access.url, **kwargs)

    def rate_owner(self) -> int:
        """Who spends this client's rate limit, as a 32-bit number: the gateway and the key
        (hashed: the key never leaves). Instances sharing a database poll one at a time per
        owner (store/postgres/lease.py)."""
        digest = hashlib.sha256(f"{self.name}\0{self.key.reveal()}".encode()).digest()
        return int.from_bytes(digest[:4], "big", signed=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, key={self.key!r})"

    async def __aenter__(self) -> GatewayApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_now(self) -> aiohttp.ClientSession:
        # Made on first use, inside the loop that will use it (aiohttp binds a session to one).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 5.0)),
                connector=aiohttp.TCPConnector(limit=8, ttl_dns_cache=300),
                headers={
                    "User-Agent": f"smswatch/{__version__} (reconcile)",
                    "Accept": "application/json",
                },
            )
        return self._session

    def _scrub(self, text: str, limit: int = 300) -> str:
        """Text from outside (a gateway's answer, an aiohttp error) made fit for an exception:
        the key replaced by its masked form first, then made safe and bounded (truncating first
        could leave part of the key)."""
        return safe(self._unkeyed(text), limit)

    def _fail(self, message: str, status: int | None = None, code: str | None = None) -> ApiError:
        return ApiError(self.title, self._scrub(message, 500), status, code)

    def wrong_answer(self, message: str) -> ApiError:
        """An answer read fine but not to be believed (the caller says why)."""
        return self._fail(message)

    def check_answer(self, asked: str, answered: str) -> None:
        """An answer about another message than the one asked about is the gateway's mistake
        (or a proxy's): stored, it would give our message another's outcome."""
        if answered.strip().lower() != asked.strip().lower():
            raise self.wrong_answer("the answer is about another message than the one asked about")

    async def answer_recipient(
        self, asked: str, answered: str, recipient: str | None, recipient_of: RecipientOf
    ) -> str | None:
        """For a gateway with one message per recipient: check that an answer is about the
        message asked about and names its recipient (or none), and return the recipient to
        store it under, the answer's or else the store's."""
        self.check_answer(asked, answered)
        ours = await recipient_of(asked)
        if recipient and ours and not same_recipient(recipient, ours):
            raise self.wrong_answer(
                "the message answer names another recipient than the webhooks did"
            )
        return recipient or ours

    async def lookup(
        self, message_id: str, recipient_of: RecipientOf, received_at: Callable[[], int]
    ) -> Lookup:
        """Ask about one message; its answer as an event stored under the id asked about
        (whatever id the answer names), `received_at()` read once the answer is in. Raises
        ApiError, or ValueError for an id no URL can carry."""
        raise NotImplementedError

    def _describe(self, status: int, body: Any, raw: bytes) -> tuple[str, str | None]:
        """The gateway's own words for an error answer, and its error code if it has one."""
        code = None
        if isinstance(body, dict):
            text = next(
                (
                    body[k]
                    for k in ("message", "error", "detail", "error_message")
                    if k in body and body[k] not in (None, "")
                ),
                None,
            )
            if not isinstance(text, str) and text is not None:
                text = json.dumps(text)[:300]
            if isinstance(body.get("error_code"), str | int):
                code = str(body["error_code"])
        else:
            text = raw[:300].decode("utf-8", "replace") if raw else None
        words = f"HTTP {status}" + (f": {self._scrub(text, 200)}" if text else "")
        return words + (f" (code {self._scrub(code, 20)})" if code else ""), code

    async def _attempt(self, url: URL, params: dict[str, str] | None) -> _Answer:
        """One request, in its place in the rate limit. Whatever the gateway sends back has the
        key masked in it at once (a gateway may echo a rejected key: "invalid key sk_…"), so
        nothing read from an answer, parsed or not, can carry the key on. The request and the
        response objects live only in this frame, which is gone before any error is raised:
        a traceback that shows local variables (Textual's crash screen does) never sees them.
        """
        answer = _Answer()
        started = time.monotonic()
        async with self.limiter.slot():
            try:
                async with self._session_now().get(
                    url,
                    params=params,
                    headers={self.key_header: self.key_value()},
                    allow_redirects=False,
                ) as resp:
                    answer.status = resp.status
                    answer.retry_after = self._unkeyed(resp.headers.get("Retry-After", ""))
                    answer.location = self._unkeyed(resp.headers.get("Location", ""))
                    raw = await resp.content.read(MAX_RESPONSE + 1)
                    answer.too_big = len(raw) > MAX_RESPONSE
                    answer.raw = raw.replace(self.key.reveal().encode(), self.key.masked.encode())
            except TimeoutError:
                answer.failure = f"no answer within {self.timeout:g} s"
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                answer.failure = self._scrub(f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                # Anything else from inside aiohttp becomes an ApiError too: left to propagate,
                # its traceback's frames would hold the request headers.
                answer.failure = self._scrub(f"{type(exc).__name__}: {exc}")
                answer.final = True
        ms = (time.monotonic() - started) * 1000
        log.debug(
            "%s API GET %s -> %s in %.0f ms",
            self.name,
            url.path,
            answer.status or answer.failure,
            ms,
        )
        return answer

    def key_value(self) -> str:
        """What `key_header` carries: the key itself (a gateway taking Basic auth overrides)."""
        return self.key.reveal()

    def _unkeyed(self, text: str) -> str:
        return text.replace(self.key.reveal(), self.key.masked)

    async def _get(
        self, path: str, params: dict[str, str] | None = None, *, lookup: bool = False
    ) -> Any:
        """GET `path` under the base URL and return its JSON. With `lookup`, a JSON 404 returns
        NOT_FOUND. Rate limit, retries and errors as in the module docstring."""
        url = URL(self.base_url + path, encoded=True)
        attempt = 0
        while True:
            attempt += 1
            answer = await self._attempt(url, params)
            status = answer.status
            if status is None:
                if attempt < self.retry.attempts and not answer.final:
                    await self._sleep(self.retry.backoff(attempt))
                    continue
                raise self._fail(f"cannot reach {self.base_url} ({answer.failure})")
            if answer.too_big:
                raise self._fail(f"answer over {MAX_RESPONSE // 1024 // 1024} MiB", status)
            body = _json_or_none(answer.raw)
            if 200 <= status < 300:
                if body is None and answer.raw.strip() != b"null":
                    raise self._fail(f"HTTP {status} but the answer is not JSON", status)
                return body
            if lookup and status == 404 and isinstance(body, dict):
                return NOT_FOUND
            words, code = self._describe(status, body, answer.raw)
            if status in (401, 403):
                raise AuthError(self.title, f"the key was refused ({words})", status, code)
            if 300 <= status < 400:
                where = f" to {self._scrub(answer.location, 200)}" if answer.location else ""
                raise self._fail(
                    f"redirected{where}, not followed (the key would go along): check the "
                    f"base URL {self.base_url}",
                    status,
                )
            wait = retry_after_seconds(answer.retry_after, body)
            if status == 429:
                wait = wait if wait is not None else self.retry.backoff(attempt)
                # The limit is the key's, so every call on it waits, not only this one.
                if self.limiter.pause(wait):  # once per burst, not once per call refused
                    log.warning("%s API: rate limited; calls paused for %.1f s", self.title, wait)
                if attempt < self.retry.attempts and wait <= self.retry.max_retry_after:
                    continue  # the next place in the limiter comes after the pause
                raise RateLimited(self.title, f"rate limited ({words})", wait, code)
            gives_up = isinstance(body, dict) and body.get("retryable") is False
            if (status >= 500 or status == 408) and not gives_up:
                if attempt < self.retry.attempts:
                    if wait is not None:
                        self.limiter.pause(min(wait, self.retry.max_retry_after))
                    else:
                        await self._sleep(self.retry.backoff(attempt))
                    continue
                raise self._fail(f"{words}, after {attempt} attempts", status, code)
            raise self._fail(words, status, code)


class BasicAuthApi(GatewayApi):
    """A status API that takes HTTP Basic auth: the account's user (Twilio's account SID,
    Vonage's API key, Plivo's Auth ID: `ApiConfig`'s `<name>_<user>`) and the key as the
    password. No client without the user."""

    key_header: ClassVar[str] = "Authorization"

    def __init__(self, key: ApiKey, base: str, *, user: str, **kwargs: Any) -> None:
        super().__init__(key, base, **kwargs)
        self.user = user
        self._basic = base64.b64encode(f"{user}:{key.reveal()}".encode()).decode("ascii")

    @classmethod
    def from_config(cls, config: ApiConfig, **kwargs: Any) -> Self | None:
        access = config.access(cls.name)
        if access is None or access.user is None:
            return None
        kwargs.setdefault("user", access.user)
        return super().from_config(config, **kwargs)

    def key_value(self) -> str:
        return f"Basic {self._basic}"

    def _unkeyed(self, text: str) -> str:
        # The encoded pair holds the key too: masked wherever an answer might echo it.
        return super()._unkeyed(text).replace(self._basic, self.key.masked)


@dataclass(slots=True)
class _Answer:
    """What one request brought back, the key already masked out of it."""

    status: int | None = None  # None: no answer (then `failure` says why)
    raw: bytes = field(default=b"", repr=False)
    retry_after: str = ""
    location: str = ""
    too_big: bool = False
    failure: str | None = None
    final: bool = False  # the request could not even be made: trying again cannot help


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


class Listed(Protocol):
    """One message of a gateway's list (one recipient each)."""

    @property
    def message_id(self) -> str: ...

    @property
    def recipient(self) -> str | None: ...

    @property
    def state(self) -> State | None: ...


class ListedPage(Protocol):
    @property
    def messages(self) -> Sequence[Listed]: ...

    @property
    def has_more(self) -> bool: ...

    @property
    def total(self) -> int | None: ...


@runtime_checkable
class ListingApi(Protocol):
    """A status API that also lists messages by status and creation time: the reconciler
    sweeps the list for many waiting messages at once instead of asking about each."""

    async def messages(
        self,
        status: str | None = None,
        start: int | None = None,
        end: int | None = None,
        page: int = 1,
    ) -> ListedPage: ...

    def listed_event(self, msg: Listed, recipient: str | None, received_at: int) -> Event | None:
        """A listed message (as its page gave it) as its recipient's event, `recipient` the
        one the answer names or else the store's; None if neither names one."""
