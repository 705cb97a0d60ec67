"""What the planner knows: the user, their recent history and the catalog, as plain values,
with the small predicates every planning rule shares (pure, no I/O).

Days are the user's: an entry's day is the calendar day of its `performed_at` in the user's time
zone (`fitrules.days`), the same rule the monolith uses for the history's `day`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from fitrules.days import local_day

Exercises = Mapping[int, catalog_pb2.Exercise]
Groups = Mapping[int, catalog_pb2.MuscleGroup]
# History sources that are work the user did (a served WOD is only a suggestion).
WORK_SOURCES = frozenset({"logged", "session"})


@dataclass(frozen=True)
class UserContext:
    user_id: int
    fitness_goal: str
    experience: str
    body_weight_kg: float
    equipment: frozenset[str]
    avoid_muscle_group_ids: frozenset[int]
    session_minutes: int
    time_zone: str = ""  # IANA name; UTC when empty or unknown
    training_days_per_week: int = rx.DEFAULT_TRAINING_DAYS


@dataclass(frozen=True)
class PastEntry:
    """One history row: a logged exercise (all its sets), one set of a workout session
    (source "session", with its RPE), or an exercise of a served WOD (source "wod")."""

    exercise_id: int
    performed_at: datetime
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    source: str
    rpe: float = 0.0  # 1-10; 0 = not given
    session_id: int = 0

    @property
    def is_work(self) -> bool:
        return self.source in WORK_SOURCES

    @property
    def set_count(self) -> int:
        """Sets this row stands for (a session row is one set)."""
        return max(self.sets, 1)


@dataclass(frozen=True)
class PlannedItem:
    exercise_id: int
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    rest_seconds: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """A WOD: its kind ("training", "recovery" or "deload"), notes on the whole, and items."""

    kind: str
    items: list[PlannedItem]
    notes: list[str] = field(default_factory=list)


def entry_day(entry: PastEntry, tz: tzinfo) -> date:
    return local_day(entry.performed_at, tz)


def kind_of(e: catalog_pb2.Exercise) -> str:
    if e.category == "cardio" or e.measure == "minutes":
        return "cardio"
    if e.category == "mobility":
        return "mobility"
    if e.category == "core":
        return "core"
    return "compound" if e.mechanic == "compound" else "isolation"


def primaries(e: catalog_pb2.Exercise) -> list[catalog_pb2.MuscleGroupImpact]:
    return [m for m in e.muscle_groups if m.is_primary]


def has_equipment(e: catalog_pb2.Exercise, available: frozenset[str]) -> bool:
    if not available:  # nothing said: a fully equipped gym
        return True
    return set(e.equipment_needed) <= available | {"bodyweight"}


def works_avoided(e: catalog_pb2.Exercise, avoid: frozenset[int]) -> bool:
    return any(
        m.id in avoid and (m.is_primary or m.intensity >= rx.AVOID_INTENSITY)
        for m in e.muscle_groups
    )


def region(e: catalog_pb2.Exercise, groups: Groups) -> str:
    """Body region ("upper", "lower", "core") of the exercise's strongest primary mover."""
    prim = sorted(primaries(e), key=lambda m: -m.intensity)
    group = groups.get(prim[0].id) if prim else None
    return group.region if group is not None else "upper"


def group_names(e: catalog_pb2.Exercise) -> str:
    return " and ".join(m.name for m in primaries(e)[:2]) or e.name
