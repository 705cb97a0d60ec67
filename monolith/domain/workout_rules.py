"""Pure rules of workout sessions and training statistics: the time and energy of a logged set,
a session's totals, streaks, statistics periods, weekly sets per muscle group and personal
records. No database, no clock: `monolith.domain.workouts` and `monolith.domain.stats` feed them
plain values, and tests/unit/test_workout_rules.py holds each rule down.

Sources (shared/domain-facts.md): energy = MET x 3.5 x kg / 200 x minutes (Compendium of
Physical Activities, 2011; `fitrules.energy`); a repetition takes about 3 s
(`fitrules.wod.SECONDS_PER_REP`); estimated 1RM by Epley (`fitrules.strength.epley_1rm`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from fitrules.energy import FORMULA, kcal
from fitrules.strength import epley_1rm
from fitrules.wod import SECONDS_PER_REP

# A session left open longer than this is closed with what was logged (the contract's 4 h).
AUTO_CLOSE_AFTER: Final = timedelta(hours=4)
# Sets one session may hold: far above any real workout, low enough to bound a session's work.
MAX_SETS_PER_SESSION: Final = 200
# A set's time counts the rest before it up to this much; a longer gap is a pause, not training.
MAX_SET_GAP: Final = timedelta(minutes=5)
# Measures of the catalog whose sets are timed (a hold, cardio): they need duration_seconds.
TIMED_MEASURES: Final = frozenset({"seconds", "minutes"})
PERIODS: Final = ("WEEK", "MONTH", "YEAR")
DEFAULT_PERIOD: Final = "WEEK"


@dataclass(frozen=True)
class SetWork:
    """What the energy and volume rules need of one logged set."""

    performed_at: datetime
    reps: int
    weight_kg: float
    duration_seconds: int
    met: float  # the exercise's Compendium MET (0 when it left the catalog: no energy)


@dataclass(frozen=True)
class Totals:
    duration_seconds: int
    calories: float
    volume_kg: float
    set_count: int


def work_seconds(reps: int, duration_seconds: int) -> float:
    """The set's own work: its duration when timed, else its reps at SECONDS_PER_REP each."""
    if duration_seconds > 0:
        return float(duration_seconds)
    return max(reps, 0) * SECONDS_PER_REP


def set_minutes(previous_at: datetime, one: SetWork) -> float:
    """Minutes a set stands for: the time since the previous set (or the session's start),
    capped at MAX_SET_GAP, and never less than the set's own work."""
    gap = max((one.performed_at - previous_at).total_seconds(), 0.0)
    gap = min(gap, MAX_SET_GAP.total_seconds())
    return max(gap, work_seconds(one.reps, one.duration_seconds)) / 60


def set_volume_kg(reps: int, weight_kg: float) -> float:
    return max(weight_kg, 0.0) * max(reps, 0)


def session_totals(
    started_at: datetime, ended_at: datetime, sets: Iterable[SetWork], body_weight_kg: float
) -> Totals:
    """Duration (ended - started), energy (Σ per set; 0 without a body weight), volume
    (Σ weight x reps) and set count of a session whose sets are given in the order logged."""
    previous = started_at
    calories = volume = 0.0
    count = 0
    for one in sets:
        if body_weight_kg > 0:
            calories += kcal(one.met, body_weight_kg, set_minutes(previous, one))
        volume += set_volume_kg(one.reps, one.weight_kg)
        previous = max(previous, one.performed_at)
        count += 1
    duration = max(int((ended_at - started_at).total_seconds()), 0)
    # Rounded to grams: sums of decimal loads must not show float noise (0.1 + 0.2).
    return Totals(duration, calories, round(volume, 3), count)


def calories_basis(body_weight_kg: float) -> str:
    """How a session's calories were (or could not be) computed."""
    if body_weight_kg <= 0:
        return "no body weight known: record one (POST /v1/profile/metrics) to get calories"
    per_set = (
        f"per set: its exercise's MET x the minutes since the previous set (at most "
        f"{int(MAX_SET_GAP.total_seconds() // 60)}, at least its duration or "
        f"{SECONDS_PER_REP:g} s a rep)"
    )
    return f"{FORMULA}; {per_set}; body weight {body_weight_kg:g} kg"


def streak_days(training_days: Iterable[date], today: date) -> int:
    """Consecutive days with training ending today, or ending yesterday when nothing was
    logged yet today (a streak is not broken before the day is over)."""
    days = set(training_days)
    day = today if today in days else today - timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= timedelta(days=1)
    return count


def period_start(period: str, today: date) -> date:
    """First day of the statistics period containing `today`: Monday, the 1st, or 1 January."""
    if period == "MONTH":
        return today.replace(day=1)
    if period == "YEAR":
        return today.replace(month=1, day=1)
    return today - timedelta(days=today.weekday())


def weekly_muscle_sets(
    rows: Iterable[tuple[date, int, int]], primaries: Mapping[int, Iterable[int]]
) -> dict[tuple[date, int], int]:
    """Sets per (Monday of the week, muscle group) from (day, exercise id, sets) rows: every
    set counts once for each muscle group that is a primary mover of its exercise."""
    out: dict[tuple[date, int], int] = defaultdict(int)
    for day, exercise_id, sets in rows:
        if sets <= 0:
            continue
        monday = day - timedelta(days=day.weekday())
        for group in primaries.get(exercise_id, ()):
            out[(monday, group)] += sets
    return dict(out)


@dataclass(frozen=True)
class Record:
    exercise_id: int
    estimated_1rm_kg: float
    weight_kg: float
    reps: int
    day: date


def best_records(candidates: Iterable[tuple[int, int, float, date]]) -> dict[int, Record]:
    """The best Epley estimate per exercise from (exercise id, reps, weight, day) sets; a tie
    goes to the set done first (the one that set the record). Sets outside Epley's reliable
    range (no load, reps beyond `fitrules.strength.MAX_RELIABLE_REPS`) do not count."""
    best: dict[int, Record] = {}
    for exercise_id, reps, weight, day in candidates:
        e1rm = epley_1rm(weight, reps)
        if e1rm <= 0:
            continue
        found = best.get(exercise_id)
        if (
            found is None
            or e1rm > found.estimated_1rm_kg
            or (e1rm == found.estimated_1rm_kg and day < found.day)
        ):
            best[exercise_id] = Record(exercise_id, e1rm, weight, reps, day)
    return best
