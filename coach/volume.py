"""The user's week: sets per muscle group against the goal's weekly target, training days
against the user's quota, and the planned rest days that follow (pure functions).

Weeks run Monday to Sunday in the user's time zone. Only work the user did counts (logged
exercises and session sets), never a WOD that was merely served. Numbers: `coach.prescription`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta, tzinfo

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from coach.context import Exercises, PastEntry, entry_day, primaries
from fitrules.days import week_start


def weekly_sets(
    history: Sequence[PastEntry], exercises: Exercises, today: date, tz: tzinfo
) -> dict[int, int]:
    """Sets per primary muscle group id in the user's week of `today` (today included)."""
    start = week_start(today)
    sets: dict[int, int] = defaultdict(int)
    for h in history:
        exercise = exercises.get(h.exercise_id)
        if exercise is None or not h.is_work or not start <= entry_day(h, tz) <= today:
            continue
        for m in primaries(exercise):
            sets[m.id] += h.set_count
    return dict(sets)


def shortfall(e: catalog_pb2.Exercise, week: Mapping[int, int], target: int) -> tuple[float, int]:
    """How far (0-1) the exercise's least-trained primary group is from the weekly target, and
    that group's id (0 when none is short)."""
    if target <= 0:
        return 0.0, 0
    best = (0.0, 0)
    for m in primaries(e):
        short = max(0.0, (target - week.get(m.id, 0)) / target)
        if short > best[0]:
            best = (short, m.id)
    return best


def volume_note(group: str, done: int, target: int) -> str:
    return f" {group} has {done} of {target} weekly sets so far."


def training_days(history: Sequence[PastEntry], tz: tzinfo) -> set[date]:
    return {entry_day(h, tz) for h in history if h.is_work}


def weekly_quota(days_per_week: int) -> int:
    return days_per_week if 1 <= days_per_week <= 7 else rx.DEFAULT_TRAINING_DAYS


def rest_day_note(
    history: Sequence[PastEntry], today: date, tz: tzinfo, days_per_week: int
) -> str | None:
    """Why today is a planned rest day, or None when it is a training day.

    Rest when this week's training days before today reached the quota, or when the user trained
    on each of the last REST_AFTER_DAYS days and the days left in the week after today still
    allow the quota. Deterministic for a user and day (history before today decides)."""
    quota = weekly_quota(days_per_week)
    trained = training_days(history, tz)
    this_week = {d for d in trained if week_start(today) <= d < today}
    if len(this_week) >= quota:
        return (
            f"Planned rest day: you trained {len(this_week)} days this week, your plan is"
            f" {quota}. Light mobility only, to recover for next week."
        )
    streak = all(today - timedelta(days=k) in trained for k in range(1, rx.REST_AFTER_DAYS + 1))
    days_left = 6 - today.weekday()  # days of this week after today
    if streak and quota - len(this_week) <= days_left:
        return (
            f"Planned rest day: you trained on each of the last {rx.REST_AFTER_DAYS} days and"
            f" your {quota} days this week still fit after today. Light mobility only."
        )
    return None


def training_day_note(
    history: Sequence[PastEntry], today: date, tz: tzinfo, days_per_week: int
) -> str:
    quota = weekly_quota(days_per_week)
    done = len({d for d in training_days(history, tz) if week_start(today) <= d < today})
    return f"Training day {done + 1} of {quota} this week."
