"""Goals as JSON through Envoy: a new user sets a weight-loss goal, records weights over the next
days (the mesh's test clock moves) and sees progress and a projected date, then reaches the
target; the legacy profile's fitness_goal follows the primary goal throughout."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, User, register

pytestmark = pytest.mark.e2e


def _legacy_goal(c: JsonClient, user: User) -> str:
    r = c.get("/profile", token=user.token)
    assert r.status == 200, r.body
    return str(r.body["fitness_goal"])


def test_weight_loss_goal_through_envoy(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c, goal="muscle_gain")  # onboarded at 80 kg
    today = mesh.clock.now().date()
    r = c.post(
        "/v1/goals",
        {"kind": "weight_loss", "target_value": 75, "target_date": str(today + timedelta(60))},
        token=user.token,
    )
    assert r.status == 200, r.body
    goal = r.body["goal"]
    assert (goal["kind"], goal["status"], goal["unit"], goal["primary"]) == (
        "weight_loss",
        "ACTIVE",
        "kg",
        True,
    )
    assert goal["progress"]["start_value"] == 80
    assert _legacy_goal(c, user) == "weight_loss"

    # An unknown kind: 400 with a field violation.
    r = c.post(
        "/v1/goals",
        {"kind": "flexibility", "target_value": 5, "target_date": str(today + timedelta(9))},
        token=user.token,
    )
    assert r.status == 400, r.body
    assert "kind" in {v["field"] for v in r.body["details"][0]["field_violations"]}

    # A newer goal becomes the primary one; abandoning it hands the role back.
    r = c.post(
        "/v1/goals",
        {"kind": "endurance", "target_value": 150, "target_date": str(today + timedelta(30))},
        token=user.token,
    )
    assert r.status == 200, r.body
    endurance_id = r.body["goal"]["id"]
    assert _legacy_goal(c, user) == "endurance"
    r = c.post(f"/v1/goals/{endurance_id}:abandon", {}, token=user.token)
    assert (r.status, r.body["goal"]["status"]) == (200, "ABANDONED"), r.body
    assert _legacy_goal(c, user) == "weight_loss"
    r = c.request(
        "PATCH",
        f"/v1/goals/{goal['id']}",
        {"target_date": str(today + timedelta(45))},
        token=user.token,
    )
    assert (r.status, r.body["goal"]["target_date"]) == (200, str(today + timedelta(45))), r.body

    moved = 0
    try:
        for kg in (79.5, 79.0, 78.5):
            mesh.clock.advance(days=1)
            moved += 1
            r = c.post("/v1/profile/metrics", {"weight_kg": kg}, token=user.token)
            assert r.status == 200, r.body
        r = c.get(f"/v1/goals/{goal['id']}", token=user.token)
        assert r.status == 200, r.body
        progress = r.body["goal"]["progress"]
        assert progress["current_value"] == 78.5
        assert progress["percent"] > 0
        assert progress["projected_date"] == str(today + timedelta(moved + 7))
        assert progress["on_track"] is True and progress["data_points"] == 4

        mesh.clock.advance(days=1)
        moved += 1
        r = c.post("/v1/profile/metrics", {"weight_kg": 74.6}, token=user.token)
        assert r.status == 200, r.body
        r = c.get("/v1/goals", token=user.token)
        assert r.status == 200, r.body
        listed = r.body["goals"]
        assert [g["id"] for g in listed] == [endurance_id, goal["id"]]  # newest first
        done = listed[1]
        assert done["status"] == "ACHIEVED" and done["achieved_at"]
        assert done["progress"]["percent"] == 100
        # No active goal is left: the legacy profile keeps the last primary goal.
        assert _legacy_goal(c, user) == "weight_loss"
    finally:
        mesh.clock.advance(days=-moved)
