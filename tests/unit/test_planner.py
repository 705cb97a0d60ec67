"""The coach's planner on the real catalog and on small hand-made ones."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from coach.planner import (
    PastEntry,
    PlannedItem,
    UserContext,
    kind_of,
    plan_wod,
    primaries,
)

DATA = Path(__file__).resolve().parents[2] / "monolith" / "migrations" / "data" / "catalog_v1.json"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _load() -> tuple[dict[int, catalog_pb2.Exercise], dict[int, catalog_pb2.MuscleGroup]]:
    raw = json.loads(DATA.read_text())
    groups = {
        g["id"]: catalog_pb2.MuscleGroup(
            id=g["id"], name=g["name"], body_part=g["body_part"], size=g["size"], region=g["region"]
        )
        for g in raw["muscle_groups"]
    }
    exercises = {}
    for e in raw["exercises"]:
        exercises[e["id"]] = catalog_pb2.Exercise(
            id=e["id"],
            name=e["name"],
            difficulty=e["difficulty"],
            equipment=e["equipment"],
            equipment_needed=e["equipment_needed"],
            mechanic=e["mechanic"],
            force=e["force"],
            category=e["category"],
            measure=e["measure"],
            met_value=e["met_value"],
            rm_bodyweight_ratio=e["rm_bodyweight_ratio"],
            muscle_groups=[
                catalog_pb2.MuscleGroupImpact(
                    id=m["muscle_group_id"],
                    name=groups[m["muscle_group_id"]].name,
                    body_part=groups[m["muscle_group_id"]].body_part,
                    is_primary=m["is_primary"],
                    intensity=m["intensity"],
                )
                for m in e["muscles"]
            ],
        )
    return exercises, groups


EXERCISES, GROUPS = _load()
BY_NAME = {e.name: e for e in EXERCISES.values()}


def user(**kw: object) -> UserContext:
    base = UserContext(
        user_id=7,
        fitness_goal="muscle_gain",
        experience="intermediate",
        body_weight_kg=80,
        equipment=frozenset(),
        avoid_muscle_group_ids=frozenset(),
        session_minutes=90,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def entry(exercise_id: int, hours_ago: float, source: str = "logged", **kw: object) -> PastEntry:
    at = NOW - timedelta(hours=hours_ago)
    values: dict[str, object] = {
        "exercise_id": exercise_id,
        "performed_at": at,
        "day": at.date(),
        "sets": 3,
        "reps": 10,
        "weight_kg": 0.0,
        "duration_seconds": 0,
        "source": source,
    }
    values.update(kw)
    return PastEntry(**values)  # type: ignore[arg-type]


def plan(
    u: UserContext | None = None, history: list[PastEntry] | None = None, **kw: object
) -> list[PlannedItem]:
    return plan_wod(u or user(), kw.get("now", NOW), history or [], EXERCISES, GROUPS)  # type: ignore[arg-type]


def test_six_distinct_exercises_with_reasons() -> None:
    items = plan()
    assert len(items) == 6
    assert len({i.exercise_id for i in items}) == 6
    assert all(i.reason for i in items)


@pytest.mark.parametrize("source", ["logged", "wod"])
def test_never_yesterday(source: str) -> None:
    # Yesterday (UTC) the user did a large part of the catalog.
    done = list(EXERCISES)[::2]
    history = [entry(ex, hours_ago=20, source=source) for ex in done]
    assert all(h.day == (NOW - timedelta(days=1)).date() for h in history)
    for goal in rx.GOALS:
        items = plan(user(fitness_goal=goal), history)
        assert not {i.exercise_id for i in items} & set(done)
        assert len(items) == 6


def test_hard_rules_win_over_the_count() -> None:
    # Only bodyweight, everything but two exercises done yesterday: fewer than six, none repeated.
    bodyweight = [e.id for e in EXERCISES.values() if e.equipment_needed == ["bodyweight"]]
    keep = set(bodyweight[:2])
    history = [entry(ex, 20) for ex in EXERCISES if ex not in keep]
    items = plan(user(equipment=frozenset({"bodyweight"})), history)
    assert {i.exercise_id for i in items} == keep


def test_equipment_is_respected() -> None:
    for kit in ({"dumbbell"}, {"kettlebell"}, {"dumbbell", "bench"}, {"bodyweight"}):
        items = plan(user(equipment=frozenset(kit)))
        assert items
        for i in items:
            assert set(EXERCISES[i.exercise_id].equipment_needed) <= kit | {"bodyweight"}


def test_avoided_muscle_groups_are_never_loaded() -> None:
    avoid = frozenset({13, 14})  # lower back, quadriceps
    for goal in rx.GOALS:
        for i in plan(user(fitness_goal=goal, avoid_muscle_group_ids=avoid)):
            for m in EXERCISES[i.exercise_id].muscle_groups:
                assert not (m.id in avoid and (m.is_primary or m.intensity >= rx.AVOID_INTENSITY))


def test_recovery_48h_upper_72h_large_lower() -> None:
    squats, bench = BY_NAME["Squats"].id, BY_NAME["Bench Press"].id
    history = [entry(squats, 50), entry(bench, 50)]  # two days ago: not "yesterday"
    items = plan(user(), history)
    trained = set()
    for i in items:
        trained |= {m.id for m in primaries(EXERCISES[i.exercise_id]) if m.intensity >= 0.6}
    quads = 14
    assert quads not in trained, "quadriceps need 72 h after heavy squats"
    # The chest (upper body) is fine again after 48 h: it is allowed (no assertion it is chosen),
    # and nothing forbids it; check the fatigue set directly.
    from coach.planner import fatigued_groups

    tired = fatigued_groups(history, EXERCISES, GROUPS, NOW)
    assert quads in tired
    assert 1 not in tired  # pectoralis major rested after 50 h
    assert 1 in fatigued_groups([entry(bench, 30)], EXERCISES, GROUPS, NOW)


def test_recovery_is_relaxed_when_too_few_alternatives() -> None:
    # A tiny catalog: every exercise works the quadriceps, trained hard 30 h ago.
    small = {
        i: catalog_pb2.Exercise(
            id=i,
            name=f"Quad move {i}",
            difficulty=2,
            equipment="bodyweight",
            equipment_needed=["bodyweight"],
            mechanic="compound",
            category="strength",
            measure="reps",
            muscle_groups=[
                catalog_pb2.MuscleGroupImpact(
                    id=14, name="Quadriceps", is_primary=True, intensity=0.9
                )
            ],
        )
        for i in range(1, 9)
    }
    history = [entry(1, 30)]  # 30 h ago is yesterday too: exercise 1 is excluded outright
    items = plan_wod(user(), NOW, history, small, GROUPS)
    assert len(items) == 6
    assert 1 not in {i.exercise_id for i in items}
    assert any("recently trained" in i.reason for i in items)


def test_difficulty_cap_by_experience() -> None:
    for _ in range(3):
        items = plan(user(experience="beginner"))
        assert all(EXERCISES[i.exercise_id].difficulty <= 3 for i in items)


def test_deterministic_per_day_and_varies_across_days() -> None:
    assert plan() == plan()
    days = {tuple(i.exercise_id for i in plan(now=NOW + timedelta(days=d))) for d in range(5)}
    assert len(days) >= 3
    assert plan(user(user_id=1)) != plan(user(user_id=2))


def test_order_compound_first_cardio_last() -> None:
    for goal in ("general_fitness", "weight_loss", "endurance"):
        items = plan(user(fitness_goal=goal))
        kinds = [kind_of(EXERCISES[i.exercise_id]) for i in items]
        rank = {"compound": 0, "isolation": 1, "core": 2, "cardio": 3}
        assert [rank[k] for k in kinds] == sorted(rank[k] for k in kinds)
        assert kinds[-1] == "cardio"
    kinds = [kind_of(EXERCISES[i.exercise_id]) for i in plan(user(fitness_goal="strength"))]
    assert "cardio" not in kinds
    assert kinds.count("compound") >= 4


@pytest.mark.parametrize(
    ("goal", "reps", "rest"),
    [("strength", 5, 180), ("muscle_gain", 10, 75), ("endurance", 15, 30), ("weight_loss", 12, 30)],
)
def test_prescription_by_goal(goal: str, reps: int, rest: int) -> None:
    for i in plan(user(fitness_goal=goal, experience="advanced", session_minutes=180)):
        e = EXERCISES[i.exercise_id]
        if e.measure == "reps":
            assert (i.reps, i.rest_seconds) == (reps, rest)
            assert i.sets == rx.GOALS[goal].sets + (1 if goal == "muscle_gain" else 0)
        elif e.measure == "minutes":
            assert (i.sets, i.reps, i.rest_seconds) == (1, 0, 0)
            assert i.duration_seconds == rx.GOALS[goal].cardio_seconds
        else:
            assert i.reps == 0 and i.duration_seconds == rx.HOLD_SECONDS["advanced"]


def test_beginner_load_and_reps() -> None:
    items = plan(
        user(
            fitness_goal="strength",
            experience="beginner",
            equipment=frozenset({"barbell", "bench"}),
        )
    )
    loaded = [i for i in items if EXERCISES[i.exercise_id].rm_bodyweight_ratio > 0]
    assert loaded
    for i in loaded:
        e = EXERCISES[i.exercise_id]
        assert 8 <= i.reps <= 12 and i.sets <= 3
        one_rm = e.rm_bodyweight_ratio * 80
        assert i.weight_kg <= max(one_rm * rx.BEGINNER_LOAD, rx.MIN_LOAD.get(e.equipment, 0))
        step = rx.LOAD_STEP[e.equipment]
        assert (i.weight_kg / step) == int(i.weight_kg / step)  # rounded to what plates allow


def test_progression_from_logged_sets() -> None:
    bench, squats = BY_NAME["Bench Press"].id, BY_NAME["Squats"].id
    # A six-exercise catalog, so both lifts are in every plan.
    names = ["Bench Press", "Squats", "Barbell Rows", "Deadlifts", "Overhead Press", "Bicep Curls"]
    small = {BY_NAME[n].id: BY_NAME[n] for n in names}
    u = user(fitness_goal="muscle_gain")
    # Logged 3 days ago: 12 reps beat the target of 10 by two -> one step up (ACSM 2009).
    strong = {
        i.exercise_id: i
        for i in plan_wod(
            u,
            NOW,
            [entry(bench, 72, weight_kg=60.0, reps=12), entry(squats, 80, weight_kg=80.0, reps=12)],
            small,
            GROUPS,
        )
    }
    assert strong[bench].weight_kg == 62.5 and "+2.5 kg" in strong[bench].reason
    assert strong[squats].weight_kg == 82.5  # lower body: at least +2.5 kg
    same = {
        i.exercise_id: i
        for i in plan_wod(u, NOW, [entry(bench, 72, weight_kg=60.0, reps=10)], small, GROUPS)
    }
    assert same[bench].weight_kg == 60.0 and "Same load" in same[bench].reason
    # A WOD that was only served (not logged) is no evidence of strength.
    served = {
        i.exercise_id: i
        for i in plan_wod(
            u, NOW, [entry(bench, 72, source="wod", weight_kg=100.0, reps=15)], small, GROUPS
        )
    }
    assert served[bench].weight_kg < 100


def test_session_length_shrinks_sets_then_rest() -> None:
    long = plan(user(fitness_goal="strength", experience="advanced", session_minutes=180))
    short = plan(user(fitness_goal="strength", experience="advanced", session_minutes=20))
    assert [i.exercise_id for i in long] == [i.exercise_id for i in short]
    assert sum(i.sets for i in short) < sum(i.sets for i in long)
    assert all(i.sets >= rx.MIN_SETS or i.reps == 0 for i in short)
    assert all(i.rest_seconds >= rx.GOALS["strength"].min_rest_seconds for i in short if i.reps)
