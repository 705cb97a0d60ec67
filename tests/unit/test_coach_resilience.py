"""The coach's circuit breaker and catalog cache, with injected clocks and fake calls."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2

from coach.breaker import CircuitBreaker, State
from coach.catalog_cache import CatalogCache
from coach.monolith_client import translate
from fitcore.errors import NotFound, Unauthenticated, Unavailable


class FakeRpcError(grpc.RpcError):
    """What grpc raises: an RpcError with code() and details()."""

    def __init__(self, code: grpc.StatusCode, details: str = "boom") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def state(b: CircuitBreaker) -> State:
    return b.state


def failing(code: grpc.StatusCode) -> Callable[[], None]:
    def call() -> None:
        raise FakeRpcError(code)

    return call


def test_opens_after_three_failures_in_the_window_and_fails_fast() -> None:
    clock = Clock()
    b = CircuitBreaker("m", threshold=3, window=10, open_seconds=5, monotonic=clock)
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)

    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            b.call(down)
    assert state(b) is State.OPEN
    with pytest.raises(Unavailable, match="circuit open"):
        b.call(down)
    assert calls == 3  # refused without calling


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    b = CircuitBreaker("m", threshold=3, window=10, open_seconds=5, monotonic=clock)
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            b.call(failing(grpc.StatusCode.UNAVAILABLE))
    clock.t += 11
    with pytest.raises(grpc.RpcError):
        b.call(failing(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert state(b) is State.CLOSED


def test_answers_are_not_failures_and_success_resets() -> None:
    b = CircuitBreaker("m", threshold=3, monotonic=Clock())
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT) * 3:
        with pytest.raises(grpc.RpcError):
            b.call(failing(code))
    assert state(b) is State.CLOSED
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            b.call(failing(grpc.StatusCode.UNAVAILABLE))
    assert b.call(lambda: 42) == 42
    with pytest.raises(grpc.RpcError):
        b.call(failing(grpc.StatusCode.UNAVAILABLE))
    assert state(b) is State.CLOSED  # the success cleared the two earlier failures


def test_half_open_probe_closes_or_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker("m", threshold=3, window=10, open_seconds=5, monotonic=clock)
    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            b.call(failing(grpc.StatusCode.UNAVAILABLE))
    clock.t += 5
    assert state(b) is State.HALF_OPEN
    with pytest.raises(grpc.RpcError):
        b.call(failing(grpc.StatusCode.UNAVAILABLE))  # the probe fails
    assert state(b) is State.OPEN
    clock.t += 5
    assert b.call(lambda: "ok") == "ok"  # the probe succeeds
    assert state(b) is State.CLOSED


def test_translate_keeps_the_meaning() -> None:
    assert isinstance(translate(FakeRpcError(grpc.StatusCode.UNAVAILABLE)), Unavailable)
    assert isinstance(translate(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED)), Unavailable)
    assert isinstance(translate(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED)), Unauthenticated)
    assert isinstance(translate(FakeRpcError(grpc.StatusCode.NOT_FOUND)), NotFound)
    odd = FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT)
    assert translate(odd) is odd  # a coach bug stays visible as INTERNAL


def test_translate_never_echoes_upstream_details() -> None:
    leak = "failed to connect to all addresses; last error: ipv4:10.1.2.3:50051: refused"
    for code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        err = translate(FakeRpcError(code, leak))
        assert isinstance(err, Unavailable)
        assert "10.1.2.3" not in err.message
        assert "50051" not in err.message
        assert "connect" not in err.message


def _catalog(version: str, n: int = 3) -> catalog_pb2.GetCatalogResponse:
    return catalog_pb2.GetCatalogResponse(
        version=version,
        exercises=[catalog_pb2.Exercise(id=i, name=f"e{i}") for i in range(1, n + 1)],
        muscle_groups=[catalog_pb2.MuscleGroup(id=1, name="g")],
    )


def test_catalog_cache_revalidates_by_version_and_serves_stale() -> None:
    clock = Clock()
    asked: list[str] = []
    answers: list[catalog_pb2.GetCatalogResponse | Exception] = [
        _catalog("v1"),
        catalog_pb2.GetCatalogResponse(version="v1", not_modified=True),
        _catalog("v2", 5),
        FakeRpcError(grpc.StatusCode.UNAVAILABLE),
    ]

    def fetch(known: str) -> catalog_pb2.GetCatalogResponse:
        asked.append(known)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = CatalogCache(fetch, ttl=60, max_stale=600, monotonic=clock)
    assert len(cache.get().exercises) == 3
    assert len(cache.get().exercises) == 3
    assert asked == [""]  # cached: one fetch
    clock.t += 61
    assert cache.get().version == "v1"
    assert asked == ["", "v1"]  # revalidated with the version it holds
    clock.t += 61
    assert cache.get().version == "v2" and len(cache.get().exercises) == 5
    clock.t += 61
    assert cache.get().version == "v2"  # the monolith is down: stale but served
    assert asked == ["", "v1", "v1", "v2"]


def test_catalog_cache_without_data_reports_the_failure() -> None:
    def fetch(_known: str) -> catalog_pb2.GetCatalogResponse:
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)

    cache = CatalogCache(fetch, monotonic=Clock())
    with pytest.raises(grpc.RpcError):
        cache.get()
    assert not cache.loaded


def test_lru_cache_evicts_oldest_and_expires() -> None:
    from fitcore.cache import LruCache

    clock = Clock()
    cache: LruCache[str, int] = LruCache(2, ttl_seconds=10, monotonic=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    clock.t += 10
    assert cache.get("a") is None and len(cache) == 1
