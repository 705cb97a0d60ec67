"""Password hashing with Argon2id (argon2-cffi) that cannot take the server down.

Argon2 is slow and memory-hungry on purpose, so an unbounded number of concurrent logins would
starve every other RPC of CPU and memory. Every hash and verification therefore runs in a
bounded pool: at most `concurrency` at once; a caller waits at most `wait_seconds` for a slot and
is then refused with RESOURCE_EXHAUSTED (cheap, retryable) instead of queueing without bound. At
most `max_waiting` callers wait at all: each waiter holds a gRPC worker thread, and a flood of
logins that all wait (measured: 50 clients, a new email each try) left no worker for other
RPCs, whose p95 rose to the wait time. Beyond `max_waiting`, refusal is immediate.

The pool is a semaphore, not a library or an executor: argon2-cffi releases the GIL while it
hashes, so the gRPC worker thread that already serves the request can do the work itself; all
that is needed is "at most N at once, wait this long" and that is `Semaphore.acquire(timeout)`.
An executor would add a hand-off and an unbounded queue that we would then have to bound.

Unknown users cost one verification like known ones (a dummy hash), so timing does not tell
whether an email is registered.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter, Gauge, Histogram

from fitcore.errors import ResourceExhausted

T = TypeVar("T")

# OWASP Password Storage Cheat Sheet, Argon2id minimum: m=19 MiB, t=2, p=1. Cheaper per login
# than argon2-cffi's default (64 MiB, t=3, p=4), so more logins fit in the same cores and memory.
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1
DEFAULT_WAIT_SECONDS = 0.5
DEFAULT_MAX_WAITING_PER_SLOT = 2
RETRY_AFTER_SECONDS = 1.0  # what a refused caller is told; a slot frees within one hash

HASHES_IN_PROGRESS = Gauge("fitco_password_hashes_in_progress", "Argon2 computations running")
HASHES_WAITING = Gauge("fitco_password_hashes_waiting", "Callers waiting for a hashing slot")
HASHES_REJECTED = Counter(
    "fitco_password_hashes_rejected_total", "Callers refused: no hashing slot within the wait"
)
HASH_SECONDS = Histogram(
    "fitco_password_hash_seconds",
    "Time to compute one Argon2 hash or verification",
    ["op"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def owasp_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)


def default_concurrency() -> int:
    """Half the usable CPUs (at least one): argon2 releases the GIL and saturates a core per
    hash, so hashing never takes every core from the rest of the process, Envoy and the
    database. Measured (bench/results/flood.json): 50 clients stuffing a new email per try
    with no edge limits pushed unrelated reads to p95 122 ms with 2 slots on 2 cores, 80 ms
    with 1. The CPUs this process may run on (cpusets, taskset), not the host's count."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


class HashPool:
    """At most `concurrency` computations at once; at most `max_waiting` callers wait, each up
    to `wait_seconds`."""

    def __init__(
        self, concurrency: int, wait_seconds: float, max_waiting: int | None = None
    ) -> None:
        if concurrency < 1:
            raise ValueError("hash concurrency must be at least 1")
        self.concurrency = concurrency
        self.wait_seconds = max(0.0, wait_seconds)
        self.max_waiting = (
            concurrency * DEFAULT_MAX_WAITING_PER_SLOT if max_waiting is None else max_waiting
        )
        if self.max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._waiting = 0

    @staticmethod
    def _busy() -> ResourceExhausted:
        HASHES_REJECTED.inc()
        return ResourceExhausted(
            "the server is busy checking passwords; retry shortly",
            reason="PASSWORD_HASHING_BUSY",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )

    @contextmanager
    def slot(self) -> Iterator[None]:
        acquired = self._slots.acquire(blocking=False)
        if not acquired:
            with self._lock:
                full = self._waiting >= self.max_waiting
                if not full:
                    self._waiting += 1
            if full:
                raise self._busy()
            HASHES_WAITING.inc()
            try:
                acquired = self._slots.acquire(timeout=self.wait_seconds)
            finally:
                HASHES_WAITING.dec()
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise self._busy()
        HASHES_IN_PROGRESS.inc()
        try:
            yield
        finally:
            HASHES_IN_PROGRESS.dec()
            self._slots.release()

    def run(self, op: str, work: Callable[[], T]) -> T:
        with self.slot():
            started = time.perf_counter()
            try:
                return work()
            finally:
                HASH_SECONDS.labels(op).observe(time.perf_counter() - started)


class Passwords:
    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        concurrency: int | None = None,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        max_waiting: int | None = None,
    ) -> None:
        self._hasher = hasher or owasp_hasher()
        self.pool = HashPool(
            default_concurrency() if concurrency is None else concurrency,
            wait_seconds,
            max_waiting,
        )
        # Made once at start-up, outside the pool: the stand-in hash for unknown users.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """Raises ResourceExhausted when no hashing slot frees up in time."""
        return self.pool.run("hash", lambda: self._hasher.hash(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Constant-ish time: an unknown user costs one verification like a known one.

        Raises ResourceExhausted when no hashing slot frees up in time."""

        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password)
            except (VerificationError, InvalidHashError):
                return False

        return self.pool.run("verify", check) and bool(password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """True for hashes made with other parameters (cheap: only parses the hash)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    @staticmethod
    def generate() -> str:
        return secrets.token_urlsafe(15)
