"""Telnyx's Ed25519 keys as smswatch takes them: the account's public key (base64 of its 32
bytes, as the portal's "Public Key" shows it) verifies webhooks; a signing key (base64 of a
32-byte Ed25519 private key) makes the simulator's, the demo's and the forwarder's signatures.

`cryptography` is imported here, on first use, not when the gateway registers: the monitor
attached to a remote feed (`smswatch attach`) loads the registry but never verifies anything,
and must not pay for OpenSSL's bindings (tests/test_layers.py keeps it so). No Ed25519 is
written here: the library signs and verifies.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KEY_BYTES = 32
SIGNATURE_BYTES = 64


class BadKey(ValueError):
    """A key setting that is not a key: the text names the setting, never the value."""


def _raw(text: str, setting: str) -> bytes:
    value = text.strip()
    try:
        # Standard base64 as the portal writes it; the URL-safe alphabet too (a key pasted
        # from a JWK or a secrets manager that prefers it), padding optional.
        raw = base64.b64decode(
            value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise BadKey(f"{setting} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise BadKey(
            f"{setting} must be the base64 of {KEY_BYTES} bytes (an Ed25519 key), not {len(raw)}"
        )
    return raw


def read_public(text: str, setting: str = "--telnyx-public-key") -> Ed25519PublicKey:
    """The account's public key from its base64. Raises BadKey (a ValueError)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(_raw(text, setting))


def read_signing(text: str, setting: str = "--telnyx-signing-key") -> Ed25519PrivateKey:
    """A signing key from its base64. Raises BadKey (a ValueError)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(_raw(text, setting))


def public_of(signing: Ed25519PrivateKey) -> str:
    """The base64 public key that verifies what `signing` signs."""
    return base64.b64encode(signing.public_key().public_bytes_raw()).decode("ascii")


def new_pair() -> tuple[str, str]:
    """A fresh (signing key, public key), each base64: the demo's, a test's. Any 32 random
    bytes are an Ed25519 private key."""
    seed = base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")
    return seed, public_of(read_signing(seed))
