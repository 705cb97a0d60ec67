"""The token-version cache and the verifier's revocation check, without servers."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fitcore.auth import Principal, TokenSettings, TokenVerifier
from fitcore.errors import Unauthenticated, Unavailable
from fitcore.token_versions import TokenVersionCache


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _principal(user_id: int = 7, version: int = 0) -> Principal:
    return Principal(user_id, "a@example.com", "A", "user", "token", version)


def test_versions_are_cached_per_user_for_the_ttl() -> None:
    clock, calls = Clock(), []
    source = {7: 1, 8: 5}

    def fetch(p: Principal) -> int:
        calls.append(p.user_id)
        return source[p.user_id]

    cache = TokenVersionCache(fetch, ttl_seconds=2.0, monotonic=clock)
    assert cache.current(_principal(7)) == 1
    assert cache.current(_principal(8)) == 5
    source[7] = 2  # revoked at the source
    clock.t += 1.9
    assert cache.current(_principal(7)) == 1  # still within the TTL: one read per user
    assert calls == [7, 8]
    clock.t += 0.2
    assert cache.current(_principal(7)) == 2  # seen within ttl_seconds
    assert calls == [7, 8, 7]


def test_a_local_change_is_used_at_once_and_never_undone_by_an_older_answer() -> None:
    clock = Clock()
    cache = TokenVersionCache(lambda p: 3, ttl_seconds=2.0, monotonic=clock)
    assert cache.current(_principal()) == 3
    cache.note(7, 4)  # this process logged the user out
    assert cache.current(_principal()) == 4
    clock.t += 5  # the source answers 3 (read before the change committed, a lagging replica)
    assert cache.current(_principal()) == 4


def test_zero_ttl_asks_every_time_and_failures_are_not_cached() -> None:
    answers: list[Any] = [Unavailable("down"), 2, 2]

    def fetch(p: Principal) -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return int(answer)

    cache = TokenVersionCache(fetch, ttl_seconds=0.0)
    with pytest.raises(Unavailable):
        cache.current(_principal())
    assert cache.current(_principal()) == 2
    assert cache.current(_principal()) == 2
    assert answers == []


def test_the_cache_is_bounded() -> None:
    cache = TokenVersionCache(lambda p: 0, max_entries=3)
    for user in range(10):
        cache.current(_principal(user))
    assert len(cache) == 3


def test_verifier_refuses_tokens_older_than_the_current_version() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier(
        key.public_key(), TokenSettings("iss", "aud"), TokenVersionCache(lambda p: 2, 0)
    )
    now = int(time.time())
    claims = {"iss": "iss", "aud": "aud", "sub": "5", "role": "user", "iat": now, "exp": now + 60}

    def token(**extra: Any) -> str:
        return jwt.encode({**claims, **extra}, key, algorithm="EdDSA")

    assert verifier.verify(token(tv=2)).token_version == 2
    assert verifier.verify(token(tv=3)).token_version == 3  # newer than a lagging source
    for old in (token(tv=1), token()):  # no `tv`: issued before versions existed, version 0
        with pytest.raises(Unauthenticated) as info:
            verifier.verify(old)
        assert info.value.reason == "TOKEN_REVOKED"
    for bad in (token(tv=-1), token(tv="2"), token(tv=True)):
        with pytest.raises(Unauthenticated) as info:
            verifier.verify(bad)
        assert info.value.reason == "TOKEN_INVALID"
