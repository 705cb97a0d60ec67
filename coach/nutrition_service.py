"""fitco.nutrition.v1.NutritionService: the caller's energy and macronutrient targets, computed
by the coach (stateless) from what the monolith knows (profile, latest body metric,
preferences, sessions), read with the caller's own token. Converts and delegates: the rules are
coach.nutrition, coach.meals and fitrules.nutrition.

What the caller sees depends on their plan (billing, through fitcore.entitlements): premium
(`nutrition_detail`) gets the meal split and the training-day and rest-day targets; the free
plan gets the daily targets, and a note saying what premium adds."""

from __future__ import annotations

from datetime import UTC

import grpc
from fitco.nutrition.v1 import nutrition_pb2, nutrition_pb2_grpc
from fitco.training.v1 import training_pb2
from prometheus_client import Counter

from coach.meals import FREE_PLAN_NOTE, meal_calculation, meal_split
from coach.monolith_client import MonolithClient, NutritionReads
from coach.nutrition import Day, Inputs, PastSession, Plan, plan, summarise_sessions
from fitcore.auth import current_principal
from fitcore.clock import Clock
from fitcore.entitlements import EntitlementsClient
from fitrules.days import local_day, zone

PLANS = Counter("fitco_coach_nutrition_plans_total", "Nutrition plans computed", ["bmr_formula"])


def _sessions(resp: training_pb2.ListSessionsResponse) -> list[PastSession]:
    return [
        PastSession(
            started_at=s.started_at.ToDatetime(tzinfo=UTC),
            ended=s.status == "ENDED",
            calories=s.calories,
        )
        for s in resp.sessions
    ]


def inputs_of(reads: NutritionReads, clock: Clock) -> Inputs:
    now = clock.now()
    profile, metric, prefs = reads.profile, reads.latest_metric, reads.preferences
    summary = None
    if reads.sessions is not None:
        summary = summarise_sessions(
            _sessions(reads.sessions), now, more_pages=bool(reads.sessions.next_page_token)
        )
    tz = zone(profile.time_zone)
    metric_day = ""
    if metric is not None and metric.HasField("measured_at"):
        metric_day = local_day(metric.measured_at.ToDatetime(tzinfo=UTC), tz).isoformat()
    return Inputs(
        today=local_day(now, tz),
        time_zone=profile.time_zone,
        birth_year=profile.birth_year,
        sex=profile.sex,
        height_cm=profile.height,
        profile_weight_kg=profile.weight,
        activity_level=profile.activity_level,
        goal=profile.fitness_goal,
        metric_weight_kg=metric.weight_kg if metric is not None else 0.0,
        metric_body_fat_percent=metric.body_fat_percent if metric is not None else 0.0,
        metric_day=metric_day,
        training_days_per_week=prefs.training_days_per_week,
        sessions=summary,
    )


def _day(day: Day) -> nutrition_pb2.DayTargets:
    return nutrition_pb2.DayTargets(
        kcal=day.kcal, protein_g=day.protein_g, fat_g=day.fat_g, carbs_g=day.carbs_g
    )


# Calculations of the premium detail: left out with it on the free plan.
_DETAIL_QUANTITIES = ("training_day", "rest_day")


def to_proto(p: Plan, detail: bool) -> nutrition_pb2.GetNutritionResponse:
    """The plan as the contract's answer; without `detail` (the free plan) no meals, no
    training/rest-day targets nor their calculations, and a note that says so."""
    out = _full(p)
    if detail:
        out.meals.extend(
            nutrition_pb2.Meal(
                name=m.name,
                share=m.share,
                kcal=m.kcal,
                protein_g=m.protein_g,
                fat_g=m.fat_g,
                carbs_g=m.carbs_g,
            )
            for m in meal_split(p.target_kcal, p.protein_g, p.fat_g, p.carbs_g)
        )
        c = meal_calculation()
        out.calculations.add(quantity=c.quantity, value=c.value, formula=c.formula, source=c.source)
        return out
    out.ClearField("training_day")
    out.ClearField("rest_day")
    kept = [c for c in out.calculations if c.quantity.split(".")[0] not in _DETAIL_QUANTITIES]
    del out.calculations[:]
    out.calculations.extend(kept)
    out.notes.append(FREE_PLAN_NOTE)
    return out


def _full(p: Plan) -> nutrition_pb2.GetNutritionResponse:
    return nutrition_pb2.GetNutritionResponse(
        bmr_kcal=p.bmr_kcal,
        bmr_formula=p.bmr_formula,
        activity_level=p.activity_level,
        activity_factor=p.activity_factor,
        tdee_kcal=p.tdee_kcal,
        goal=p.goal,
        target_kcal=p.target_kcal,
        protein_g=p.protein_g,
        fat_g=p.fat_g,
        carbs_g=p.carbs_g,
        training_day=_day(p.training_day),
        rest_day=_day(p.rest_day),
        session_kcal=p.session_kcal,
        training_days_per_week=p.training_days_per_week,
        weight_kg=p.weight_kg,
        age=p.age,
        calculations=[
            nutrition_pb2.Calculation(
                quantity=c.quantity, value=c.value, formula=c.formula, source=c.source
            )
            for c in p.calculations
        ],
        notes=p.notes,
    )


class NutritionServicer(nutrition_pb2_grpc.NutritionServiceServicer):
    """GetNutrition. Nothing is cached: a profile change shows in the next answer (the plan's
    entitlements are, for a few seconds: fitcore.entitlements)."""

    def __init__(
        self, monolith: MonolithClient, clock: Clock, entitlements: EntitlementsClient
    ) -> None:
        self._monolith = monolith
        self._clock = clock
        self._entitlements = entitlements

    def GetNutrition(  # noqa: N802 (named by the .proto)
        self, request: nutrition_pb2.GetNutritionRequest, context: grpc.ServicerContext
    ) -> nutrition_pb2.GetNutritionResponse:
        principal = current_principal()
        md = self._monolith.metadata(principal)
        result = plan(inputs_of(self._monolith.nutrition_inputs(md), self._clock))
        PLANS.labels(result.bmr_formula).inc()
        return to_proto(result, self._entitlements.get(principal).nutrition_detail)
