"""The strangler fig under test: the WOD split between the legacy implementation (monolith) and
the coach, yesterday's exercises never served again, shifting under load with no failed
request, and a clear 503 (the coach's breaker open) while the monolith is stopped.

Killing processes under load (fallback when every coach dies, their restart by the
supervisor, the monolith or Envoy killed) is the fault matrix: tests/e2e/test_faults.py.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import grpc
import pytest
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc

import fitedge
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, User, WodLoad, register

pytestmark = pytest.mark.e2e


def _tolerance(n: int, p: float) -> float:
    """Allowed share error for n requests at probability p: 4 binomial standard deviations,
    plus 2 points for requests in flight across a shift."""
    return 4 * math.sqrt(p * (1 - p) / max(n, 1)) + 0.02


def _yesterday_workout(c: JsonClient, mesh: RunningMesh, user: User, ids: list[int]) -> None:
    at = (mesh.clock.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ex in ids:
        r = c.post(
            "/v1/history",
            {"exercise_id": ex, "sets": 3, "reps": 10, "weight_kg": 20, "performed_at": at},
            token=user.token,
        )
        assert r.status == 200, r.body


@pytest.mark.parametrize("coach_percent", [0, 50, 100])
def test_yesterday_never_in_todays_wod(mesh: RunningMesh, coach_percent: int) -> None:
    mesh.admin.shift(mesh.mesh, coach_percent)
    c = mesh.client()
    catalog = [e["id"] for e in c.get("/fitness/exercises").body]
    implementations = set()
    for n in range(12):
        user = register(c, goal=["muscle_gain", "weight_loss", "strength"][n % 3])
        # Yesterday the user trained a big slice of the catalog (different for each user).
        done = catalog[(n * 7) % 40 : (n * 7) % 40 + 30]
        _yesterday_workout(c, mesh, user, done)
        r = c.get("/fitness/wod", token=user.token)
        assert r.status == 200, r.body
        served = {e["id"] for e in r.body["exercises"]}
        assert len(served) == 6
        assert not served & set(done), f"{r.body['implementation']} repeated yesterday"
        implementations.add(r.body["implementation"])
    expected = {0: {"legacy"}, 50: {"legacy", "coach"}, 100: {"coach"}}[coach_percent]
    assert implementations == expected


@pytest.mark.parametrize(("first", "second"), [(0, 100), (100, 0)])
def test_served_wod_is_avoided_tomorrow_across_implementations(
    mesh: RunningMesh, first: int, second: int
) -> None:
    c = mesh.client()
    user = register(c)
    mesh.admin.shift(mesh.mesh, first)
    today = c.get("/fitness/wod", token=user.token).body
    assert today["implementation"] == ("coach" if first else "legacy")
    # Same day, other implementation: the same WOD.
    mesh.admin.shift(mesh.mesh, second)
    again = c.get("/fitness/wod", token=user.token).body
    assert [e["id"] for e in again["exercises"]] == [e["id"] for e in today["exercises"]]
    mesh.clock.advance(days=1)
    try:
        tomorrow = c.get("/fitness/wod", token=user.token).body
        assert tomorrow["implementation"] == ("coach" if second else "legacy")
        assert tomorrow["day"] != today["day"]
        assert not {e["id"] for e in tomorrow["exercises"]} & {e["id"] for e in today["exercises"]}
    finally:
        mesh.clock.advance(days=-1)


def test_coach_wod_is_personalised(mesh: RunningMesh) -> None:
    mesh.admin.shift(mesh.mesh, 100)
    c = mesh.client()
    user = register(c, goal="strength")
    assert (
        c.request("PATCH", "/v1/profile", {"experience": "advanced"}, token=user.token).status
        == 200
    )
    r = c.request(
        "PUT",
        "/v1/profile/preferences",
        {"equipment": ["dumbbell", "bench"], "avoid_muscle_group_ids": [13]},
        token=user.token,
    )
    assert r.status == 200, r.body
    wod = c.get("/fitness/wod", token=user.token).body
    assert wod["implementation"] == "coach" and wod["fitness_goal"] == "strength"
    catalog = {e["id"]: e for e in c.get("/fitness/exercises").body}
    for e in wod["exercises"]:
        full = catalog[e["id"]]
        assert set(full["equipment_needed"]) <= {"dumbbell", "bench", "bodyweight"}
        assert not any(
            m["id"] == 13 and (m["is_primary"] or m["intensity"] >= 0.3)
            for m in full["muscle_groups"]
        )
        assert e["reason"]
        if full["measure"] == "reps":
            assert 1 <= e["suggested_reps"] <= 6  # strength: heavy, low reps (NSCA)


def _shift_phase(mesh: RunningMesh, percent: int, seconds: float) -> dict[str, int]:
    mesh.admin.shift(mesh.mesh, percent)
    time.sleep(0.3)  # requests already in flight finish on the old split
    before = mesh.admin.served()
    time.sleep(seconds)
    after = mesh.admin.served()
    return {k: after[k] - before[k] for k in after}


def test_shift_under_load_has_no_failures(mesh: RunningMesh) -> None:
    c = mesh.client()
    users = [register(c) for _ in range(6)]
    shares = []
    with WodLoad(mesh.host, mesh.port, users) as load:
        for percent in (0, 10, 50, 100, 0):
            delta = _shift_phase(mesh, percent, 4.0)
            legacy = delta[fitedge.LEGACY_CLUSTER]
            coach = delta[fitedge.COACH_HOSTS]
            total = legacy + coach
            assert total > 50, delta
            share = coach / total
            shares.append((percent, total, round(share, 3)))
            assert abs(share - percent / 100) <= _tolerance(total, percent / 100), shares
            assert delta[fitedge.FALLBACK_CLUSTER] == 0
    per_host = mesh.admin.per_host(fitedge.COACH_HOSTS)
    assert len(per_host) == 2 and all(n > 50 for n in per_host.values()), per_host
    print("coach share per phase (percent, requests, measured):", shares, "per coach:", per_host)
    print("load:", load.result.ok, "ok,", load.result.failed, "failed")
    assert load.result.failed == 0, load.result.errors
    assert load.result.ok > 500


def test_monolith_down_breaker_opens_and_json_gets_503(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)
    mesh.admin.shift(mesh.mesh, 100)
    mesh.mesh.stop_program("monolith")  # through the supervisor: it stays down until started
    try:
        coach_target = mesh.mesh.config.coach_target(0)
        md = (("authorization", f"Bearer {user.token}"),)
        with grpc.insecure_channel(coach_target) as ch:
            stub = coach_pb2_grpc.CoachServiceStub(ch)
            codes = []
            for _ in range(3):  # three failures open the breaker
                with pytest.raises(grpc.RpcError) as info:
                    stub.GetWod(coach_pb2.GetWodRequest(), metadata=md, timeout=5)
                codes.append(info.value.code())
            assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
            started = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                stub.GetWod(coach_pb2.GetWodRequest(), metadata=md, timeout=5)
            elapsed = time.perf_counter() - started
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "circuit open" in (info.value.details() or "")
            assert elapsed < 0.1, elapsed
        r = c.get("/fitness/wod", token=user.token)
        assert r.status == 503, r.body
        assert r.headers["content-type"].startswith("application/json")
        assert isinstance(r.body, dict) and r.body.get("message")
    finally:
        mesh.mesh.start_program("monolith")
    # Once the monolith is back the WOD works again (breaker half-open probe closes it).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = c.get("/fitness/wod", token=user.token)
        if r.status == 200:
            break
        time.sleep(0.5)
    assert r.status == 200, r.body
