"""A client-side circuit breaker for calls to the monolith.

Closed: calls pass; `threshold` consecutive failures within `window` seconds open it.
Open: calls fail at once with UNAVAILABLE for `open_seconds`. Half-open: one probe call passes;
success closes the breaker, failure opens it again.

Written here rather than taken from pybreaker because we need a failure *window*, gRPC status
classification (a NOT_FOUND is an answer, not a failure) and an injectable clock for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import grpc
from prometheus_client import Counter, Gauge

from fitcore.clients import code_of
from fitcore.errors import Unavailable

T = TypeVar("T")

# Statuses that mean "the dependency is not working", as opposed to an answer about the request.
FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

BREAKER_STATE = Gauge("fitco_breaker_state", "0 closed, 1 half-open, 2 open", ["name"])
BREAKER_REJECTED = Counter("fitco_breaker_rejected_total", "Calls refused while open", ["name"])
BREAKER_OPENED = Counter("fitco_breaker_opened_total", "Times the breaker opened", ["name"])


class State(Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 3,
        window: float = 10.0,
        open_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.window = window
        self.open_seconds = open_seconds
        self._now = monotonic
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures: list[float] = []
        self._opened_at = 0.0
        self._probe_in_flight = False
        BREAKER_STATE.labels(name).set(0)

    @property
    def state(self) -> State:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def _set(self, state: State) -> None:
        self._state = state
        BREAKER_STATE.labels(self.name).set(state.value)

    def _maybe_half_open(self) -> None:
        if self._state is State.OPEN and self._now() - self._opened_at >= self.open_seconds:
            self._set(State.HALF_OPEN)
            self._probe_in_flight = False

    def _before(self) -> None:
        with self._lock:
            self._maybe_half_open()
            if self._state is State.OPEN or (
                self._state is State.HALF_OPEN and self._probe_in_flight
            ):
                BREAKER_REJECTED.labels(self.name).inc()
                raise Unavailable(
                    "the workout service is temporarily unavailable (circuit open); retry shortly",
                    reason="CIRCUIT_OPEN",
                )
            if self._state is State.HALF_OPEN:
                self._probe_in_flight = True

    def _success(self) -> None:
        with self._lock:
            self._failures.clear()
            self._probe_in_flight = False
            if self._state is not State.CLOSED:
                self._set(State.CLOSED)

    def _failure(self) -> None:
        with self._lock:
            now = self._now()
            self._probe_in_flight = False
            if self._state is State.HALF_OPEN:
                self._open(now)
                return
            self._failures = [t for t in self._failures if now - t < self.window] + [now]
            if len(self._failures) >= self.threshold:
                self._open(now)

    def _open(self, now: float) -> None:
        self._set(State.OPEN)
        self._opened_at = now
        self._failures.clear()
        BREAKER_OPENED.labels(self.name).inc()

    def call(self, fn: Callable[[], T]) -> T:
        self._before()
        try:
            result = fn()
        except grpc.RpcError as exc:
            if code_of(exc) in FAILURE_CODES:
                self._failure()
            else:
                self._success()  # the dependency answered
            raise
        except Exception:
            self._failure()
            raise
        self._success()
        return result
