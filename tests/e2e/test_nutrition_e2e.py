"""GET /v1/nutrition through Envoy as JSON: computed by the coach instances (never the monolith)
from the caller's profile; an incomplete profile is 400 naming the missing fields."""

from __future__ import annotations

import time

import pytest

import fitedge
from fitrules.nutrition import MINUS, TIMES
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, Response, User, register

pytestmark = pytest.mark.e2e


def _nutrition(c: JsonClient, user: User) -> Response:
    """GET /v1/nutrition; a 503 while Envoy has not yet seen a coach healthy is retried."""
    deadline = time.monotonic() + 15
    while True:
        r = c.get("/v1/nutrition", token=user.token)
        if r.status != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def test_a_30_year_old_man_of_80_kg_and_180_cm(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c, onboard=False)
    r = c.post(
        "/v1/profile/onboarding",
        {
            "weight": 80,
            "height": 180,
            "fitness_goal": "weight_loss",
            "birth_year": mesh.clock.now().year - 30,
            "sex": "male",
        },
        token=user.token,
    )
    assert r.status == 200, r.body
    before = mesh.admin.served()
    r = _nutrition(c, user)
    assert r.status == 200, r.body
    plan = r.body
    assert (plan["bmr_kcal"], plan["bmr_formula"], plan["age"]) == (1780, "mifflin_st_jeor", 30)
    assert (plan["activity_level"], plan["tdee_kcal"]) == ("sedentary", 2136)
    assert (plan["goal"], plan["target_kcal"], plan["protein_g"]) == ("weight_loss", 1636, 176)
    # A free user: daily targets, no meal split nor training/rest-day detail (premium).
    assert "training_day" not in plan
    assert not plan.get("meals")  # the transcoder prints an empty list
    assert any("premium" in note for note in plan["notes"])
    bmr = next(x for x in plan["calculations"] if x["quantity"] == "bmr_kcal")
    ascii_formula = bmr["formula"].replace(TIMES, "*").replace(MINUS, "-")
    assert ascii_formula == "10*80 kg + 6.25*180 cm - 5*30 y + 5 (male) = 1780"
    assert "Mifflin" in bmr["source"]
    served = mesh.admin.served()
    assert served[fitedge.COACH_HOSTS] > before[fitedge.COACH_HOSTS]  # the coach answered
    assert served["monolith"] - before["monolith"] == 0  # not through the monolith's route
    # A body-fat measurement switches the formula.
    r = c.post("/v1/profile/metrics", {"weight_kg": 80, "body_fat_percent": 20}, token=user.token)
    assert r.status == 200, r.body
    r = _nutrition(c, user)
    assert r.status == 200, r.body
    assert (r.body["bmr_formula"], r.body["bmr_kcal"]) == ("katch_mcardle", 1752)


def test_an_incomplete_profile_is_400_naming_the_missing_fields(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)  # onboarded with weight and height only
    r = _nutrition(c, user)
    assert r.status == 400, r.body
    assert "birth_year, sex" in r.body["message"]
    failure = next(d for d in r.body["details"] if d["@type"].endswith("PreconditionFailure"))
    assert [v["subject"] for v in failure["violations"]] == ["birth_year", "sex"]
    info = next(d for d in r.body["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "PROFILE_INCOMPLETE"
    assert c.get("/v1/nutrition").status == 401
