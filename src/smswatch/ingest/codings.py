"""Request bodies, as the HTTP server takes them in: which media types count as JSON, and the
content codings it decodes.

gzip and deflate (zlib-wrapped or raw) are decoded with the decoded size held to the body limit,
so a zip bomb gets 413 and undecodable bytes 400 `unreadable_body`; any other Content-Encoding
gets 415 at once (the body could never be read), identity is the body.
"""

from __future__ import annotations

import zlib

from smswatch.core.rejected import Rejected

# A body is "clearly not JSON" if its media type names another format. No header, JSON types,
# text/plain and octet-stream are accepted: some senders mislabel JSON as those.
_JSON_TYPES = {"", "application/json", "text/json", "text/plain", "application/octet-stream"}


def is_json_content_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or media.endswith("+json") or media == "*/*"


# A form route (a gateway whose `body_format` is "form") takes HTML forms; no header, or one that
# says nothing (`*/*`), is read as a form too. JSON there is clearly not what the gateway posts.
_FORM_TYPES = {"", "application/x-www-form-urlencoded", "*/*"}


def is_form_content_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in _FORM_TYPES


def decode(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip (one or more members) or deflate (zlib-wrapped or raw) body, decoded to at most
    `limit` bytes. Raises Rejected: 413 past the limit, 400 unreadable_body if it does not
    decode."""
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # deflate is meant to be zlib-wrapped (RFC 9110), but many senders send it raw
        wbits = zlib.MAX_WBITS if body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            # Never more than one byte past the limit is inflated, whatever the ratio.
            chunk = decompressor.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise Rejected(
                400, "unreadable_body", f"body could not be read: {encoding}: {exc}"
            ) from None
        size += len(chunk)
        if size > limit:
            raise Rejected(
                413, "payload_too_large", f"body is over the {limit}-byte limit once decoded"
            )
        out.append(chunk)
        if not decompressor.eof:
            raise Rejected(400, "unreadable_body", f"body could not be read: truncated {encoding}")
        data = decompressor.unused_data
        if not data:
            return out[0] if len(out) == 1 else b"".join(out)
        if encoding != "gzip":
            raise Rejected(
                400, "unreadable_body", "body could not be read: bytes after the deflate stream"
            )


def content_coding(coding: str) -> str | None:
    value = coding.strip().lower()
    if value in ("gzip", "x-gzip"):
        return "gzip"
    if value == "deflate":
        return "deflate"
    if value in ("", "identity"):
        return None
    raise Rejected(
        415,
        "unsupported_media_type",
        f"content encoding {coding!r} is not supported; send the body as is, gzip or deflate",
    )
