"""Every legacy path and the main /v1 paths through Envoy as JSON; the same RPCs as native gRPC
through Envoy with the generated stubs; reflection through Envoy.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fitcore.config import Env
from fitcore.keys import load_private_key
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import register

pytestmark = pytest.mark.e2e


def _bootstrap_key(mesh: RunningMesh) -> str:
    return (mesh.mesh.config.data_dir / "keys" / "bootstrap.key").read_text().strip()


def _token(mesh: RunningMesh, **claims: object) -> str:
    key = load_private_key(Env({"FITCO_DATA_DIR": str(mesh.mesh.config.data_dir)}))
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "fitco",
        "aud": "fitco-api",
        "sub": "1",
        "role": "user",
        "iat": now,
        "exp": now + 600,
    }
    base.update(claims)
    return jwt.encode(base, key, algorithm="EdDSA")


def test_legacy_admin_flow(mesh: RunningMesh) -> None:
    c = mesh.client()
    assert c.get("/health").body == {"status": "UP", "version": "0.1.0"}
    key = _bootstrap_key(mesh)
    r = c.post("/bootstrap/admin", {"email": "root@example.com", "name": "Root"})
    assert r.status == 401
    r = c.post(
        "/bootstrap/admin",
        {"email": "root@example.com", "name": "Root"},
        headers={"x-bootstrap-key": key},
    )
    assert r.status == 201, r.body
    assert (r.body["email"], r.body["role"]) == ("root@example.com", "admin")
    admin_password = r.body["password"]
    r = c.post(
        "/bootstrap/admin",
        {"email": "again@example.com", "name": "Again"},
        headers={"x-bootstrap-key": key},
    )
    assert r.status == 409
    # OAuth2 password grant (form) and JSON on the same legacy path.
    form = f"grant_type=password&username=root%40example.com&password={admin_password}"
    r = c.request(
        "POST",
        "/oauth/token",
        raw=form.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200, r.body
    assert r.body["token_type"] == "bearer" and r.body["onboarded"] is False
    admin = r.body["access_token"]
    r = c.post("/oauth/token", {"email": "root@example.com", "password": "wrong-password"})
    assert r.status == 401
    assert r.body["message"] == "invalid email or password"
    # Users (admin only).
    r = c.post(
        "/users", {"email": "member@example.com", "name": "Member", "role": "user"}, token=admin
    )
    assert r.status == 201, r.body
    assert set(r.body) >= {"email", "name", "role", "password"}
    member_password = r.body["password"]
    r = c.post("/users", {"email": "not-an-email", "name": "X", "role": "user"}, token=admin)
    assert r.status == 400
    assert r.body["details"][0]["field_violations"][0]["field"] == "email"
    assert c.post("/users", {"email": "member@example.com", "name": "M"}, token=admin).status == 409
    r = c.get("/users", token=admin)
    assert r.status == 200
    assert isinstance(r.body, list)
    assert {"email": "member@example.com", "name": "Member", "role": "user"} in r.body
    member = c.post("/oauth/token", {"email": "member@example.com", "password": member_password})
    member_token = member.body["access_token"]
    assert c.get("/users", token=member_token).status == 403
    assert c.get("/users").status == 401
    assert c.post("/users", {"email": "x@example.com", "name": "X"}).status == 401


def test_legacy_profile_catalog_and_wod(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c, onboard=False)
    r = c.get("/profile", token=user.token)
    assert r.status == 200
    assert r.body["onboarded"] is False
    r = c.post(
        "/profile/onboarding",
        {"weight": 70.5, "height": 172, "fitness_goal": "weight_loss"},
        token=user.token,
    )
    assert r.status == 200, r.body
    assert set(r.body) >= {"email", "name", "weight", "height", "fitness_goal", "onboarded"}
    assert (r.body["weight"], r.body["onboarded"]) == (70.5, True)
    r = c.post(
        "/profile/onboarding", {"weight": -1, "height": 172, "fitness_goal": "x"}, token=user.token
    )
    assert r.status == 400
    fields = {v["field"] for v in r.body["details"][0]["field_violations"]}
    assert fields == {"weight", "fitness_goal"}
    r = c.get("/fitness/exercises")
    assert r.status == 200 and isinstance(r.body, list) and len(r.body) >= 60
    first = r.body[0]
    assert set(first) >= {
        "id",
        "name",
        "description",
        "difficulty",
        "equipment",
        "instructions",
        "muscle_groups",
    }
    assert first["id"] == 1 and isinstance(first["difficulty"], int)
    assert set(first["muscle_groups"][0]) >= {
        "id",
        "name",
        "body_part",
        "description",
        "is_primary",
    }
    r = c.get("/fitness/exercises?muscle_group_id=14")
    assert r.status == 200 and all(any(m["id"] == 14 for m in e["muscle_groups"]) for e in r.body)
    assert c.get("/fitness/exercises/17").body["name"] == "Deadlifts"
    assert c.get("/fitness/exercises/4242").status == 404
    r = c.get("/fitness/wod", token=user.token)
    assert r.status == 200, r.body
    assert len(r.body["exercises"]) == 6
    ex = r.body["exercises"][0]
    assert set(ex) >= {
        "id",
        "name",
        "description",
        "difficulty",
        "muscle_groups",
        "suggested_weight",
        "suggested_reps",
    }
    assert set(ex["muscle_groups"][0]) >= {"id", "name", "body_part", "is_primary", "intensity"}
    assert r.body["generated_at"].endswith("Z")
    assert c.get("/fitness/wod").status == 401


def test_v1_json_paths(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c, onboard=False)
    r = c.post("/v1/auth/login", {"email": user.email, "password": user.password})
    assert r.status == 200 and r.body["expires_in"] == 1800
    token = r.body["access_token"]
    r = c.post(
        "/v1/profile/onboarding",
        {
            "weight": 90,
            "height": 185,
            "fitness_goal": "strength",
            "birth_year": 1985,
            "sex": "male",
        },
        token=token,
    )
    assert r.status == 200 and r.body["profile"]["onboarded"] is True
    r = c.request("PATCH", "/v1/profile", {"experience": "intermediate"}, token=token)
    assert r.status == 200 and r.body["profile"]["experience"] == "intermediate"
    assert r.body["profile"]["weight"] == 90  # untouched
    r = c.post("/v1/profile/metrics", {"weight_kg": 89.2, "body_fat_percent": 21}, token=token)
    assert r.status == 200 and r.body["metric"]["weight_kg"] == 89.2
    r = c.get("/v1/profile/metrics?page_size=1", token=token)
    assert r.status == 200 and len(r.body["metrics"]) == 1 and r.body["next_page_token"]
    r = c.request(
        "PUT",
        "/v1/profile/preferences",
        {
            "equipment": ["dumbbell", "bench"],
            "training_days_per_week": 4,
            "session_minutes": 40,
            "avoid_muscle_group_ids": [13],
        },
        token=token,
    )
    assert r.status == 200, r.body
    assert c.get("/v1/profile/preferences", token=token).body["preferences"][
        "avoid_muscle_group_ids"
    ] == [13]
    r = c.get("/v1/exercises?equipment=kettlebell&page_size=3")
    assert r.status == 200 and len(r.body["exercises"]) == 3 and r.body["next_page_token"]
    r2 = c.get(
        f"/v1/exercises?equipment=kettlebell&page_size=3&page_token={r.body['next_page_token']}"
    )
    assert {e["id"] for e in r2.body["exercises"]}.isdisjoint(
        {e["id"] for e in r.body["exercises"]}
    )
    assert c.get("/v1/exercises/1").body["exercise"]["name"] == "Bench Press"
    assert len(c.get("/v1/muscle-groups").body["muscle_groups"]) == 20
    catalog = c.get("/v1/catalog").body
    assert catalog["version"] and len(catalog["exercises"]) >= 60
    yesterday = (mesh.clock.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = c.post(
        "/v1/history",
        {"exercise_id": 16, "sets": 5, "reps": 5, "weight_kg": 100, "performed_at": yesterday},
        token=token,
    )
    assert r.status == 200, r.body
    day = r.body["entry"]["day"]
    assert c.get(f"/v1/history/days/{day}", token=token).body["exercise_ids"] == [16]
    assert len(c.get("/v1/history", token=token).body["entries"]) == 1
    r = c.post("/v1/history", {"exercise_id": 99999, "sets": 500}, token=token)
    assert r.status == 400
    wod = c.get("/v1/wod", token=token)
    assert wod.status == 200 and 16 not in {e["id"] for e in wod.body["exercises"]}


def test_edge_rejects_what_it_should(mesh: RunningMesh) -> None:
    c = mesh.client()
    r = c.get("/no/such/path")
    assert r.status == 404 and r.headers["content-type"] == "application/json"
    r = c.request("DELETE", "/fitness/exercises")  # a known path, the wrong method
    assert (r.status, r.headers["allow"]) == (405, "GET")
    r = c.get("/fitness/exercises?bogus=1")
    assert r.status == 400 and "bogus" in r.body["message"]
    r = c.request(
        "POST", "/v1/auth/login", raw=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status == 400
    # Tokens at the edge: expired, wrong audience, wrong signature, alg none, in the query string.
    user = register(c, onboard=False)
    expired = _token(mesh, sub=str(user.id), exp=int(time.time()) - 60)
    wrong_aud = _token(mesh, sub=str(user.id), aud="somebody-else")
    for bad in (expired, wrong_aud, user.token[:-4] + "AAAA", "a.b.c"):
        r = c.get("/v1/profile", token=bad)
        assert r.status == 401, (r.status, r.body)
        assert r.headers["content-type"] == "application/json"
    r = c.get(f"/v1/profile?access_token={user.token}")
    assert r.status in (400, 401)  # never accepted from the URL
    assert c.get("/v1/profile", token=_token(mesh, sub=str(user.id))).status == 200


def test_grpc_through_envoy(mesh: RunningMesh) -> None:
    target = f"{mesh.host}:{mesh.port}"
    with grpc.insecure_channel(target) as ch:
        users = user_pb2_grpc.UserServiceStub(ch)
        email = f"grpc-{time.time_ns()}@example.com"
        reg = users.RegisterUser(
            user_pb2.RegisterUserRequest(email=email, name="G", password="grpc-password-1")
        )
        md = (("authorization", f"Bearer {reg.access_token}"),)
        users.CompleteOnboarding(
            user_pb2.CompleteOnboardingRequest(weight=75, height=175, fitness_goal="endurance"),
            metadata=md,
        )
        assert (
            users.GetProfile(user_pb2.GetProfileRequest(), metadata=md).profile.fitness_goal
            == "endurance"
        )
        cat = catalog_pb2_grpc.CatalogServiceStub(ch)
        assert (
            cat.GetExercise(catalog_pb2.GetExerciseRequest(exercise_id=2)).exercise.name
            == "Push-ups"
        )
        hist = history_pb2_grpc.HistoryServiceStub(ch)
        hist.RecordExercise(
            history_pb2.RecordExerciseRequest(exercise_id=2, sets=3, reps=15), metadata=md
        )
        assert len(hist.ListHistory(history_pb2.ListHistoryRequest(), metadata=md).entries) == 1
        wod = coach_pb2_grpc.CoachServiceStub(ch).GetWod(coach_pb2.GetWodRequest(), metadata=md)
        assert len(wod.exercises) == 6
        with pytest.raises(grpc.RpcError) as info:
            users.GetProfile(user_pb2.GetProfileRequest())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            cat.GetExercise(catalog_pb2.GetExerciseRequest(exercise_id=31337))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert {
            "fitco.user.v1.UserService",
            "fitco.coach.v1.CoachService",
            "fitco.legacy.v1.LegacyService",
        } <= names


def test_processes_log_to_their_files(mesh: RunningMesh) -> None:
    logs = Path(mesh.mesh.config.log_dir or ".")
    assert {"monolith.log", "coach-0.log", "coach-1.log", "envoy.log"} <= {
        p.name for p in logs.iterdir()
    }
