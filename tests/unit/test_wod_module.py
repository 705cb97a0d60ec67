"""The one WOD module (fitrules.wod): the renderer both implementations answer with, and the
time estimate the coach's planner fits sessions with — they must agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fitco.catalog.v1 import catalog_pb2
from fitco.history.v1 import history_pb2

from coach.planner import PlannedItem, plan_wod, session_minutes
from fitrules.energy import kcal
from fitrules.wod import SECONDS_PER_REP, item_seconds, render_wod
from tests.unit.test_planner import EXERCISES, GROUPS, NOW, days_ago, user

SQUAT = catalog_pb2.Exercise(id=16, name="Squats", measure="reps", met_value=5.0)
PLANK = catalog_pb2.Exercise(id=14, name="Plank", measure="seconds", met_value=2.8)
JOG = catalog_pb2.Exercise(id=83, name="Treadmill Jog", measure="minutes", met_value=7.0)
CATALOG = {16: SQUAT, 14: PLANK, 83: JOG}


def served(*items: history_pb2.WodItem, **kw: object) -> history_pb2.ServedWod:
    out = history_pb2.ServedWod(day="2026-11-20", implementation="coach", items=items, **kw)  # type: ignore[arg-type]
    out.generated_at.FromDatetime(datetime(2026, 11, 20, 8, tzinfo=UTC))
    return out


def test_render_wod_orders_items_and_estimates_energy() -> None:
    wod = served(
        history_pb2.WodItem(
            exercise_id=14, position=1, sets=3, duration_seconds=30, rest_seconds=30
        ),
        history_pb2.WodItem(
            exercise_id=16, position=0, sets=3, reps=10, weight_kg=40, rest_seconds=60
        ),
        history_pb2.WodItem(exercise_id=999, position=2, sets=3, reps=10),
    )
    out = render_wod(wod, CATALOG, fitness_goal="strength", body_weight_kg=80)
    assert [e.id for e in out.exercises] == [16, 14]
    assert out.exercises[0].suggested_weight == 40
    # squats: 3 x 10 reps x 3 s + 2 x 60 s rest = 210 s; plank: 3 x 30 + 2 x 30 = 150 s
    assert SECONDS_PER_REP == 3.0
    assert out.estimated_minutes == round(360 / 60)
    assert out.estimated_kcal == round(kcal(5.0, 80, 3.5) + kcal(2.8, 80, 2.5))
    assert kcal(8.0, 70, 1) == pytest.approx(9.8)


def test_every_exercise_has_reps_and_timed_ones_a_duration() -> None:
    """Old clients render reps: a hold or a cardio bout is one rep per set, with its seconds."""
    wod = served(
        history_pb2.WodItem(exercise_id=16, position=0, sets=3, reps=10, weight_kg=40),
        history_pb2.WodItem(exercise_id=14, position=1, sets=3, duration_seconds=45),
        history_pb2.WodItem(exercise_id=83, position=2, sets=1, duration_seconds=600),
    )
    out = render_wod(wod, CATALOG, fitness_goal="", body_weight_kg=0)
    reps = {e.id: (e.suggested_reps, e.suggested_duration_seconds) for e in out.exercises}
    assert reps == {16: (10, 0), 14: (1, 45), 83: (1, 600)}
    assert out.estimated_kcal == 0  # no body weight: no estimate
    # The estimate still counts the timed items' seconds, not "1 rep".
    assert out.estimated_minutes == round((3 * 10 * 3 + 3 * 45 + 600) / 60)


def test_kind_notes_and_time_zone() -> None:
    wod = served(
        history_pb2.WodItem(exercise_id=14, position=0, sets=2, duration_seconds=20),
        kind="recovery",
        notes=["Planned rest day."],
    )
    out = render_wod(wod, CATALOG, fitness_goal="x", body_weight_kg=70, time_zone="Europe/Paris")
    assert (out.kind, list(out.notes), out.time_zone) == (
        "recovery",
        ["Planned rest day."],
        "Europe/Paris",
    )
    plain = render_wod(served(), CATALOG, fitness_goal="x", body_weight_kg=70)
    assert (plain.kind, list(plain.notes), plain.time_zone) == ("training", [], "UTC")


def test_estimated_1rm_and_percent_from_the_load() -> None:
    wod = served(
        history_pb2.WodItem(exercise_id=16, position=0, sets=3, reps=10, weight_kg=60),
        history_pb2.WodItem(exercise_id=14, position=1, sets=3, duration_seconds=30),
    )
    squat, plank = render_wod(wod, CATALOG, fitness_goal="", body_weight_kg=80).exercises
    assert squat.percent_1rm == 0.75  # NSCA: 10 reps to failure = 75 % 1RM
    assert squat.estimated_1rm_kg == 80.0
    assert (plank.percent_1rm, plank.estimated_1rm_kg) == (0.0, 0.0)


def _as_served(items: list[PlannedItem]) -> history_pb2.ServedWod:
    return served(
        *[
            history_pb2.WodItem(
                exercise_id=i.exercise_id,
                position=n,
                sets=i.sets,
                reps=i.reps,
                weight_kg=i.weight_kg,
                duration_seconds=i.duration_seconds,
                rest_seconds=i.rest_seconds,
            )
            for n, i in enumerate(items)
        ]
    )


@pytest.mark.parametrize("goal", ["strength", "muscle_gain", "endurance", "weight_loss"])
@pytest.mark.parametrize("minutes", [20, 45, 90])
def test_the_planner_fits_sessions_with_the_renderers_estimate(goal: str, minutes: int) -> None:
    u = user(fitness_goal=goal, experience="advanced", session_minutes=minutes)
    items = plan_wod(u, NOW, [], EXERCISES, GROUPS).items
    planned = session_minutes(items)
    assert (
        planned
        == sum(item_seconds(i.sets, i.reps, i.duration_seconds, i.rest_seconds) for i in items) / 60
    )
    out = render_wod(_as_served(items), EXERCISES, fitness_goal=goal, body_weight_kg=80)
    assert out.estimated_minutes == round(planned)
    if goal == "strength":  # no cardio: sets and rest can always shrink to fit
        assert out.estimated_minutes <= minutes


def test_recovery_sessions_fit_by_the_same_estimate() -> None:
    rest = plan_wod(user(session_minutes=15), NOW, days_ago(1, 2), EXERCISES, GROUPS)
    assert rest.kind == "recovery"
    assert session_minutes(rest.items) <= 15
