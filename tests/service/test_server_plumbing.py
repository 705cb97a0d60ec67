"""Health with real readiness, reflection, the legacy /health RPC, error hygiene, shutdown."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from fitco.coach.v1 import coach_pb2
from fitco.system.v1 import system_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fitcore.clock import FixedClock
from monolith.app import build
from monolith.domain.legacy_wod import LegacyAnswer
from tests.conftest import RunningMonolith, client_for, make_env, onboard, register
from tests.rpc import expect_error


def _health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_health_reports_serving_per_service(monolith: RunningMonolith) -> None:
    for name in ("", "fitco.user.v1.UserService", "fitco.coach.v1.CoachService"):
        assert _health(monolith.target, name) == health_pb2.HealthCheckResponse.SERVING
    assert monolith.client.system.GetHealth(system_pb2.GetHealthRequest()).status == "UP"


def test_reflection_lists_every_service(monolith: RunningMonolith) -> None:
    with grpc.insecure_channel(monolith.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {
        "fitco.user.v1.UserService",
        "fitco.catalog.v1.CatalogService",
        "fitco.history.v1.HistoryService",
        "fitco.coach.v1.CoachService",
        "fitco.system.v1.SystemService",
        "grpc.health.v1.Health",
    } <= names


def test_readiness_follows_the_database(tmp_path: Path, key_dir: Path) -> None:
    """No database → NOT_SERVING and the legacy /health answers UNAVAILABLE, not a crash."""
    missing = tmp_path / "nowhere" / "db.sqlite"
    env = make_env(key_dir, f"sqlite:///{missing}")
    app = build(env, clock=FixedClock(datetime.now(UTC)), address="127.0.0.1:0")
    # make_engine created the directory; the database file itself does not exist (no schema).
    app.service.start()
    try:
        target = f"127.0.0.1:{app.port}"
        assert _health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        client = client_for(target)
        expect_error(
            grpc.StatusCode.UNAVAILABLE,
            lambda: client.system.GetHealth(system_pb2.GetHealthRequest()),
        )
        client.channel.close()
    finally:
        app.stop()


def test_unexpected_errors_are_internal_without_leaking(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    onboard(monolith.client, user)

    def boom(_user_id: int, _size: int = 6) -> None:
        raise RuntimeError("secret stack detail: password=hunter2")

    legacy = monolith.app.legacy
    original = legacy.todays_wod
    legacy.todays_wod = boom  # type: ignore[method-assign,assignment]
    try:
        err = expect_error(
            grpc.StatusCode.INTERNAL,
            lambda: monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md),
        )
        assert "hunter2" not in (err.details() or "")
        assert "request id" in (err.details() or "")
    finally:
        legacy.todays_wod = original  # type: ignore[method-assign]


def test_graceful_shutdown_finishes_in_flight_rpcs(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    onboard(monolith.client, user)
    legacy = monolith.app.legacy
    original = legacy.todays_wod
    started = threading.Event()

    def slow(user_id: int, size: int = 6) -> LegacyAnswer:
        started.set()
        time.sleep(0.8)
        return original(user_id, size)

    legacy.todays_wod = slow  # type: ignore[method-assign]
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["wod"] = monolith.client.coach.GetWod(
                coach_pb2.GetWodRequest(), metadata=user.md
            )
        except grpc.RpcError as exc:  # pragma: no cover - the assertion below reports it
            result["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    assert started.wait(5)
    stopper = threading.Thread(target=monolith.app.stop)
    stopper.start()
    time.sleep(0.1)
    assert _health_or_down(monolith.target) != health_pb2.HealthCheckResponse.SERVING
    worker.join(10)
    stopper.join(10)
    assert "error" not in result, result.get("error")
    assert len(result["wod"].exercises) == 6  # type: ignore[attr-defined]


def _health_or_down(target: str) -> int:
    try:
        return _health(target)
    except grpc.RpcError:
        return -1
