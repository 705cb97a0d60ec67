"""Password hashing pool, login back-off policy, ResourceExhausted details, DB error mapping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import grpc
import pytest
from argon2 import PasswordHasher
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from fitcore.db import db_error_to_service_error
from fitcore.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from monolith.domain.login_backoff import BackoffPolicy, attempt_key, locked_error
from monolith.domain.passwords import Passwords


class GatedHasher(PasswordHasher):
    """Cheap parameters; counts calls; blocks inside hash/verify while `gate` is clear."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.calls += 1
        assert self.gate.wait(10), "test gate never opened"

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self._enter()
        return super().verify(hash, password)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


RUNNING = "fitco_password_hashes_in_progress"
WAITING = "fitco_password_hashes_waiting"
REJECTED = "fitco_password_hashes_rejected_total"
SECONDS_COUNT = "fitco_password_hash_seconds_count"


def test_default_parameters_are_owasp_argon2id() -> None:
    encoded = Passwords(concurrency=1).hash("correct horse battery")
    assert encoded.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in encoded


def test_hashes_with_other_parameters_verify_and_need_a_rehash() -> None:
    passwords = Passwords(concurrency=1)
    old = PasswordHasher().hash("correct horse battery")  # argon2-cffi's default: 64 MiB, t=3
    assert passwords.verify(old, "correct horse battery")
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(passwords.hash("correct horse battery"))
    assert passwords.needs_rehash("not a hash")


def test_unknown_user_costs_a_verification_and_fails() -> None:
    hasher = GatedHasher()
    passwords = Passwords(hasher, concurrency=1)
    before = hasher.calls
    assert passwords.verify(None, "anything at all") is False
    assert hasher.calls == before + 1


def test_pool_runs_n_at_once_and_refuses_the_next_after_the_wait() -> None:
    hasher = GatedHasher()
    passwords = Passwords(hasher, concurrency=2, wait_seconds=0.3)
    running, rejected = sample(RUNNING), sample(REJECTED)
    hashed = sample(SECONDS_COUNT, op="hash")
    hasher.gate.clear()
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(passwords.hash, "a password") for _ in range(2)]
        wait_until(lambda: sample(RUNNING) == running + 2)
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as info:
            passwords.hash("one too many")
        assert 0.25 <= time.monotonic() - started < 3
        assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.reason == "PASSWORD_HASHING_BUSY"
        assert info.value.retry_after_seconds
        # Verification shares the pool (an unknown user's dummy check too).
        with pytest.raises(ResourceExhausted):
            passwords.verify(None, "x")
        assert sample(REJECTED) == rejected + 2
        assert sample(RUNNING) == running + 2
        hasher.gate.set()
        assert all(f.result(10) for f in held)
    assert sample(RUNNING) == running
    assert sample(SECONDS_COUNT, op="hash") == hashed + 2
    assert passwords.verify(passwords.hash("free again"), "free again")


def test_a_waiting_caller_gets_the_next_free_slot() -> None:
    hasher = GatedHasher()
    passwords = Passwords(hasher, concurrency=1, wait_seconds=10)
    waiting = sample(WAITING)
    hasher.gate.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(passwords.hash, "first")
        wait_until(lambda: hasher.calls == 2)  # the dummy hash at start-up, then `first`
        second = pool.submit(passwords.hash, "second")
        wait_until(lambda: sample(WAITING) == waiting + 1)
        assert hasher.calls == 2  # `second` waits for the slot, it does not hash yet
        hasher.gate.set()
        assert first.result(10)
        assert second.result(10)
    assert sample(WAITING) == waiting


def test_beyond_max_waiting_a_caller_is_refused_at_once() -> None:
    """Each waiter holds a worker thread: past the bound, refusal must not wait."""
    hasher = GatedHasher()
    passwords = Passwords(hasher, concurrency=1, wait_seconds=10, max_waiting=2)
    waiting = sample(WAITING)
    hasher.gate.clear()
    with ThreadPoolExecutor(3) as pool:
        held = pool.submit(passwords.hash, "running")
        wait_until(lambda: hasher.calls == 2)  # the start-up dummy hash, then `running`
        waiters = [pool.submit(passwords.hash, f"waiting {i}") for i in range(2)]
        wait_until(lambda: sample(WAITING) == waiting + 2)
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as info:
            passwords.hash("one waiter too many")
        assert time.monotonic() - started < 0.5  # not the 10 s wait
        assert info.value.reason == "PASSWORD_HASHING_BUSY"
        hasher.gate.set()
        assert held.result(10)
        assert all(w.result(10) for w in waiters)
    assert sample(WAITING) == waiting


def test_pool_needs_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Passwords(concurrency=0)


def test_backoff_doubles_from_the_threshold_up_to_the_cap() -> None:
    policy = BackoffPolicy(threshold=5, base_seconds=1, max_seconds=900)
    assert [policy.lock_seconds(n) for n in range(1, 10)] == [0, 0, 0, 0, 1, 2, 4, 8, 16]
    assert policy.lock_seconds(15) == 900  # 2^10 capped
    assert policy.lock_seconds(10_000) == 900
    assert BackoffPolicy(threshold=2, base_seconds=0.5).lock_seconds(3) == 1.0


def test_backoff_key_is_a_hash_not_the_email() -> None:
    key = attempt_key("ada@example.com")
    assert len(key) == 64
    assert "ada" not in key
    assert key == attempt_key("ada@example.com")
    assert key != attempt_key("bob@example.com")


def test_locked_error_carries_retry_info() -> None:
    err = locked_error(2.2)
    assert err.reason == "LOGIN_BACKOFF"
    assert "retry in 3 s" in err.message
    status = err.to_status_proto()
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    retry = error_details_pb2.RetryInfo()
    infos[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (3, 0)


def test_resource_exhausted_retry_info_keeps_fractions_and_is_optional() -> None:
    status = ResourceExhausted("busy", retry_after_seconds=1.5).to_status_proto()
    retry = error_details_pb2.RetryInfo()
    next(d for d in status.details if d.Is(retry.DESCRIPTOR)).Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (1, 500_000_000)
    plain = ResourceExhausted("busy").to_status_proto()
    assert not any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in plain.details)


class _PgError(Exception):
    def __init__(self, pgcode: str) -> None:
        super().__init__(pgcode)
        self.pgcode = pgcode


def test_database_errors_map_to_statuses_clients_can_act_on() -> None:
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert isinstance(db_error_to_service_error(lost), Unavailable)
    pool = PoolTimeoutError("QueuePool limit of size 10 overflow 10 reached")
    mapped = db_error_to_service_error(pool)
    assert isinstance(mapped, Unavailable)
    assert mapped.message == "database unavailable"
    invalidated = ProgrammingError("SELECT 1", {}, Exception("x"), connection_invalidated=True)
    assert isinstance(db_error_to_service_error(invalidated), Unavailable)
    timeout = OperationalError("SELECT pg_sleep(9)", {}, _PgError("57014"))
    assert isinstance(db_error_to_service_error(timeout), DeadlineExceeded)
    # Bugs stay INTERNAL (None), also when wrapped.
    assert db_error_to_service_error(IntegrityError("INSERT", {}, Exception("dup"))) is None
    assert db_error_to_service_error(ProgrammingError("SELEC", {}, Exception("syntax"))) is None
    assert db_error_to_service_error(ValueError("nope")) is None
    wrapped = RuntimeError("while loading")
    wrapped.__cause__ = lost  # as `raise RuntimeError(...) from lost` leaves it
    assert isinstance(db_error_to_service_error(wrapped), Unavailable)
