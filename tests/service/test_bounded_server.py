"""Streams cannot starve the server: idle reflection streams are bounded in number and in idle
time, while health and unary RPCs keep answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fitcore.clock import FixedClock
from fitcore.config import ConfigError, Env
from fitcore.server import ServerSettings
from fitcore.streams import StreamGate
from monolith.app import build
from tests.conftest import make_env


def _idle_requests(release: threading.Event) -> Iterator[reflection_pb2.ServerReflectionRequest]:
    """A client that opens a reflection stream and then says nothing until released."""
    release.wait(30)
    yield from ()


class IdleStreams:
    def __init__(self, target: str, count: int) -> None:
        self.release = threading.Event()
        self.channels = [grpc.insecure_channel(target) for _ in range(count)]
        self.calls = [
            reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                _idle_requests(self.release), timeout=30
            )
            for ch in self.channels
        ]
        self.outcomes: list[grpc.StatusCode | None] = [None] * count
        self.threads = [
            threading.Thread(target=self._drain, args=(i,), daemon=True) for i in range(count)
        ]
        for t in self.threads:
            t.start()

    def _drain(self, i: int) -> None:
        try:
            for _ in self.calls[i]:
                pass
            self.outcomes[i] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self.outcomes[i] = exc.code()

    def close(self) -> None:
        self.release.set()
        for t in self.threads:
            t.join(10)
        for ch in self.channels:
            ch.close()


@pytest.fixture
def small_monolith(migrated_url: str, key_dir: Path) -> Iterator[str]:
    env = make_env(
        key_dir,
        migrated_url,
        FITCO_MONOLITH_WORKERS="8",
        FITCO_MONOLITH_MAX_STREAMS="2",
        FITCO_MONOLITH_STREAM_IDLE_SECONDS="2",
    )
    app = build(env, clock=FixedClock(datetime.now(UTC)), address="127.0.0.1:0")
    app.service.start()
    try:
        yield f"127.0.0.1:{app.port}"
    finally:
        app.stop()


def test_idle_streams_do_not_starve_health_or_unary(small_monolith: str) -> None:
    streams = IdleStreams(small_monolith, 12)
    try:
        time.sleep(0.5)  # every stream has reached the server (or been refused)
        with grpc.insecure_channel(small_monolith) as ch:
            started = time.monotonic()
            health = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            exercise = catalog_pb2_grpc.CatalogServiceStub(ch).GetExercise(
                catalog_pb2.GetExerciseRequest(exercise_id=1), timeout=1
            )
            elapsed = time.monotonic() - started
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert exercise.exercise.id == 1
        assert elapsed < 1.0
        refused = [o for o in streams.outcomes if o is grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(refused) == 10, streams.outcomes  # only 2 of 12 admitted
        # The two admitted streams say nothing: the server cancels them after 2 s idle.
        deadline = time.monotonic() + 6
        while None in streams.outcomes and time.monotonic() < deadline:
            time.sleep(0.1)
        assert streams.outcomes.count(grpc.StatusCode.CANCELLED) == 2, streams.outcomes
    finally:
        streams.close()


def test_a_stream_slot_is_reusable_after_the_stream_ends(small_monolith: str) -> None:
    for _ in range(5):  # more streams in sequence than slots
        with grpc.insecure_channel(small_monolith) as ch:
            responses = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            assert any(r.list_services_response.service for r in responses)


class _FakeContext:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_gate_cancels_streams_past_their_maximum_duration() -> None:
    now = [0.0]
    gate = StreamGate(2, max_seconds=10, idle_seconds=0, monotonic=lambda: now[0])
    ctx = _FakeContext()
    stream = gate._enter("/svc/M", ctx)  # type: ignore[arg-type]
    assert stream is not None
    assert gate._enter("/svc/M", _FakeContext()) is not None  # type: ignore[arg-type]
    assert gate._enter("/svc/M", _FakeContext()) is None  # type: ignore[arg-type]
    now[0] = 9.0
    assert gate.reap_once() == 0
    now[0] = 11.0
    assert gate.reap_once() == 2
    assert ctx.cancelled
    assert gate.open_count == 0


def test_settings_refuse_more_streams_than_half_the_workers() -> None:
    env = Env({"FITCO_X_WORKERS": "8", "FITCO_X_MAX_STREAMS": "5"})
    with pytest.raises(ConfigError):
        ServerSettings.from_env(env, "FITCO_X", "127.0.0.1:0")
    ok = ServerSettings.from_env(Env({"FITCO_X_WORKERS": "16"}), "FITCO_X", "127.0.0.1:0")
    assert ok.max_streams == 4
    assert ok.reflection
