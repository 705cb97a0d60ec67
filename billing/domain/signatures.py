"""The `Provider-Signature` header of provider webhooks: build it (the sandbox signs) and check it
(billing verifies). Pure functions: no I/O, the clock is an argument.

    Provider-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, f"{t}.{raw body}")>

The timestamp is signed with the body, so an attacker can neither replay an old delivery with a
fresh timestamp nor move a signature to another body. Only the `v1` scheme is accepted; other
schemes are ignored (a provider may send several during a migration), and several `v1` values are
accepted when any one matches (the provider signs with old and new secrets while a secret is
rotated). Comparison is constant time (hmac.compare_digest). The format and the 5-minute tolerance
follow the common practice of payment providers (Stripe's "Stripe-Signature" header and its
default tolerance of 300 seconds, https://docs.stripe.com/webhooks#verify-manually).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from fitcore.errors import Unauthenticated

SCHEME: Final = "v1"
# A delivery older (or further in the future, i.e. a skewed clock) than this is refused: bounds
# the replay window. Stripe's default tolerance (see the module docstring).
DEFAULT_TOLERANCE_SECONDS: Final = 300
# A header longer than this, or carrying more signatures, is refused before any HMAC is computed:
# the check costs the same whatever a caller sends.
MAX_HEADER_CHARS: Final = 1024
MAX_SIGNATURES: Final = 8

MISSING: Final = "SIGNATURE_MISSING"
INVALID: Final = "SIGNATURE_INVALID"
EXPIRED: Final = "SIGNATURE_EXPIRED"


class SignatureError(Unauthenticated):
    """The webhook's signature is missing, malformed, wrong or outside the time tolerance.

    `reason` is one of SIGNATURE_MISSING / SIGNATURE_INVALID / SIGNATURE_EXPIRED; the message
    never repeats the header or the expected value.
    """


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(
        secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The full header value `t=<timestamp>,v1=<hex>` for `body` sent at `timestamp`."""
    return f"t={timestamp},{SCHEME}={_digest(secret, timestamp, body)}"


def parse(header: str) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures) of a header; SignatureError when missing or malformed."""
    if not header or not header.strip():
        raise SignatureError("the Provider-Signature header is missing", reason=MISSING)
    if len(header) > MAX_HEADER_CHARS:
        raise SignatureError("the Provider-Signature header is too long", reason=INVALID)
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value:
            raise SignatureError("the Provider-Signature header is malformed", reason=INVALID)
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise SignatureError(
                    "the Provider-Signature timestamp is malformed", reason=INVALID
                )
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("the Provider-Signature header has no timestamp", reason=INVALID)
    if not signatures:
        raise SignatureError("the Provider-Signature header has no v1 signature", reason=MISSING)
    if len(signatures) > MAX_SIGNATURES:
        raise SignatureError(
            "the Provider-Signature header has too many signatures", reason=INVALID
        )
    return timestamp, signatures


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check `header` against `body` at unix time `now`; raise SignatureError when it fails.

    The signature is checked before the timestamp's age, so an expired answer is only given to
    a caller who knows the secret (a stranger learns nothing about the clock).
    """
    timestamp, signatures = parse(header)
    expected = _digest(secret, timestamp, body).encode("ascii")
    # Compare against every candidate (no early exit) so the time taken does not tell which one
    # matched; bytes so that non-ASCII input is compared, not rejected by compare_digest.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("the Provider-Signature does not match", reason=INVALID)
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            "the Provider-Signature timestamp is too old or in the future", reason=EXPIRED
        )
