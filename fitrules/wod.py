"""The workout of the day as a user sees it: its time and calorie estimates, and the rendering of
a recorded WOD (history contract) into the CoachService answer.

One module for both WOD implementations and the coach's planner: the planner fits a session to
the user's minutes with `item_seconds`, the renderer reports the same `item_seconds`, and workout
sessions estimate a set's time with `SECONDS_PER_REP`, so the three never disagree. Both WOD
implementations record the WOD through HistoryService and answer from what was recorded, so a WOD
looks the same whichever implementation generated or serves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2

from fitrules.days import UTC_NAME
from fitrules.energy import kcal
from fitrules.strength import percent_1rm_for_reps

# Seconds per repetition for time estimates: a controlled tempo of about 1-2 s up and 2 s down
# (NSCA tempo guidance for hypertrophy/strength work), about 3 s a rep.
SECONDS_PER_REP: Final = 3.0
KINDS: Final = ("training", "recovery", "deload")
DEFAULT_KIND: Final = "training"
# WODs sized by the user's plan (fitco.billing.v1.Entitlements.wod_exercises): a recovery
# session is sized by its minutes instead (coach.recovery), so it is never topped up.
SIZED_KINDS: Final = ("training", "deload")


def wants_top_up(kind: str, exercises: int, size: int) -> bool:
    """True when a WOD served today holds fewer exercises than the user's plan allows now (it
    was served before an upgrade): both implementations then append exercises up to `size`."""
    return (kind or DEFAULT_KIND) in SIZED_KINDS and exercises < size


def item_seconds(sets: int, reps: int, duration_seconds: int, rest_seconds: int) -> float:
    """Estimated seconds of one prescribed exercise, rest between its sets included.

    A rep-based item takes `reps x SECONDS_PER_REP` a set; a timed one (reps 0: a hold of
    `duration_seconds` a set, or cardio: one bout of `duration_seconds`) takes its duration a
    set. Rest counts between sets, not after the last one.
    """
    sets = max(sets, 1)
    work = reps * SECONDS_PER_REP if reps > 0 else max(duration_seconds, 0)
    return sets * work + (sets - 1) * max(rest_seconds, 0)


def wod_item_minutes(item: history_pb2.WodItem) -> float:
    return item_seconds(item.sets, item.reps, item.duration_seconds, item.rest_seconds) / 60


def load_intensity(weight_kg: float, reps: int) -> tuple[float, float]:
    """(estimated 1RM, fraction of it) a load for `reps` reps stands for, by the NSCA %1RM
    table; (0, 0) for bodyweight or timed work."""
    if weight_kg <= 0 or reps <= 0:
        return 0.0, 0.0
    percent = percent_1rm_for_reps(reps)
    return round(weight_kg / percent, 1), percent


def legacy_reps(item: history_pb2.WodItem) -> int:
    """Reps to show: old clients render reps, so every exercise has at least one; a timed
    exercise is one bout (hold, cardio) per set, its length in suggested_duration_seconds."""
    return item.reps if item.reps > 0 else 1


def render_wod(
    served: history_pb2.ServedWod,
    exercises: Mapping[int, catalog_pb2.Exercise],
    *,
    fitness_goal: str,
    body_weight_kg: float,
    time_zone: str = "",
) -> coach_pb2.GetWodResponse:
    out = coach_pb2.GetWodResponse(
        day=served.day,
        implementation=served.implementation,
        fitness_goal=fitness_goal,
        kind=served.kind or DEFAULT_KIND,
        notes=served.notes,
        time_zone=time_zone or UTC_NAME,
    )
    out.generated_at.CopyFrom(served.generated_at)
    minutes = energy = 0.0
    for item in sorted(served.items, key=lambda i: i.position):
        exercise = exercises.get(item.exercise_id)
        if exercise is None:  # removed from the catalog since: skip rather than fail
            continue
        m = wod_item_minutes(item)
        minutes += m
        energy += kcal(exercise.met_value, body_weight_kg, m) if body_weight_kg else 0.0
        e1rm, percent = load_intensity(item.weight_kg, item.reps)
        out.exercises.append(
            coach_pb2.WodExercise(
                id=exercise.id,
                name=exercise.name,
                description=exercise.description,
                difficulty=exercise.difficulty,
                muscle_groups=exercise.muscle_groups,
                suggested_weight=item.weight_kg,
                suggested_reps=legacy_reps(item),
                sets=item.sets,
                rest_seconds=item.rest_seconds,
                suggested_duration_seconds=item.duration_seconds,
                reason=item.reason,
                equipment=exercise.equipment,
                instructions=exercise.instructions,
                estimated_1rm_kg=e1rm,
                percent_1rm=percent,
            )
        )
    out.estimated_minutes = round(minutes)
    out.estimated_kcal = round(energy)
    return out
