"""Progress towards a fitness goal: the kinds of goal and the maths of their progress.

Pure functions over plain numbers (no database, no clock): how much of the way from the start
value to the target is done, whether the target is reached, and when the trend of the recent
data reaches it (an ordinary least-squares line through the data points, with x in days from
the start of the user's today). `monolith.domain.goal_data` measures the points,
`monolith.domain.goals` keeps the goals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Final

# Whether a goal's value has to go up (+1) or down (-1) to reach its target.
UP: Final = 1
DOWN: Final = -1

ACTIVE: Final = "ACTIVE"
ACHIEVED: Final = "ACHIEVED"
ABANDONED: Final = "ABANDONED"
EXPIRED: Final = "EXPIRED"
STATUSES: Final = (ACTIVE, ACHIEVED, ABANDONED, EXPIRED)


@dataclass(frozen=True)
class Kind:
    """One kind of goal: what is measured, in which unit, which way, and the sensible range of
    a target."""

    name: str
    measure: str
    unit: str
    direction: int
    low: float
    high: float


# Body weight 20-400 kg: the range the profile and body metrics accept (monolith.domain.
# profiles). Strength 1-1000 kg: the heaviest load the exercise history accepts. Endurance: at
# most every minute of a week (7 x 24 x 60 = 10080).
KINDS: Final[MappingProxyType[str, Kind]] = MappingProxyType(
    {
        "weight_loss": Kind("weight_loss", "body weight", "kg", DOWN, 20.0, 400.0),
        "muscle_gain": Kind("muscle_gain", "body weight", "kg", UP, 20.0, 400.0),
        "strength": Kind("strength", "estimated 1RM", "kg", UP, 1.0, 1000.0),
        "endurance": Kind("endurance", "training minutes per week", "min/week", UP, 1.0, 10080.0),
    }
)
WEIGHT_KINDS: Final = frozenset({"weight_loss", "muscle_gain"})

# The data each trend is fitted to (days back from today) and what "current" means.
WEIGHT_TREND_DAYS: Final = 28  # one point per body metric of the last 4 weeks
STRENGTH_CURRENT_DAYS: Final = 28  # current = best estimated 1RM of the last 4 weeks
STRENGTH_TREND_DAYS: Final = 56  # one point per day (its best estimated 1RM), last 8 weeks
ENDURANCE_WINDOW_DAYS: Final = 7  # current = training minutes of the last 7 days
ENDURANCE_TREND_WEEKS: Final = 4  # one point per 7-day window, last 4 of them
# Fewer points than this make no trend worth showing (a line through 2 points is any line).
MIN_TREND_POINTS: Final = 3
# A projection further out than this is a trend too flat to mean anything: none is given.
MAX_PROJECTION_DAYS: Final = 3653  # ~10 years, twice the furthest target date allowed


@dataclass(frozen=True)
class Progress:
    percent: float
    on_track: bool
    projected_date: date | None


def reached(current: float, target: float, direction: int) -> bool:
    """True when `current` is at or beyond `target` in the goal's direction."""
    return current <= target if direction == DOWN else current >= target


def percent_done(start: float, current: float, target: float, direction: int) -> float:
    """How much of the way from `start` to `target` is done, 0-100 to one decimal (moving away
    from the target counts as 0, going past it as 100)."""
    span = target - start
    if span == 0:
        return 100.0 if reached(current, target, direction) else 0.0
    return round(min(100.0, max(0.0, (current - start) * 100.0 / span)), 1)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares line `y = intercept + slope · x` through the points: (intercept, slope);
    None when the points cannot define one (fewer than 2, or all at the same x)."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return mean_y - slope * mean_x, slope


def has_trend(points: Sequence[tuple[float, float]]) -> bool:
    """Whether the points make a trend worth judging a goal by (see MIN_TREND_POINTS)."""
    return len(points) >= MIN_TREND_POINTS and fit_line(points) is not None


def days_to_target(
    points: Sequence[tuple[float, float]], target: float, direction: int
) -> float | None:
    """Days from the start of today until the trend line reaches `target` (0 when the line is
    already past it); None with fewer than MIN_TREND_POINTS points, a flat line, a trend going
    the wrong way, or one that would take more than MAX_PROJECTION_DAYS."""
    if len(points) < MIN_TREND_POINTS:
        return None
    line = fit_line(points)
    if line is None:
        return None
    intercept, slope = line
    if slope * direction <= 0:
        return None
    days = (target - intercept) / slope
    if not math.isfinite(days) or days > MAX_PROJECTION_DAYS:
        return None
    return max(0.0, days)


def projected_date(
    points: Sequence[tuple[float, float]], target: float, direction: int, today: date
) -> date | None:
    """The user's day on which the trend reaches `target` (see `days_to_target`)."""
    days = days_to_target(points, target, direction)
    if days is None:
        return None
    return today + timedelta(days=math.floor(days))


def progress(
    kind: Kind,
    status: str,
    start: float,
    current: float,
    target: float,
    points: Sequence[tuple[float, float]],
    today: date,
    target_date: date,
) -> Progress:
    """A goal's progress. An ACHIEVED goal is done (100 %, on track); an ABANDONED or EXPIRED
    one shows how far it got, without a projection; an ACTIVE one is on track when the trend
    reaches the target by the target date."""
    if status == ACHIEVED:
        return Progress(100.0, True, None)
    percent = percent_done(start, current, target, kind.direction)
    if status != ACTIVE:
        return Progress(percent, False, None)
    if reached(current, target, kind.direction):
        return Progress(percent, True, None)
    projected = projected_date(points, target, kind.direction, today)
    return Progress(percent, projected is not None and projected <= target_date, projected)
