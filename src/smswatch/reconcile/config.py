"""The gateway API settings: which keys, which base URLs, how many calls a minute.

Kept apart from the clients (no aiohttp here), so that the engine's config and the command line
can hold these settings without importing an HTTP client.

A key is an `ApiKey`, never a bare string: its repr and str are redacted, so a key cannot reach
a log line, a traceback's locals, the screen or an export by being printed along with the object
that holds it. The only way to the value is `reveal()`, which the clients call to set the header.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

LISOLOO_RATE = 120  # GET /status calls a minute per key (gateways.md §1.6)
# YeboLink publishes no limit for its message endpoints; its only published one (bulk: 10 per
# 5 minutes) shows it does limit. One a second is gentle and still reconciles 3,600 messages an
# hour.
YEBOLINK_RATE = 60
YEBOLINK_URL = "https://api.yebolink.com"
# Twilio publishes no per-minute limit for its REST API: it limits how many requests an account
# has in flight at once and answers the rest 429, error 20429 (twilio.com/docs/api/errors/20429).
# One call a second in all, from a client that waits for each answer before the next, is far
# inside any concurrency limit and still looks up 3,600 messages an hour.
TWILIO_RATE = 60
TWILIO_URL = "https://api.twilio.com"
# An account SID: "AC" and 32 hexadecimal digits (it goes into the request path).
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
# Vonage's Reports API answers 10 synchronous requests a second (developer.vonage.com/api-errors/
# reports, "rate-limit"), but it is a paid product, charged per record returned: one lookup a
# second is plenty for messages whose receipts never came, and cheap.
VONAGE_RATE = 60
VONAGE_URL = "https://api.nexmo.com"
# A Vonage API key, which the Reports API takes as `account_id`: 8 characters (its spec).
_VONAGE_ACCOUNT = re.compile(r"[0-9A-Za-z]{8}")
# Infobip publishes no rate for its reports and logs endpoints (its send API takes hundreds a
# second); every lookup may cost two calls (the report queue, then the log), and one a second in
# all is far inside anything it would refuse.
INFOBIP_RATE = 60
# Telnyx publishes no per-minute limit for its message detail records; past its limits it
# answers 429, code 10011 (developers.telnyx.com, API errors). One call a second, as for the
# others: messages whose final webhook never came are few.
TELNYX_RATE = 60
TELNYX_URL = "https://api.telnyx.com"
# Plivo limits its API per account and answers 429 past it; one lookup a second in all is far
# inside that, for the messages whose final callback never came.
PLIVO_RATE = 60
PLIVO_URL = "https://api.plivo.com"
# A Plivo Auth ID: MA (an account) or SA (a subaccount) and 18 letters and digits (it goes into
# the request path).
_AUTH_ID = re.compile(r"(MA|SA)[0-9A-Z]{18}")
# Sinch limits each service plan's API calls and answers 429 past the limit; its delivery
# reports are read a batch at a time, so one call a second covers many recipients.
SINCH_RATE = 60
SINCH_URL = "https://us.sms.api.sinch.com"
# A service plan id goes into the request path: the dashboard shows 32 hexadecimal digits;
# letters and digits are what a path segment can carry unescaped.
_SERVICE_PLAN = re.compile(r"[0-9A-Za-z]{8,64}")
# Who a key is of, where an API asks for both (Basic auth's user): `<name>_account_sid`
# (Twilio), `<name>_account_id` (Vonage's API key), `<name>_auth_id` (Plivo),
# `<name>_service_plan_id` (Sinch's, in its paths).
_USERS = ("account_sid", "account_id", "auth_id", "service_plan_id")

# Prefixes the gateways document, kept visible in the redacted form: they say which environment
# a key is for (sk_test_ is Lisoloo's sandbox), which is what someone reading a log needs to know.
_KNOWN_PREFIX = re.compile(r"^(sk_(?:test|live)_|ybk_(?:test_|live_)?)")


PLIVO_BOTH = (
    "--plivo-auth-id needs --plivo-auth-token: Plivo's Message API takes the Auth ID and its "
    "auth token together (Basic auth)"
)


class ApiConfigError(ValueError):
    """A setting that cannot work. The text names the option, never a key's value."""


