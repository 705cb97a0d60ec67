"""Rendering a recorded WOD (history contract) into the CoachService answer.

Both WOD implementations record the WOD through HistoryService and answer from what was
recorded, so a WOD looks the same whichever implementation generated or serves it.
"""

from __future__ import annotations

from collections.abc import Mapping

from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2

# Seconds per repetition for time estimates (controlled tempo, about 3 s a rep).
SECONDS_PER_REP = 3.0


def item_minutes(item: history_pb2.WodItem, exercise: catalog_pb2.Exercise) -> float:
    if exercise.measure == "minutes":
        return item.duration_seconds / 60
    sets = max(item.sets, 1)
    work = item.duration_seconds if exercise.measure == "seconds" else item.reps * SECONDS_PER_REP
    return (sets * work + max(sets - 1, 0) * item.rest_seconds) / 60


def kcal(met: float, body_weight_kg: float, minutes: float) -> float:
    """Gross energy: kcal/min = MET x 3.5 x kg / 200 (Compendium of Physical Activities)."""
    return met * 3.5 * body_weight_kg / 200 * minutes


def render_wod(
    served: history_pb2.ServedWod,
    exercises: Mapping[int, catalog_pb2.Exercise],
    *,
    fitness_goal: str,
    body_weight_kg: float,
) -> coach_pb2.GetWodResponse:
    out = coach_pb2.GetWodResponse(
        day=served.day, implementation=served.implementation, fitness_goal=fitness_goal
    )
    out.generated_at.CopyFrom(served.generated_at)
    minutes = energy = 0.0
    for item in sorted(served.items, key=lambda i: i.position):
        exercise = exercises.get(item.exercise_id)
        if exercise is None:  # removed from the catalog since: skip rather than fail
            continue
        m = item_minutes(item, exercise)
        minutes += m
        energy += kcal(exercise.met_value, body_weight_kg, m) if body_weight_kg else 0.0
        out.exercises.append(
            coach_pb2.WodExercise(
                id=exercise.id,
                name=exercise.name,
                description=exercise.description,
                difficulty=exercise.difficulty,
                muscle_groups=exercise.muscle_groups,
                suggested_weight=item.weight_kg,
                suggested_reps=item.reps,
                sets=item.sets,
                rest_seconds=item.rest_seconds,
                suggested_duration_seconds=item.duration_seconds,
                reason=item.reason,
                equipment=exercise.equipment,
                instructions=exercise.instructions,
            )
        )
    out.estimated_minutes = round(minutes)
    out.estimated_kcal = round(energy)
    return out
