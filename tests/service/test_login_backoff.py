"""Login back-off and password upgrade, on SQLite and PostgreSQL.

Domain-level tests drive Accounts with a counting hasher and a fixed clock (so a lock can
expire without sleeping); one test goes through gRPC for the status, reason and RetryInfo of
both login routes (Login and the legacy form login IssueToken).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Literal

import grpc
import pytest
from argon2 import PasswordHasher
from fitco.user.v1 import user_pb2
from google.api import httpbody_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select, update

from fitcore.clock import FixedClock
from fitcore.db import Database, make_engine
from fitcore.errors import ResourceExhausted, ServiceError, Unauthenticated
from fitcore.keys import load_private_key
from fitcore.settings import token_settings
from monolith.app import build
from monolith.domain.accounts import Accounts
from monolith.domain.login_backoff import BackoffPolicy, LoginBackoff, attempt_key
from monolith.domain.passwords import Passwords, owasp_hasher
from monolith.domain.tokens import TokenIssuer
from monolith.models import LoginAttemptRow, UserRow
from tests.conftest import client_for, make_env
from tests.rpc import error_reason, expect_error

PASSWORD = "s3cret-passw0rd"
WRONG = "not-the-passw0rd"


class CountingHasher(PasswordHasher):
    """The production parameters, counting every hash and verification."""

    def __init__(self) -> None:
        base = owasp_hasher()
        super().__init__(
            time_cost=base.time_cost, memory_cost=base.memory_cost, parallelism=base.parallelism
        )
        self.hashes = 0
        self.verifies = 0
        self._lock = threading.Lock()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.hashes += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.verifies += 1
        return super().verify(hash, password)


@dataclass
class Harness:
    accounts: Accounts
    db: Database
    hasher: CountingHasher
    clock: FixedClock

    def attempt(self, email: str, password: str) -> tuple[str, str, str, float | None]:
        """What a login answers: outcome, reason, message, retry-after."""
        try:
            self.accounts.login(email, password)
        except ServiceError as exc:
            retry = exc.retry_after_seconds if isinstance(exc, ResourceExhausted) else None
            return type(exc).__name__, exc.reason, exc.message, retry
        return "ok", "", "", None

    def failures(self, email: str) -> int | None:
        with self.db.transaction(write=False) as s:
            row = s.get(LoginAttemptRow, attempt_key(email))
            return None if row is None else row.failures

    def advance(self, seconds: float) -> None:
        self.clock.at += timedelta(seconds=seconds)


def _harness(url: str, key_dir: Path, clock: FixedClock, policy: BackoffPolicy) -> Harness:
    env = make_env(key_dir, url)
    db = Database(make_engine(url))
    hasher = CountingHasher()
    accounts = Accounts(
        db,
        Passwords(hasher, concurrency=4, wait_seconds=30, max_waiting=64),
        TokenIssuer(load_private_key(env), token_settings(env), 60),
        "a-bootstrap-key-for-tests",
        clock,
        LoginBackoff(policy),
    )
    return Harness(accounts, db, hasher, clock)


@pytest.fixture
def h(migrated_url: str, key_dir: Path, clock: FixedClock) -> Iterator[Harness]:
    harness = _harness(migrated_url, key_dir, clock, BackoffPolicy(3, 1.0, 8.0))
    yield harness
    harness.db.dispose()


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def _registered(h: Harness) -> str:
    email = _email()
    h.accounts.register(email, "Someone", PASSWORD)
    return email


BAD = ("Unauthenticated", "BAD_CREDENTIALS", "invalid email or password", None)


def _locked(seconds: int) -> tuple[str, str, str, float]:
    message = f"too many failed logins for this email; retry in {seconds} s"
    return "ResourceExhausted", "LOGIN_BACKOFF", message, seconds


def test_threshold_then_doubling_locks_up_to_the_cap(h: Harness) -> None:
    email = _registered(h)
    assert [h.attempt(email, WRONG) for _ in range(3)] == [BAD] * 3
    # Locked now, even for the right password.
    assert h.attempt(email, PASSWORD) == _locked(1)
    h.advance(0.5)
    assert h.attempt(email, PASSWORD) == _locked(1)  # rounded up, never "retry in 0 s"
    for lock in (2, 4, 8, 8):  # each failure past the threshold doubles, capped at 8 s
        h.advance(8)
        assert h.attempt(email, WRONG) == BAD
        assert h.attempt(email, WRONG) == _locked(lock)
    assert h.failures(email) == 7


def test_success_resets_the_count(h: Harness) -> None:
    email = _registered(h)
    assert [h.attempt(email, WRONG) for _ in range(2)] == [BAD, BAD]
    assert h.attempt(email, PASSWORD)[0] == "ok"
    assert h.failures(email) is None
    # Without the reset the next failure would be the third and lock the email.
    assert [h.attempt(email, WRONG) for _ in range(2)] == [BAD, BAD]
    assert h.attempt(email, PASSWORD)[0] == "ok"
    # After a lock has expired, a success resets too.
    assert [h.attempt(email, WRONG) for _ in range(3)] == [BAD] * 3
    h.advance(1)
    assert h.attempt(email, PASSWORD)[0] == "ok"
    assert h.attempt(email, WRONG) == BAD


def test_no_hashing_while_locked(h: Harness) -> None:
    email = _registered(h)
    for _ in range(3):
        h.attempt(email, WRONG)
    verifies, hashes = h.hasher.verifies, h.hasher.hashes
    assert {h.attempt(email, PASSWORD) for _ in range(30)} == {_locked(1)}
    assert (h.hasher.verifies, h.hasher.hashes) == (verifies, hashes)
    h.advance(1)
    h.attempt(email, WRONG)
    assert h.hasher.verifies == verifies + 1


def test_unknown_email_answers_exactly_like_a_registered_one(h: Harness) -> None:
    def script(email: str) -> tuple[list[tuple[str, str, str, float | None]], int]:
        before = h.hasher.verifies
        answers = []
        for step in range(12):
            if step in (5, 8):
                h.advance(2)
            answers.append(h.attempt(email.upper() if step % 2 else email, WRONG))
        return answers, h.hasher.verifies - before

    known, unknown = script(_registered(h)), script(_email())
    assert known == unknown
    assert _locked(1) in known[0]
    assert known[1] < 12  # locked attempts were not hashed, for either email


def test_concurrent_failures_are_all_counted(
    migrated_url: str, key_dir: Path, clock: FixedClock
) -> None:
    h = _harness(migrated_url, key_dir, clock, BackoffPolicy(threshold=1000))
    try:
        email = _registered(h)
        start = threading.Barrier(16)

        def fail(_: int) -> str:
            start.wait()
            return h.attempt(email, WRONG)[0]

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(fail, range(16)))
        assert outcomes == ["Unauthenticated"] * 16
        assert h.failures(email) == 16
    finally:
        h.db.dispose()


def test_old_hash_is_upgraded_on_login(h: Harness) -> None:
    email = _registered(h)
    old = PasswordHasher().hash(PASSWORD)  # argon2-cffi's defaults before: 64 MiB, t=3, p=4
    assert "m=65536,t=3,p=4" in old
    with h.db.transaction() as s:
        s.execute(update(UserRow).where(UserRow.email == email).values(password_hash=old))
    hashes = h.hasher.hashes
    assert h.attempt(email, PASSWORD)[0] == "ok"
    with h.db.transaction(write=False) as s:
        upgraded = s.scalar(select(UserRow.password_hash).where(UserRow.email == email))
    assert upgraded is not None
    assert "m=19456,t=2,p=1" in upgraded
    assert h.hasher.hashes == hashes + 1
    # The new hash works and is not upgraded again.
    assert h.attempt(email, PASSWORD)[0] == "ok"
    assert h.hasher.hashes == hashes + 1


def test_registration_hashes_once_even_for_a_taken_email(h: Harness) -> None:
    email = _registered(h)
    hashes = h.hasher.hashes
    with pytest.raises(ServiceError) as info:
        h.accounts.register(email, "Again", PASSWORD)
    assert info.value.reason == "EMAIL_TAKEN"
    assert h.hasher.hashes == hashes + 1
    with pytest.raises(Unauthenticated):
        h.accounts.login(email, WRONG)


def _retry_seconds(err: grpc.Call) -> int:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return int(info.retry_delay.seconds)
    raise AssertionError("no RetryInfo")


def test_both_login_routes_share_the_back_off_over_grpc(
    migrated_url: str, key_dir: Path, clock: FixedClock
) -> None:
    env = make_env(key_dir, migrated_url, FITCO_LOGIN_FAILURES_BEFORE_BACKOFF="2")
    app = build(env, clock=clock, address="127.0.0.1:0")
    app.service.start()
    client = client_for(f"127.0.0.1:{app.port}")
    users = client.users

    def form_login(email: str, password: str) -> user_pb2.IssueTokenResponse:
        data = f"grant_type=password&username={email}&password={password}".encode()
        body = httpbody_pb2.HttpBody(content_type="application/x-www-form-urlencoded", data=data)
        return users.IssueToken(user_pb2.IssueTokenRequest(body=body))

    def login(email: str, password: str) -> user_pb2.LoginResponse:
        return users.Login(user_pb2.LoginRequest(email=email, password=password))

    try:
        known = _email()
        users.RegisterUser(user_pb2.RegisterUserRequest(email=known, name="K", password=PASSWORD))
        answers = []
        for email in (known, _email()):
            # One failure on each route: they count together.
            expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(login, email, WRONG))
            expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(form_login, email, WRONG))
            for call in (login, form_login):
                err = expect_error(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, partial(call, email, PASSWORD)
                )
                answers.append((error_reason(err), err.details(), _retry_seconds(err)))
        assert answers == [("LOGIN_BACKOFF", _locked(1)[2], 1)] * 4
        clock.at += timedelta(seconds=1)
        assert login(known, PASSWORD).access_token
        assert form_login(known, PASSWORD).access_token
    finally:
        client.channel.close()
        app.stop()
