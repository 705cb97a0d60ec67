"""The JWT suite at each service directly (no Envoy in front): the monolith and the coach, each
an in-process server on 127.0.0.1:0, each refusing every bad token by itself with
UNAUTHENTICATED and a specific ErrorInfo reason. The same suite through Envoy, where the edge
refuses first, is tests/e2e/test_jwt_edge.py.

Layer: every refusal here is the service's own (its interceptor's TokenVerifier); the reason
says what it found wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.coach.v1 import coach_pb2
from fitco.user.v1 import user_pb2

from fitcore.config import Env
from fitcore.keys import default_key_paths, load_private_key
from tests.conftest import RunningMonolith, UserSession, onboard, register, token_claims
from tests.rpc import error_reason, expect_error
from tests.service.inproc import RunningCoach, first_failure, running_coach


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Forger:
    """Makes tokens the way an attacker (or a broken client) would."""

    key_dir: Path

    def signed(self, body: dict[str, Any]) -> str:
        """Properly signed with the real key: only the claims are wrong."""
        key = load_private_key(Env({"FITCO_DATA_DIR": str(self.key_dir)}))
        return jwt.encode(body, key, algorithm="EdDSA")

    @staticmethod
    def alg_none(body: dict[str, Any]) -> str:
        return f"{_b64json({'alg': 'none', 'typ': 'JWT'})}.{_b64json(body)}."

    def hs256_with_public_key(self, body: dict[str, Any]) -> str:
        """The classic key confusion: HMAC keyed with the (public) verification key's bytes.
        PyJWT refuses to make one, so it is made by hand."""
        public = default_key_paths(Env({"FITCO_DATA_DIR": str(self.key_dir)})).public_key
        signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT'})}.{_b64json(body)}"
        mac = hmac.new(public.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    @staticmethod
    def wrong_key(body: dict[str, Any]) -> str:
        return jwt.encode(body, Ed25519PrivateKey.generate(), algorithm="EdDSA")


# (case, how to make the token from (forger, user id), the reason the service gives)
CASES: list[tuple[str, Callable[[Forger, int], str], str]] = [
    ("alg_none", lambda f, u: f.alg_none(token_claims(u)), "TOKEN_ALGORITHM_NOT_ALLOWED"),
    (
        "hs256_signed_with_the_public_key",
        lambda f, u: f.hs256_with_public_key(token_claims(u)),
        "TOKEN_ALGORITHM_NOT_ALLOWED",
    ),
    ("wrong_key", lambda f, u: f.wrong_key(token_claims(u)), "TOKEN_BAD_SIGNATURE"),
    (
        "expired",
        lambda f, u: f.signed(token_claims(u, exp=int(time.time()) - 60)),
        "TOKEN_EXPIRED",
    ),
    (
        "not_yet_valid_nbf",
        lambda f, u: f.signed(token_claims(u, nbf=int(time.time()) + 600)),
        "TOKEN_NOT_YET_VALID",
    ),
    (
        "issued_in_the_future_iat",
        lambda f, u: f.signed(token_claims(u, iat=int(time.time()) + 600)),
        "TOKEN_NOT_YET_VALID",
    ),
    (
        "wrong_audience",
        lambda f, u: f.signed(token_claims(u, aud="fitco-internal")),
        "TOKEN_WRONG_AUDIENCE",
    ),
    ("wrong_issuer", lambda f, u: f.signed(token_claims(u, iss="evil")), "TOKEN_WRONG_ISSUER"),
    ("no_expiry", lambda f, u: f.signed(token_claims(u, exp=None)), "TOKEN_CLAIM_MISSING"),
    ("not_a_jwt", lambda f, u: "not.a.jwt", "TOKEN_MALFORMED"),
]


@dataclass
class Target:
    """One service, called directly, with the RPC a user token is for."""

    name: str
    call: Callable[[tuple[tuple[str, str], ...]], Any]


@pytest.fixture
def coach(monolith: RunningMonolith) -> Iterator[RunningCoach]:
    with running_coach(monolith) as running:
        yield running


@pytest.fixture(params=["monolith", "coach"])
def target(request: pytest.FixtureRequest, monolith: RunningMonolith) -> Target:
    if request.param == "monolith":
        users = monolith.client.users
        return Target(
            "monolith",
            lambda md: users.GetProfile(user_pb2.GetProfileRequest(), metadata=md),
        )
    running: RunningCoach = request.getfixturevalue("coach")
    return Target("coach", lambda md: running.coach.GetWod(coach_pb2.GetWodRequest(), metadata=md))


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _user(monolith: RunningMonolith) -> UserSession:
    user = register(monolith.client)
    onboard(monolith.client, user)
    return user


def test_a_good_token_is_accepted(monolith: RunningMonolith, target: Target) -> None:
    """The baseline: a forged-looking but correct token (right key, right claims) passes, so
    each refusal below is about the one thing that case changes."""
    user = _user(monolith)
    target.call(_bearer(Forger(monolith.key_dir).signed(token_claims(user.id))))
    target.call(user.md)


@pytest.mark.parametrize(("case", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_tokens_are_refused_by_the_service_itself(
    monolith: RunningMonolith,
    target: Target,
    case: str,
    make: Callable[[Forger, int], str],
    reason: str,
) -> None:
    user = _user(monolith)
    token = make(Forger(monolith.key_dir), user.id)
    err = expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: target.call(_bearer(token)))
    assert error_reason(err) == reason, f"{target.name} refused {case}: {err.details()}"


def test_a_token_outside_the_authorization_header_does_not_authenticate(
    monolith: RunningMonolith, target: Target
) -> None:
    """gRPC has no query string; the transcoder would turn `?access_token=` into a request
    field, which no request message has. The services read only `authorization: Bearer`:
    the token under any other key (as OAuth's query/form parameter name, or a cookie) is not
    looked at."""
    user = _user(monolith)
    for md in (
        (("access_token", user.token),),
        (("x-access-token", user.token),),
        (("cookie", f"access_token={user.token}"),),
        (("authorization", user.token),),  # no scheme
        (("authorization", f"Basic {user.token}"),),
    ):
        err = expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(target.call, md))
        assert error_reason(err) == "TOKEN_MISSING", (target.name, md[0][0])


@pytest.mark.parametrize("how", ["logout", "password_change"])
def test_revoked_tokens_are_refused(monolith: RunningMonolith, target: Target, how: str) -> None:
    """The signature and claims are fine; the user's token version moved past the token's."""
    c = monolith.client
    user = _user(monolith)
    target.call(user.md)  # accepted (and now cached by the target)
    if how == "logout":
        c.users.Logout(user_pb2.LogoutRequest(), metadata=user.md)
    else:
        c.users.ChangePassword(
            user_pb2.ChangePasswordRequest(
                current_password=user.password, new_password="another long passphrase"
            ),
            metadata=user.md,
        )
    # The monolith knows at once; the coach within its cache time (2 s).
    err, took = first_failure(lambda: target.call(user.md), 3.0)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (target.name, how, err.details())
    assert error_reason(err) == "TOKEN_REVOKED", (target.name, how, err.details())
    if target.name == "monolith":
        assert took < 0.5, "the monolith accepted a token it had revoked itself"


def test_a_forged_role_or_subject_does_not_verify(
    monolith: RunningMonolith, target: Target
) -> None:
    """Editing the payload of a real token (admin role, another user's id) breaks its
    signature."""
    user = _user(monolith)
    header, payload, sig = user.token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"role": "admin"}, {"sub": "1"}):
        forged = f"{header}.{_b64json({**body, **change})}.{sig}"
        err = expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(target.call, _bearer(forged)))
        assert error_reason(err) == "TOKEN_BAD_SIGNATURE"
