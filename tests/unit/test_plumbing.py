"""Unit tests for shared plumbing: errors, auth helpers, page tokens, clock."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.rpc import error_details_pb2

from fitcore.auth import TokenSettings, TokenVerifier, bearer_token
from fitcore.clock import FileClock
from fitcore.config import ConfigError, Env
from fitcore.errors import InvalidArgument, Unauthenticated, Validator
from fitcore.keys import ensure_dev_keys, load_bootstrap_key
from fitcore.settings import clock_from_env
from monolith.domain.common import decode_page_token, encode_page_token, page_size


def test_validator_collects_all_violations() -> None:
    v = Validator()
    v.check(False, "a", "bad a")
    v.check(True, "b", "fine")
    v.add("c", "bad c")
    with pytest.raises(InvalidArgument) as info:
        v.raise_if_any()
    status = info.value.to_status_proto()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [f.field for f in bad.field_violations] == ["a", "c"]


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    assert decode_page_token(encode_page_token(["2026-01-01T00:00:00+00:00", 7])) == [
        "2026-01-01T00:00:00+00:00",
        7,
    ]
    for bad in ("%%%", "bm90IGpzb24", "eyJhIjoxfQ"):  # junk, "not json", {"a":1}
        with pytest.raises(InvalidArgument):
            decode_page_token(bad)
    assert page_size(0, 50, 200) == 50
    assert page_size(1000, 50, 200) == 200
    with pytest.raises(InvalidArgument):
        page_size(-1, 50, 200)


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Bearer", "Basic abc", "abc"):
        with pytest.raises(Unauthenticated):
            bearer_token(bad)


def test_verifier_requires_algorithm_and_claims() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier(key.public_key(), TokenSettings("iss", "aud"))
    now = int(time.time())
    good = {"iss": "iss", "aud": "aud", "sub": "5", "role": "admin", "iat": now, "exp": now + 60}
    assert verifier.verify(jwt.encode(good, key, algorithm="EdDSA")).is_admin
    missing_iat = {k: v for k, v in good.items() if k != "iat"}
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(missing_iat, key, algorithm="EdDSA"))


def test_dev_keys_are_generated_private_and_stable(tmp_path: Path) -> None:
    env = Env({"FITCO_DATA_DIR": str(tmp_path)})
    paths = ensure_dev_keys(env)
    assert paths.private_key.stat().st_mode & 0o077 == 0
    assert paths.bootstrap_key.stat().st_mode & 0o077 == 0
    first = load_bootstrap_key(env)
    ensure_dev_keys(env)
    assert load_bootstrap_key(env) == first
    other = Env({"FITCO_DATA_DIR": str(tmp_path / "other")})
    ensure_dev_keys(other)
    assert load_bootstrap_key(other) != first  # never a fixed default


def test_production_never_generates_keys(tmp_path: Path) -> None:
    env = Env({"FITCO_DATA_DIR": str(tmp_path), "FITCO_ENV": "production"})
    ensure_dev_keys(env)
    with pytest.raises(ConfigError):
        load_bootstrap_key(env)
    with pytest.raises(ConfigError):
        clock_from_env(Env({"FITCO_ENV": "production", "FITCO_TEST_CLOCK_FILE": "/tmp/x"}))
    short = Env({"FITCO_BOOTSTRAP_KEY": "short"})
    with pytest.raises(ConfigError):
        load_bootstrap_key(short)


def test_file_clock_moves_with_the_file(tmp_path: Path) -> None:
    clock = FileClock(tmp_path / "offset")
    base = clock.now()
    (tmp_path / "offset").write_text(str(86400))
    moved = clock.now()
    assert 86399 < (moved - base).total_seconds() < 86460


def test_cached_check_reuses_its_answer_for_the_ttl() -> None:
    from fitcore.server import CachedCheck

    now = [0.0]
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("database gone")
        return True

    cached = CachedCheck(check, ttl=1.0, monotonic=lambda: now[0])
    assert cached() and cached()
    assert len(calls) == 1
    now[0] = 1.5
    assert cached() and len(calls) == 2
    now[0] = 3.0
    assert cached() is False  # a failing check reads as not ready
