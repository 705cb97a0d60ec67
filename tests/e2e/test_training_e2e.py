"""Workout sessions as JSON through Envoy: a user records a body weight, gets today's WOD,
starts a session from it, logs sets (a retried set is logged once) while the mesh's test clock
moves, ends it and sees duration, calories and volume; the week's statistics show the session,
a personal record, the streak and sets per muscle group."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, User, register

pytestmark = pytest.mark.e2e

BENCH = 1


def _later(mesh: RunningMesh, seconds: float) -> None:
    """Move the services' clock forward by `seconds` (TestClock.advance moves whole days)."""
    mesh.clock.offset += seconds
    mesh.clock.path.write_text(str(mesh.clock.offset))


def _log(c: JsonClient, user: User, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(f"/v1/sessions/{session_id}/sets", body, token=user.token)
    assert r.status == 200, r.body
    return dict(r.body)


def _as_suggested(exercise: dict[str, Any]) -> dict[str, Any]:
    """A set of a WOD exercise as prescribed: its duration when timed, else its reps."""
    body: dict[str, Any] = {"exercise_id": exercise["id"]}
    if exercise["suggested_duration_seconds"]:
        body["duration_seconds"] = exercise["suggested_duration_seconds"]
    else:
        body["reps"] = exercise["suggested_reps"]
    if exercise["suggested_weight"]:
        body["weight"] = exercise["suggested_weight"]
    return body


def test_a_session_from_todays_wod_through_envoy(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)
    r = c.post("/v1/profile/metrics", {"weight_kg": 78.5}, token=user.token)
    assert r.status == 200, r.body

    # No WOD served yet today: a session cannot follow one.
    r = c.post("/v1/sessions", {"from_wod": True}, token=user.token)
    assert r.status == 400 and r.body["details"][0]["reason"] == "NO_WOD_TODAY", r.body
    wod = c.get("/v1/wod", token=user.token)
    assert wod.status == 200, wod.body
    r = c.post("/v1/sessions", {"from_wod": True}, token=user.token)
    assert r.status == 200, r.body
    session = r.body["session"]
    assert (session["status"], session["from_wod"], session["wod_day"]) == (
        "ACTIVE",
        True,
        wod.body["day"],
    )
    assert session["planned_exercise_ids"] == [e["id"] for e in wod.body["exercises"]]
    sid = session["id"]
    # A second start while this one is open: 400 naming it.
    r = c.post("/v1/sessions", {}, token=user.token)
    assert r.status == 400 and f"session {sid} " in r.body["message"], r.body

    first, second = (_as_suggested(e) for e in wod.body["exercises"][:2])
    bench = {"exercise_id": BENCH, "reps": 8, "weight": 60, "rpe": 8}
    _later(mesh, 90)
    assert _log(c, user, sid, {**first, "client_set_id": "e2e-1"})["created"] is True
    _later(mesh, 90)
    logged = _log(c, user, sid, {**bench, "client_set_id": "e2e-2"})
    # The client did not see the answer and sends the set again: logged once.
    again = _log(c, user, sid, {**bench, "client_set_id": "e2e-2"})
    assert (logged["created"], again["created"]) == (True, False)
    assert again["set"] == logged["set"]
    assert logged["set"]["estimated_1rm_kg"] == 76  # Epley: 60 x (1 + 8/30)
    r = c.post(
        f"/v1/sessions/{sid}/sets", {**bench, "reps": 9, "client_set_id": "e2e-2"}, token=user.token
    )
    assert r.status == 409, r.body
    _later(mesh, 90)
    _log(c, user, sid, {**second, "client_set_id": "e2e-3"})
    _later(mesh, 30)

    r = c.post(f"/v1/sessions/{sid}:end", {}, token=user.token)
    assert r.status == 200, r.body
    ended = r.body["session"]
    assert ended["status"] == "ENDED"
    assert ended["duration_seconds"] >= 300  # the clock moved 5 minutes
    assert ended["calories"] > 0 and "78.5 kg" in ended["calories_basis"]
    assert ended["set_count"] == 3 and len(ended["sets"]) == 3
    volume = sum(s.get("weight", 0) * s.get("reps", 0) for s in (first, bench, second))
    assert ended["volume_kg"] == pytest.approx(volume)
    assert [s["client_set_id"] for s in ended["sets"]] == ["e2e-1", "e2e-2", "e2e-3"]
    # Ending again is safe and changes nothing; the session reads back the same.
    assert c.post(f"/v1/sessions/{sid}:end", {}, token=user.token).body["session"] == ended
    assert c.get(f"/v1/sessions/{sid}", token=user.token).body["session"] == ended
    listed = c.get("/v1/sessions?page_size=10", token=user.token)
    assert listed.status == 200 and [s["id"] for s in listed.body["sessions"]] == [sid]
    assert listed.body["sessions"][0]["sets"] == []

    # The sets are exercise history.
    history = c.get("/v1/history", token=user.token).body["entries"]
    sets = [e for e in history if e["source"] == "session"]
    assert len(sets) == 3 and {e["session_id"] for e in sets} == {sid}

    r = c.get("/v1/stats?period=WEEK", token=user.token)
    assert r.status == 200, r.body
    stats = r.body
    assert stats["period"] == "WEEK" and stats["time_zone"] == "UTC"
    assert stats["sessions"] == 1 and stats["streak_days"] >= 1
    assert stats["duration_seconds"] == ended["duration_seconds"]
    assert stats["calories"] == ended["calories"]
    assert stats["volume_kg"] == pytest.approx(volume)
    bench_record = next(p for p in stats["personal_records"] if p["exercise_id"] == BENCH)
    assert bench_record["estimated_1rm_kg"] == 76 and bench_record["set_in_period"] is True
    assert bench_record["exercise_name"] == "Bench Press"
    chest = [m for m in stats["muscle_group_sets"] if m["muscle_group_name"] == "Pectoralis Major"]
    assert chest and chest[0]["sets"] >= 1
    assert sum(m["sets"] for m in stats["muscle_group_sets"]) >= 3
