"""NutritionService, served by an in-process coach that reads an in-process monolith (SQLite and
PostgreSQL): the plan from the caller's profile, body metrics, preferences and sessions;
FAILED_PRECONDITION naming the missing fields; session data optional (a monolith without the
training service), other failures not hidden."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from fitco.nutrition.v1 import nutrition_pb2, nutrition_pb2_grpc
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from devtools.ports import free_port
from fitrules.nutrition import MINUS, TIMES
from tests.conftest import RunningMonolith, UserSession, register
from tests.rpc import error_reason, expect_error
from tests.service.inproc import RunningCoach, running_coach
from tests.service.premium import (
    RunningBilling,
    billing_database,  # noqa: F401 - the premium_billing_url fixture
    running_billing,
)


@pytest.fixture
def billing(monolith: RunningMonolith, premium_billing_url: str) -> Iterator[RunningBilling]:
    with running_billing(monolith, premium_billing_url) as running:
        yield running


@pytest.fixture
def coach(monolith: RunningMonolith, billing: RunningBilling) -> Iterator[RunningCoach]:
    """A coach that learns each user's plan from billing (premium sees the full detail)."""
    with running_coach(monolith, FITCO_BILLING_TARGET=billing.target) as running:
        yield running


def _nutrition(coach: RunningCoach) -> nutrition_pb2_grpc.NutritionServiceStub:
    return nutrition_pb2_grpc.NutritionServiceStub(coach.channel)


def _man_of_30(monolith: RunningMonolith, goal: str = "strength") -> UserSession:
    c = monolith.client
    user = register(c, "Nutrition")
    c.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(
            weight=80,
            height=180,
            fitness_goal=goal,
            birth_year=monolith.clock.now().year - 30,
            sex="male",
        ),
        metadata=user.md,
    )
    return user


def _violations(err: grpc.Call) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            return [v.subject for v in failure.violations]
    return []


def test_plan_for_a_man_of_30_80_kg_180_cm(
    monolith: RunningMonolith, coach: RunningCoach, billing: RunningBilling
) -> None:
    user = _man_of_30(monolith)
    billing.upgrade(user)  # the training/rest-day detail is premium
    plan = _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)
    assert (plan.bmr_kcal, plan.bmr_formula, plan.age, plan.weight_kg) == (
        1780,
        "mifflin_st_jeor",
        30,
        80,
    )
    assert (plan.activity_level, plan.activity_factor, plan.tdee_kcal) == ("sedentary", 1.2, 2136)
    assert (plan.goal, plan.target_kcal, plan.protein_g, plan.fat_g) == ("strength", 2136, 128, 64)
    assert plan.training_days_per_week == 3 and plan.session_kcal == 0
    assert plan.training_day == plan.rest_day
    bmr = next(c for c in plan.calculations if c.quantity == "bmr_kcal")
    ascii_formula = bmr.formula.replace(TIMES, "*").replace(MINUS, "-")
    assert ascii_formula == "10*80 kg + 6.25*180 cm - 5*30 y + 5 (male) = 1780"
    assert "Mifflin" in bmr.source
    assert all(c.formula and c.source for c in plan.calculations)
    assert any("sedentary" in n for n in plan.notes)


def test_the_profile_and_metrics_steer_the_plan(
    monolith: RunningMonolith, coach: RunningCoach
) -> None:
    c = monolith.client
    user = _man_of_30(monolith, goal="weight_loss")
    c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(activity_level=wrappers_pb2.StringValue(value="moderate")),
        metadata=user.md,
    )
    c.users.UpdatePreferences(
        user_pb2.UpdatePreferencesRequest(
            preferences=user_pb2.Preferences(training_days_per_week=5, session_minutes=45)
        ),
        metadata=user.md,
    )
    plan = _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)
    assert (plan.activity_factor, plan.tdee_kcal) == (1.55, 2759)
    assert (plan.goal, plan.target_kcal, plan.protein_g) == ("weight_loss", 2259, 176)
    assert plan.training_days_per_week == 5
    # A body-fat measurement: Katch-McArdle on its weight.
    c.users.RecordBodyMetric(
        user_pb2.RecordBodyMetricRequest(weight_kg=78, body_fat_percent=20), metadata=user.md
    )
    plan = _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)
    assert (plan.bmr_formula, plan.weight_kg) == ("katch_mcardle", 78)
    assert plan.bmr_kcal == round(370 + 21.6 * 62.4)
    lbm = next(c for c in plan.calculations if c.quantity == "lean_body_mass_kg")
    assert lbm.value == 62.4