class ApiKey:
    """An API key that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str, option: str = "API key") -> None:
        value = value.strip()  # a pasted key often brings a newline along
        if not value:
            raise ApiConfigError(f"{option} is empty")
        # It goes into an HTTP header: whitespace or a control character would break the
        # request (or smuggle a header into it), and a non-ASCII key is a paste mistake.
        if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
            raise ApiConfigError(f"{option} must be printable ASCII without spaces")
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the request header and nothing else."""
        return self._value

    @property
    def masked(self) -> str:
        """`sk_test_****1234`: the environment and the last four characters, enough to tell
        two keys apart; a short key shows nothing of itself."""
        prefix = _KNOWN_PREFIX.match(self._value)
        head = prefix.group(1) if prefix else ""
        rest = self._value[len(head) :]
        tail = rest[-4:] if len(rest) >= 16 else ""
        return f"{head}****{tail}"

    def __repr__(self) -> str:
        return f"ApiKey({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiKey):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    # Immutable, so a copy is the key itself (dataclasses.asdict deep-copies its fields).
    def __copy__(self) -> ApiKey:
        return self

    def __deepcopy__(self, _memo: object) -> ApiKey:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key out in full (a multiprocessing queue, a cache); nothing
        # needs to, so nothing can by accident.
        raise TypeError("an ApiKey is not picklable")


def base_url(value: str, option: str) -> str:
    """A gateway's base URL, checked: http(s), a host, no credentials, no query. A path prefix
    is allowed (a reverse proxy), the documented `/api/v1/...` paths are not: they are
    appended to it."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise ApiConfigError(f"{option} {text!r} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiConfigError(f"{option} must be an http(s) URL with a host, like https://HOST")
    if parts.username is not None or parts.password is not None:
        # A URL is printed on screen and in logs; credentials go in the key options.
        raise ApiConfigError(f"{option} must not contain credentials (user:password@)")
    if parts.query or parts.fragment:
        raise ApiConfigError(f"{option} must be a base URL, without ?query or #fragment")
    path = parts.path.rstrip("/")
    if "/api/" in path + "/":
        raise ApiConfigError(
            f"{option} is the base URL only (scheme and host, like https://HOST): smswatch "
            "appends the documented /api/v1/... paths itself"
        )
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 address goes back in brackets
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme.lower()}://{netloc}{path}"


@dataclass(frozen=True)
class GatewayAccess:
    """What polling one gateway's status API takes."""

    key: ApiKey
    url: str | None  # None: the gateway has no default and none was given
    rate: int  # calls in any rolling minute, per key
    user: str | None = None  # who the key is of, where the API asks for both (Twilio's SID)


