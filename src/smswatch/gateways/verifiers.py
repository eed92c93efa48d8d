"""Request-verification primitives a gateway's adapter can be built from, by name: a shared token
in the URL's query, HTTP Basic auth, an HMAC of the body or of the URL and its sorted
parameters, an Ed25519 signature, a JWT signed with HS256 over hashes of the URL and the body.

Each check raises `Rejected(401, ...)` and compares in constant time; each signer makes what the
check accepts (the forwarder's and the tests' posts). The gateways from files
(`gateways/declarative/`) are made of these; the built-ins keep their own, older checks, which
these agree with (tests/test_declarative.py runs both over the same traffic).

`cryptography` (Ed25519) and PyJWT are imported when such a verifier is first made, as
Telnyx's and Vonage's adapters import them, so a listener that uses neither never loads them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from smswatch.core.rejected import Rejected
from smswatch.gateways.base import MAX_FORM_FIELDS, BasicAuth

Digest = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["base64", "hex"]
DIGESTS: tuple[Digest, ...] = ("sha1", "sha256", "sha512")
ENCODINGS: tuple[Encoding, ...] = ("base64", "hex")

__all__ = [
    "DIGESTS",
    "ENCODINGS",
    "BasicAuth",
    "Ed25519Check",
    "HmacCheck",
    "JwtCheck",
    "check_query_token",
    "encode_mac",
    "sorted_params",
]


def query_values(url: str | None, param: str) -> list[str]:
    """Every `param` value in a URL's query, percent-decoded; bytes that are not UTF-8 kept as
    surrogates, so they compare as the bytes they were. Raises ValueError on a query with more
    parameters than a form may have fields."""
    query = urlsplit(url).query if url else ""
    pairs = parse_qsl(
        query,
        keep_blank_values=True,
        encoding="utf-8",
        errors="surrogateescape",
        max_num_fields=MAX_FORM_FIELDS,
    )
    return [value for name, value in pairs if name == param]


def check_query_token(url: str | None, param: str, token: bytes) -> None:
    """The URL's `param` query parameter must be `token`, once: a shared secret in the callback
    URL, for a gateway that signs nothing (Africa's Talking's `?token=`). Details never repeat
    what was given: a near miss is most of the secret."""
    try:
        given = query_values(url, param)
    except ValueError:
        given = []
    if not given:
        raise Rejected(401, "missing_token", f"no {param} query parameter in the URL called")
    if len(given) > 1:
        raise Rejected(401, "bad_token", f"more than one {param} query parameter in the URL")
    if not hmac.compare_digest(given[0].encode("utf-8", "surrogateescape"), token):
        raise Rejected(401, "bad_token", f"the {param} query parameter does not match")


def encode_mac(mac: bytes, encoding: Encoding) -> str:
    return base64.b64encode(mac).decode("ascii") if encoding == "base64" else mac.hex()


def sorted_params(fields: Iterable[tuple[str, str]]) -> str:
    """What is signed after the URL by a gateway that signs the URL and its parameters (as
    twilio-python's `compute_signature`): each field sorted by name as name + value; the
    distinct values of a name sent more than once, sorted."""
    by_name: dict[str, set[str]] = {}
    for name, value in fields:
        by_name.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))


class HmacCheck:
    """An HMAC in a header: of the raw body, or of the URL followed by its parameters sorted
    (`sorted_params`), with a chosen digest and encoding. A `prefix` the header puts before
    the MAC (`sha256=`) is taken off; hex is compared in any case."""

    def __init__(
        self,
        secret: str,
        header: str,
        digest: Digest = "sha256",
        encoding: Encoding = "hex",
        prefix: str = "",
    ) -> None:
        self.header = header
        self.digest = digest
        self.encoding = encoding
        self.prefix = prefix
        self._keyed = hmac.new(secret.encode(), digestmod=getattr(hashlib, digest))

    def mac(self, message: bytes) -> str:
        keyed = self._keyed.copy()
        keyed.update(message)
        return encode_mac(keyed.digest(), self.encoding)

    def header_value(self, message: bytes) -> str:
        return self.prefix + self.mac(message)

    def check(self, given: str | None, messages: Iterable[bytes], what: str) -> None:
        """`given` must be the MAC of one of `messages` (the URL's forms, for one signed over
        it); `what` says what it was over, for the 401's detail."""
        if given is None:
            raise Rejected(401, "missing_signature", f"missing {self.header} header")
        text = given.strip()
        if self.prefix and text[: len(self.prefix)].lower() == self.prefix.lower():
            text = text[len(self.prefix) :]
        if self.encoding == "hex":
            text = text.lower()
        mine = text.encode("ascii", "replace")
        if not any(hmac.compare_digest(mine, self.mac(m).encode()) for m in messages):
            raise Rejected(
                401, "bad_signature", f"{self.header} does not match {what}: is the secret right?"
            )


def _b64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not; raises ValueError."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


class Ed25519Check:
    """An Ed25519 signature (base64, in a header) over the body, or over a timestamp header's
    value, a separator and the body (Telnyx's `timestamp|body`), whose timestamp (Unix
    seconds) must be within `tolerance_s` of now."""

    def __init__(
        self,
        public_key: str,
        header: str,
        timestamp_header: str | None = None,
        separator: str = "|",
        tolerance_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            raw = _b64(public_key)
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise ValueError("the Ed25519 public key must be 32 bytes in base64") from None
        self.header = header
        self.timestamp_header = timestamp_header
        self.separator = separator.encode()
        self.tolerance_s = tolerance_s
        self.clock = clock

    def check(self, headers: Any, body: bytes) -> None:
        from cryptography.exceptions import InvalidSignature

        given = headers.get(self.header)
        if given is None:
            raise Rejected(401, "missing_signature", f"missing {self.header} header")
        message = body
        if self.timestamp_header is not None:
            stamp = headers.get(self.timestamp_header)
            if stamp is None:
                raise Rejected(401, "missing_signature", f"missing {self.timestamp_header} header")
            message = stamp.strip().encode("ascii", "replace") + self.separator + body
        try:
            self._key.verify(_b64(given), message)
        except (ValueError, InvalidSignature):
            raise Rejected(401, "bad_signature", f"{self.header} does not verify") from None
        if self.timestamp_header is not None:
            try:
                at = float(stamp)  # verified: it is what the gateway signed
            except ValueError:
                at = math.nan
            if not math.isfinite(at):  # "nan" would pass any window
                raise Rejected(401, "bad_signature", "the signed timestamp is no time")
            if abs(self.clock() - at) > self.tolerance_s:
                raise Rejected(
                    401, "stale_signature", f"signed {abs(self.clock() - at):.0f} s from now"
                )


class JwtCheck:
    """A JWT in a header, signed with HS256 (HS384, HS512) by a shared secret, whose claims hash
    the URL called and the body (MessageBird's `MessageBird-Signature-JWT`, as its SDK's
    `RequestValidator`: `url_hash` the SHA-256 hex of the URL, `payload_hash` that of the body,
    present exactly when there is a body; `iss`, `nbf` and `exp` required, a second's leeway)."""

    ALGORITHMS = ("HS256", "HS384", "HS512")

    def __init__(
        self,
        secret: str,
        header: str = "MessageBird-Signature-JWT",
        issuer: str | None = "MessageBird",
        url_claim: str | None = "url_hash",
        body_claim: str | None = "payload_hash",
        leeway_s: float = 1.0,
    ) -> None:
        import jwt  # PyJWT, as Vonage's adapter imports it

        self._jwt = jwt
        self._secret = secret
        self.header = header
        self.issuer = issuer
        self.url_claim = url_claim
        self.body_claim = body_claim
        self.leeway_s = leeway_s

    def check(self, headers: Any, body: bytes, urls: Iterable[str]) -> None:
        jwt = self._jwt
        token = headers.get(self.header)
        if not token:
            raise Rejected(401, "missing_signature", f"missing {self.header} header")
        required = ["nbf", "exp"] + (["iss"] if self.issuer else [])
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=list(self.ALGORITHMS),
                options={"require": required, "verify_iat": False},
                issuer=self.issuer,
                leeway=self.leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise Rejected(401, "stale_signature", f"{self.header} has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Rejected(401, "bad_signature", f"{self.header}: {exc}") from None
        if self.url_claim is not None:
            claimed = claims.get(self.url_claim)
            if not isinstance(claimed, str) or not any(
                hmac.compare_digest(
                    claimed.encode("ascii", "replace"),
                    # A target that was not UTF-8 hashes as its own bytes (Request.url).
                    _sha256(u.encode("utf-8", "surrogateescape")),
                )
                for u in urls
            ):
                raise Rejected(
                    401,
                    "bad_signature",
                    f"{self.header}'s {self.url_claim} is not the URL called (behind a tunnel "
                    "or proxy, set --public-url)",
                )
        if self.body_claim is not None:
            claimed = claims.get(self.body_claim)
            if bool(body) != bool(claimed):
                raise Rejected(
                    401,
                    "bad_signature",
                    f"{self.header}'s {self.body_claim} is "
                    + ("missing for a body" if body else "set with no body"),
                )
            if body and not (
                isinstance(claimed, str)
                and hmac.compare_digest(claimed.encode("ascii", "replace"), _sha256(body))
            ):
                raise Rejected(
                    401, "bad_signature", f"{self.header}'s {self.body_claim} is not the body's"
                )

    def sign(self, url: str, body: bytes, now: float | None = None, ttl_s: int = 60) -> str:
        """A token as the gateway makes it, for a post of `body` to `url`."""
        at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"nbf": at, "exp": at + ttl_s}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.url_claim is not None:
            claims[self.url_claim] = _sha256(url.encode("utf-8", "surrogateescape")).decode()
        if self.body_claim is not None and body:
            claims[self.body_claim] = _sha256(body).decode()
        return self._jwt.encode(claims, self._secret, algorithm="HS256")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()
