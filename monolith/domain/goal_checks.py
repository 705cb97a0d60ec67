"""The rules a new or changed goal must meet, as field violations (INVALID_ARGUMENT).

- `kind`: one of goal_progress.KINDS.
- `exercise_id`: required for strength goals (an exercise of the catalog measured in reps, so
  it has a one-rep max), refused for the other kinds.
- `target_date`: after the user's today, at most MAX_YEARS_AHEAD years ahead.
- `target_value`: within the kind's sensible range, and on the far side of the current value in
  the goal's direction (a weight-loss target below the current weight, the others above).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fitcore.errors import ServiceError, Validator
from monolith.domain import goal_progress as gp
from monolith.domain.catalog import CatalogSnapshot
from monolith.domain.common import parse_day

# A target date at most this many years ahead.
MAX_YEARS_AHEAD = 5


@dataclass(frozen=True)
class NewGoal:
    kind: str
    target_value: float
    target_date: str
    exercise_id: int = 0


@dataclass(frozen=True)
class GoalChanges:
    """None: not changed."""

    target_value: float | None = None
    target_date: str | None = None


def years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def check_kind(v: Validator, kind: str) -> gp.Kind | None:
    found = gp.KINDS.get(kind)
    v.check(found is not None, "kind", f"must be one of {', '.join(gp.KINDS)}")
    return found


def check_exercise(v: Validator, catalog: CatalogSnapshot, kind: str, exercise_id: int) -> None:
    if kind != "strength":
        v.check(exercise_id == 0, "exercise_id", "is only for strength goals")
        return
    if not v.check(exercise_id > 0, "exercise_id", "is required for strength goals"):
        return
    exercise = catalog.by_id.get(exercise_id)
    if v.check(exercise is not None, "exercise_id", f"unknown exercise {exercise_id}"):
        assert exercise is not None
        v.check(
            exercise.measure == "reps",
            "exercise_id",
            f"{exercise.name} is not measured in reps: it has no one-rep max",
        )


def check_date(v: Validator, raw: str | None, today: date) -> date | None:
    """The target date (None when not given or not a date), checked against the user's today."""
    if raw is None:
        return None
    try:
        day = parse_day(raw, "target_date")
    except ServiceError:
        v.add("target_date", "must be a date YYYY-MM-DD")
        return None
    v.check(day > today, "target_date", f"must be after today ({today.isoformat()})")
    v.check(
        day <= years_after(today, MAX_YEARS_AHEAD),
        "target_date",
        f"must be at most {MAX_YEARS_AHEAD} years ahead",
    )
    return day


def check_range(v: Validator, kind: gp.Kind, target: float) -> bool:
    return v.check(
        kind.low <= target <= kind.high,
        "target_value",
        f"must be between {kind.low:g} and {kind.high:g} {kind.unit}",
    )


def check_direction(v: Validator, kind: gp.Kind, target: float, current: float) -> None:
    """A target the current value already reaches is no goal."""
    below = kind.direction == gp.DOWN
    v.check(
        not gp.reached(current, target, kind.direction),
        "target_value",
        f"must be {'below' if below else 'above'} your current {kind.measure} "
        f"({current:g} {kind.unit})",
    )