@dataclass(frozen=True)
class ApiConfig:
    """Keys and base URLs of the gateways' status APIs. A gateway without a key is not polled,
    whatever else is set."""

    lisoloo_key: ApiKey | None = None
    lisoloo_url: str | None = None  # per environment, on the Lisoloo dashboard: no default
    yebolink_key: ApiKey | None = None
    yebolink_url: str = YEBOLINK_URL
    lisoloo_rate: int = LISOLOO_RATE  # calls in any rolling minute, per key
    yebolink_rate: int = YEBOLINK_RATE
    timeout: float = 10.0  # seconds for one whole request
    # Twilio: the key is the account's auth token, Basic auth's password; the SID is its user.
    twilio_key: ApiKey | None = None
    twilio_account_sid: str | None = None
    twilio_url: str = TWILIO_URL
    twilio_rate: int = TWILIO_RATE
    # Vonage: the key is the API secret, Basic auth's password; the API key (account id) its user.
    vonage_key: ApiKey | None = None
    vonage_account_id: str | None = None
    vonage_url: str = VONAGE_URL
    vonage_rate: int = VONAGE_RATE
    # Infobip: the account's API key (`Authorization: App KEY`), at the account's own base URL.
    infobip_key: ApiKey | None = None
    infobip_url: str | None = None  # per account, on the Infobip portal: no default
    infobip_rate: int = INFOBIP_RATE
    # Telnyx: the key is the account's API key (a Bearer token), not its webhooks' public key.
    telnyx_key: ApiKey | None = None
    telnyx_url: str = TELNYX_URL
    telnyx_rate: int = TELNYX_RATE
    # Plivo: the key is the account's auth token, Basic auth's password; the Auth ID its user.
    plivo_key: ApiKey | None = None
    plivo_auth_id: str | None = None
    plivo_url: str = PLIVO_URL
    plivo_rate: int = PLIVO_RATE
    # Sinch: the service plan's API token (a Bearer token), its service plan id in the paths,
    # at the plan's region (us, eu, au, br, ca).
    sinch_key: ApiKey | None = None
    sinch_service_plan_id: str | None = None
    sinch_url: str = SINCH_URL
    sinch_rate: int = SINCH_RATE

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self) if f.name.endswith("_key")):
            # A bare string would print itself in this object's repr.
            if not isinstance(getattr(self, name), ApiKey | None):
                raise TypeError(f"ApiConfig.{name} must be an ApiKey")
        if self.lisoloo_key is not None and self.lisoloo_url is None:
            raise ApiConfigError(
                "--lisoloo-app-key needs --lisoloo-api-url: Lisoloo's base URL differs per "
                "environment (sandbox or production); copy it from the Lisoloo dashboard"
            )
        if self.lisoloo_url is not None:
            object.__setattr__(self, "lisoloo_url", base_url(self.lisoloo_url, "--lisoloo-api-url"))
        object.__setattr__(self, "yebolink_url", base_url(self.yebolink_url, "--yebolink-api-url"))
        object.__setattr__(self, "twilio_url", base_url(self.twilio_url, "--twilio-api-url"))
        if self.twilio_key is not None and self.twilio_account_sid is None:
            raise ApiConfigError(
                "--twilio-auth-token polls Twilio only with --twilio-account-sid (AC…, on the "
                "Twilio console's dashboard): the Messages resource is the account's"
            )
        if self.twilio_account_sid is not None:
            if not _ACCOUNT_SID.fullmatch(self.twilio_account_sid):
                raise ApiConfigError("--twilio-account-sid must be AC and 32 hexadecimal digits")
            if self.twilio_key is None:
                raise ApiConfigError(
                    "--twilio-account-sid needs --twilio-auth-token: Twilio's API takes the "
                    "account SID and its auth token (Basic auth)"
                )
        object.__setattr__(self, "vonage_url", base_url(self.vonage_url, "--vonage-api-url"))
        if self.infobip_key is not None and self.infobip_url is None:
            raise ApiConfigError(
                "--infobip-api-key needs --infobip-api-url: each Infobip account has its own "
                "base URL (https://XXXXX.api.infobip.com, on the Infobip portal's home page)"
            )
        if self.infobip_url is not None:
            object.__setattr__(self, "infobip_url", base_url(self.infobip_url, "--infobip-api-url"))
        if (self.vonage_key is None) != (self.vonage_account_id is None):
            raise ApiConfigError(
                "Vonage's Reports API takes the API key and the API secret together (Basic "
                "auth): set both --vonage-api-key and --vonage-api-secret"
            )
        if self.vonage_account_id is not None and not _VONAGE_ACCOUNT.fullmatch(
            self.vonage_account_id
        ):
            raise ApiConfigError(
                "--vonage-api-key must be the 8 letters and digits of the account's API key"
            )
        object.__setattr__(self, "telnyx_url", base_url(self.telnyx_url, "--telnyx-api-url"))
        object.__setattr__(self, "plivo_url", base_url(self.plivo_url, "--plivo-api-url"))
        if (self.plivo_key is None) != (self.plivo_auth_id is None):
            raise ApiConfigError(PLIVO_BOTH)
        if self.plivo_auth_id is not None and not _AUTH_ID.fullmatch(self.plivo_auth_id):
            raise ApiConfigError(
                "--plivo-auth-id must be MA or SA and 18 letters and digits (the Auth ID on "
                "the Plivo console's overview)"
            )
        object.__setattr__(self, "sinch_url", base_url(self.sinch_url, "--sinch-api-url"))
        if (self.sinch_key is None) != (self.sinch_service_plan_id is None):
            raise ApiConfigError(
                "Sinch's delivery reports take the service plan id and its API token together: "
                "set both --sinch-service-plan-id and --sinch-api-token"
            )
        if self.sinch_service_plan_id is not None and not _SERVICE_PLAN.fullmatch(
            self.sinch_service_plan_id
        ):
            raise ApiConfigError(
                "--sinch-service-plan-id must be the letters and digits of the service plan id "
                "(on the Sinch dashboard, SMS → APIs)"
            )
        for name in (f.name for f in fields(self) if f.name.endswith("_rate")):
            if getattr(self, name) < 1:
                raise ApiConfigError(f"{name} must be at least 1 call a minute")
        if self.timeout <= 0:
            raise ApiConfigError("the API timeout must be positive")

    @property
    def gateways(self) -> tuple[str, ...]:
        """The gateways that have a key, so will be polled (in the order of the fields)."""
        named = (f.name.removesuffix("_key") for f in fields(self) if f.name.endswith("_key"))
        return tuple(name for name in named if self.access(name) is not None)

    def access(self, name: str) -> GatewayAccess | None:
        """A gateway's key, base URL and rate (its `<name>_key`, `_url` and `_rate`); None
        without a key: it is not polled."""
        key = getattr(self, f"{name}_key", None)
        if key is None:
            return None
        url, rate = getattr(self, f"{name}_url", None), getattr(self, f"{name}_rate")
        user = next((u for s in _USERS if (u := getattr(self, f"{name}_{s}", None))), None)
        return GatewayAccess(key, url, rate, user)

    @classmethod
    def from_settings(
        cls,
        lisoloo_app_key: str | None = None,
        lisoloo_api_url: str | None = None,
        yebolink_api_key: str | None = None,
        yebolink_api_url: str | None = None,
        twilio_account_sid: str | None = None,
        twilio_auth_token: str | None = None,
        twilio_api_url: str | None = None,
        vonage_api_key: str | None = None,
        vonage_api_secret: str | None = None,
        vonage_api_url: str | None = None,
        infobip_api_key: str | None = None,
        infobip_api_url: str | None = None,
        telnyx_api_key: str | None = None,
        telnyx_api_url: str | None = None,
        plivo_auth_id: str | None = None,
        plivo_auth_token: str | None = None,
        plivo_api_url: str | None = None,
        sinch_service_plan_id: str | None = None,
        sinch_api_token: str | None = None,
        sinch_api_url: str | None = None,
    ) -> ApiConfig | None:
        """From the flags, environment or config file. None when no key is set: nothing is
        polled. A URL alone is still checked, so a typo shows now rather than with the key."""
        lisoloo_key = ApiKey(lisoloo_app_key, "--lisoloo-app-key") if lisoloo_app_key else None
        yebolink_key = ApiKey(yebolink_api_key, "--yebolink-api-key") if yebolink_api_key else None
        lisoloo_url = base_url(lisoloo_api_url, "--lisoloo-api-url") if lisoloo_api_url else None
        yebolink_url = (
            base_url(yebolink_api_url, "--yebolink-api-url") if yebolink_api_url else YEBOLINK_URL
        )
        twilio_url = base_url(twilio_api_url, "--twilio-api-url") if twilio_api_url else TWILIO_URL
        # The auth token alone checks webhooks; with the account SID it also polls.
        twilio_sid = twilio_account_sid.strip() if twilio_account_sid else None
        twilio_key = (
            ApiKey(twilio_auth_token, "--twilio-auth-token")
            if twilio_auth_token and twilio_sid
            else None
        )
        if twilio_sid and twilio_key is None:
            raise ApiConfigError(
                "--twilio-account-sid needs --twilio-auth-token: Twilio's API takes the "
                "account SID and its auth token (Basic auth)"
            )
        vonage_url = base_url(vonage_api_url, "--vonage-api-url") if vonage_api_url else VONAGE_URL
        vonage_key = ApiKey(vonage_api_secret, "--vonage-api-secret") if vonage_api_secret else None
        vonage_account = vonage_api_key.strip() if vonage_api_key else None
        if (vonage_key is None) != (vonage_account is None):
            given, missing = (
                ("--vonage-api-key", "--vonage-api-secret")
                if vonage_key is None
                else ("--vonage-api-secret", "--vonage-api-key")
            )
            raise ApiConfigError(
                f"{given} needs {missing}: Vonage's Reports API takes the API key and its "
                "secret together (Basic auth)"
            )
        infobip_key = ApiKey(infobip_api_key, "--infobip-api-key") if infobip_api_key else None
        infobip_url = base_url(infobip_api_url, "--infobip-api-url") if infobip_api_url else None
        telnyx_url = base_url(telnyx_api_url, "--telnyx-api-url") if telnyx_api_url else TELNYX_URL
        telnyx_key = ApiKey(telnyx_api_key, "--telnyx-api-key") if telnyx_api_key else None
        plivo_url = base_url(plivo_api_url, "--plivo-api-url") if plivo_api_url else PLIVO_URL
        # The auth token alone checks webhooks; with the Auth ID it also polls.
        plivo_id = plivo_auth_id.strip() if plivo_auth_id else None
        plivo_key = (
            ApiKey(plivo_auth_token, "--plivo-auth-token")
            if plivo_auth_token and plivo_id
            else None
        )
        if plivo_id and plivo_key is None:
            raise ApiConfigError(PLIVO_BOTH)
        sinch_url = base_url(sinch_api_url, "--sinch-api-url") if sinch_api_url else SINCH_URL
        sinch_key = ApiKey(sinch_api_token, "--sinch-api-token") if sinch_api_token else None
        sinch_plan = sinch_service_plan_id.strip() if sinch_service_plan_id else None
        if (sinch_key is None) != (sinch_plan is None):
            given, missing = (
                ("--sinch-service-plan-id", "--sinch-api-token")
                if sinch_key is None
                else ("--sinch-api-token", "--sinch-service-plan-id")
            )
            raise ApiConfigError(
                f"{given} needs {missing}: Sinch's delivery reports are the service plan's, "
                "read with its API token"
            )
        keys = (
            lisoloo_key,
            yebolink_key,
            twilio_key,
            vonage_key,
            infobip_key,
            telnyx_key,
            plivo_key,
            sinch_key,
        )
        if all(key is None for key in keys):
            return None
        return cls(
            lisoloo_key=lisoloo_key,
            lisoloo_url=lisoloo_url,
            yebolink_key=yebolink_key,
            yebolink_url=yebolink_url,
            twilio_key=twilio_key,
            twilio_account_sid=twilio_sid,
            twilio_url=twilio_url,
            vonage_key=vonage_key,
            vonage_account_id=vonage_account,
            vonage_url=vonage_url,
            infobip_key=infobip_key,
            infobip_url=infobip_url,
            telnyx_key=telnyx_key,
            telnyx_url=telnyx_url,
            plivo_key=plivo_key,
            plivo_auth_id=plivo_id,
            plivo_url=plivo_url,
            sinch_key=sinch_key,
            sinch_service_plan_id=sinch_plan,
            sinch_url=sinch_url,
        )
