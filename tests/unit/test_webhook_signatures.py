"""The `Provider-Signature` header (billing.domain.signatures): what it signs, and every way a
delivery is refused. Each test fails when its rule is removed."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from billing.domain.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_HEADER_CHARS,
    SignatureError,
    parse,
    sign,
    verify,
)
from fitcore.errors import Unauthenticated

SECRET = b"whsec-test-0123456789abcdef0123456789"
OTHER = b"whsec-other-0123456789abcdef012345678"
BODY = b'{"id":"evt_1","type":"charge.succeeded","created":1700000000}'
T = 1_700_000_000


def reason(header: str, body: bytes = BODY, now: int = T, secret: bytes = SECRET) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(secret, header, body, now)
    return caught.value.reason


def test_header_is_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_valid_signature_passes() -> None:
    verify(SECRET, sign(SECRET, T, BODY), BODY, T)
    verify(SECRET, sign(SECRET, T, BODY), BODY, T + DEFAULT_TOLERANCE_SECONDS)
    verify(SECRET, sign(SECRET, T, BODY), BODY, T - DEFAULT_TOLERANCE_SECONDS)


def test_rejections_are_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        verify(SECRET, sign(OTHER, T, BODY), BODY, T)


def test_tampered_body() -> None:
    assert reason(sign(SECRET, T, BODY), body=BODY.replace(b"succeeded", b"failed")) == (
        "SIGNATURE_INVALID"
    )


def test_wrong_secret() -> None:
    assert reason(sign(OTHER, T, BODY)) == "SIGNATURE_INVALID"


def test_timestamp_is_signed_too() -> None:
    # A replay with a fresh timestamp but the old signature.
    old = sign(SECRET, T - 3600, BODY)
    forged = old.replace(f"t={T - 3600}", f"t={T}")
    assert reason(forged) == "SIGNATURE_INVALID"


@pytest.mark.parametrize("skew", [DEFAULT_TOLERANCE_SECONDS + 1, 86_400])
def test_old_and_future_timestamps_expire(skew: int) -> None:
    assert reason(sign(SECRET, T - skew, BODY)) == "SIGNATURE_EXPIRED"
    assert reason(sign(SECRET, T + skew, BODY)) == "SIGNATURE_EXPIRED"


def test_tolerance_is_configurable() -> None:
    verify(SECRET, sign(SECRET, T - 500, BODY), BODY, T, tolerance_seconds=600)
    with pytest.raises(SignatureError):
        verify(SECRET, sign(SECRET, T - 61, BODY), BODY, T, tolerance_seconds=60)


def test_expired_is_only_said_to_a_caller_who_knows_the_secret() -> None:
    assert reason(sign(OTHER, T - 3600, BODY)) == "SIGNATURE_INVALID"


@pytest.mark.parametrize("header", ["", "   "])
def test_missing_header(header: str) -> None:
    assert reason(header) == "SIGNATURE_MISSING"


def test_missing_v1_is_refused_even_with_another_scheme() -> None:
    digest = sign(SECRET, T, BODY).split("v1=")[1]
    assert reason(f"t={T}") == "SIGNATURE_MISSING"
    assert reason(f"t={T},v0={digest}") == "SIGNATURE_MISSING"


def test_other_schemes_are_ignored_beside_v1() -> None:
    verify(SECRET, sign(SECRET, T, BODY) + ",v0=deadbeef", BODY, T)


def test_several_v1_values_pass_when_any_matches() -> None:
    # Key rotation: the provider signs with the old and the new secret.
    good = sign(SECRET, T, BODY).split("v1=")[1]
    stale = sign(OTHER, T, BODY).split("v1=")[1]
    verify(SECRET, f"t={T},v1={stale},v1={good}", BODY, T)
    verify(SECRET, f"t={T},v1={good},v1={stale}", BODY, T)
    assert reason(f"t={T},v1={stale},v1={'0' * 64}") == "SIGNATURE_INVALID"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v1=abc",
        f"v1={'a' * 64}",  # no timestamp
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t=1.5,v1={'a' * 64}",
        f"t=١٢٣,v1={'a' * 64}",  # non-ASCII digits
        f"t={T},t={T},v1={'a' * 64}",
        f"t={T},v1",
        f"t={T},,v1={'a' * 64}",
        f"t={T},v1=ü{'a' * 63}",  # non-ASCII signature: compared, not crashed on
        f"t={T}," + ",".join(f"v1={'a' * 64}" for _ in range(9)),  # too many signatures
        f"t={T},v1=" + "a" * MAX_HEADER_CHARS,
    ],
)
def test_malformed_headers_are_invalid(header: str) -> None:
    assert reason(header) == "SIGNATURE_INVALID"


def test_parse_reads_timestamp_and_signatures() -> None:
    assert parse(f" t={T} , v1=ab , v1=cd , v2=ef ") == (T, ["ab", "cd"])


def test_messages_never_echo_the_header() -> None:
    header = sign(OTHER, T, BODY)
    with pytest.raises(SignatureError) as caught:
        verify(SECRET, header, BODY, T)
    assert header.split("v1=")[1] not in str(caught.value)
