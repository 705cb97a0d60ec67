"""Token verification at the service: expiry, signature, audience, issuer, alg none, roles."""

from __future__ import annotations

import base64
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2

from fitcore.config import Env
from fitcore.keys import load_private_key
from tests.conftest import RunningMonolith, register
from tests.rpc import error_reason, expect_error


def _claims(user_id: int, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "fitco",
        "aud": "fitco-api",
        "sub": str(user_id),
        "role": "user",
        "email": "x@example.com",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key_dir: Path, claims: dict[str, Any]) -> str:
    key = load_private_key(Env({"FITCO_DATA_DIR": str(key_dir)}))
    return jwt.encode(claims, key, algorithm="EdDSA")


def _profile(m: RunningMonolith, token: str) -> Any:
    return m.client.users.GetProfile(
        user_pb2.GetProfileRequest(), metadata=(("authorization", f"Bearer {token}"),)
    )


def test_valid_self_signed_token_is_accepted(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    assert _profile(monolith, _sign(monolith.key_dir, _claims(user.id))).profile.email == user.email


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "TOKEN_EXPIRED"),
        ({"aud": "someone-else"}, "TOKEN_WRONG_AUDIENCE"),
        ({"iss": "evil"}, "TOKEN_WRONG_ISSUER"),
        ({"exp": None}, "TOKEN_CLAIM_MISSING"),
        ({"role": "superuser"}, "TOKEN_INVALID"),
        ({"sub": "not-a-number"}, "TOKEN_INVALID"),
    ],
)
def test_bad_claims_are_unauthenticated(
    monolith: RunningMonolith, override: dict[str, Any], reason: str
) -> None:
    user = register(monolith.client)
    token = _sign(monolith.key_dir, _claims(user.id, **override))
    err = expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: _profile(monolith, token))
    assert error_reason(err) == reason


def test_tampered_and_foreign_and_unsigned_tokens(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    header, payload, sig = user.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    tampered = f"{header}.{forged}.{sig}"
    foreign = jwt.encode(_claims(user.id), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    unsigned = f"{none_header}.{payload}."
    hs256 = jwt.encode(_claims(user.id), "guessable-secret-guessable-secret", algorithm="HS256")
    for token in (tampered, foreign, unsigned, hs256, "garbage"):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(_profile, monolith, token))


def test_missing_or_malformed_authorization(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    c = monolith.client
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED, lambda: c.users.GetProfile(user_pb2.GetProfileRequest())
    )
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: c.users.GetProfile(
            user_pb2.GetProfileRequest(), metadata=(("authorization", f"Basic {user.token}"),)
        ),
    )


def test_users_only_see_their_own_history(monolith: RunningMonolith) -> None:
    c = monolith.client
    alice, bob = register(c, "Alice"), register(c, "Bob")
    entry = c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(exercise_id=1, sets=3, reps=8, weight_kg=50),
        metadata=alice.md,
    ).entry
    bob_view = c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=bob.md)
    assert list(bob_view.entries) == []
    day = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=entry.day), metadata=bob.md
    )
    assert list(day.exercise_ids) == []
    # Bob cannot delete Alice's entry; it is reported as not found (no existence leak).
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.history.DeleteHistoryEntry(
            history_pb2.DeleteHistoryEntryRequest(entry_id=entry.id), metadata=bob.md
        ),
    )
    assert (
        len(c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=alice.md).entries) == 1
    )
    # Profiles too: each token reads its own profile only.
    assert c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=bob.md).profile.name == "Bob"