def test_missing_inputs_are_failed_precondition_naming_them(
    monolith: RunningMonolith, coach: RunningCoach
) -> None:
    c = monolith.client
    user = register(c, "New")
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: _nutrition(coach).GetNutrition(
            nutrition_pb2.GetNutritionRequest(), metadata=user.md
        ),
    )
    assert error_reason(err) == "PROFILE_INCOMPLETE"
    assert _violations(err) == ["birth_year", "sex", "weight", "height"]
    assert "birth_year, sex, weight, height" in str(err.details())
    # Onboarded with weight and height only: age and sex are still missing, never guessed.
    c.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(weight=80, height=180, fitness_goal="strength"),
        metadata=user.md,
    )
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: _nutrition(coach).GetNutrition(
            nutrition_pb2.GetNutritionRequest(), metadata=user.md
        ),
    )
    assert _violations(err) == ["birth_year", "sex"]


def test_a_token_is_required(coach: RunningCoach) -> None:
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest()),
    )


def test_without_the_training_service_the_plan_has_no_session_data(
    monolith: RunningMonolith, coach: RunningCoach
) -> None:
    """A monolith that answers UNIMPLEMENTED for sessions (the coach itself serves no
    TrainingService: it stands in for an older monolith)."""
    user = _man_of_30(monolith)
    client = coach.app.monolith
    client.training = training_pb2_grpc.TrainingServiceStub(coach.channel)
    plan = _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)
    assert plan.bmr_kcal == 1780 and plan.session_kcal == 0
    assert any("not available" in n for n in plan.notes)


def test_other_failures_of_the_session_read_are_not_hidden(
    monolith: RunningMonolith, coach: RunningCoach
) -> None:
    user = _man_of_30(monolith)
    nowhere = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    try:
        coach.app.monolith.training = training_pb2_grpc.TrainingServiceStub(nowhere)
        err = expect_error(
            grpc.StatusCode.UNAVAILABLE,
            lambda: _nutrition(coach).GetNutrition(
                nutrition_pb2.GetNutritionRequest(), metadata=user.md
            ),
        )
        assert error_reason(err) == "UPSTREAM_UNAVAILABLE"
    finally:
        nowhere.close()


def test_training_days_use_the_calories_of_the_users_sessions(
    monolith: RunningMonolith, coach: RunningCoach, billing: RunningBilling
) -> None:
    user = _man_of_30(monolith)
    billing.upgrade(user)  # the training/rest-day detail is premium
    training = training_pb2_grpc.TrainingServiceStub(monolith.client.channel)
    try:
        started = training.StartSession(training_pb2.StartSessionRequest(), metadata=user.md)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("the monolith has no TrainingService yet")
        raise
    session_id = started.session.id
    training.LogSet(
        training_pb2.LogSetRequest(
            session_id=session_id, exercise_id=1, reps=10, weight=60, client_set_id="n-1"
        ),
        metadata=user.md,
    )
    training.LogSet(
        training_pb2.LogSetRequest(
            session_id=session_id, exercise_id=1, reps=10, weight=60, client_set_id="n-2"
        ),
        metadata=user.md,
    )
    monolith.clock.at += timedelta(minutes=30)
    ended = training.EndSession(
        training_pb2.EndSessionRequest(session_id=session_id), metadata=user.md
    ).session
    assert ended.calories > 0
    plan = _nutrition(coach).GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)
    assert plan.session_kcal == ended.calories
    assert plan.training_day.kcal == plan.rest_day.kcal + ended.calories
    assert plan.rest_day.kcal == round(plan.target_kcal - 3 * ended.calories / 7)
    assert plan.training_day.protein_g == plan.rest_day.protein_g == plan.protein_g
    assert plan.training_day.carbs_g > plan.rest_day.carbs_g
