"""What the user's recorded data says about their goals: the current value of each measure
and the points its trend is fitted to.

- Body weight (weight_loss, muscle_gain): the latest body metric (else the profile's weight);
  trend: one point per body metric of the last WEIGHT_TREND_DAYS days.
- Strength: the best estimated 1RM (Epley, `fitrules.strength.epley_1rm`) of one exercise over
  the sets the user did themselves (history source "logged" or "session", with a load and
  1-12 reps) of the last STRENGTH_CURRENT_DAYS days; trend: the best per day over the last
  STRENGTH_TREND_DAYS days.
- Endurance: training minutes of the last 7 of the user's days (ENDED workout sessions'
  durations plus the durations of logged exercises; a session's own sets are inside its
  duration, so they are not counted again); trend: the same sum for each of the last 4 such
  7-day windows that ended after the user registered (weeks before the account say nothing).

x of a point is in days from the start of the user's today (negative in the past). Each
measure is read once per transaction (`Readings` caches), so a list of goals costs a few
queries, not a few per goal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fitrules.days import day_start, local_day
from fitrules.strength import MAX_RELIABLE_REPS, epley_1rm
from monolith.domain.catalog import CatalogSnapshot
from monolith.domain.common import as_utc
from monolith.domain.goal_progress import (
    ENDURANCE_TREND_WEEKS,
    ENDURANCE_WINDOW_DAYS,
    STRENGTH_CURRENT_DAYS,
    STRENGTH_TREND_DAYS,
    WEIGHT_KINDS,
    WEIGHT_TREND_DAYS,
)
from monolith.models import BodyMetricRow, HistoryRow, ProfileRow, UserRow, WorkoutSessionRow

# History rows the user did themselves (a served WOD's rows are only a plan).
DONE_SOURCES = ("logged", "session")
SESSION_ENDED = "ENDED"
DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class Reading:
    """One measure at `now`: `current` is None when nothing was ever measured (a body weight
    nobody recorded); `at` is when the current value was measured (None: now)."""

    current: float | None
    at: datetime | None
    points: tuple[tuple[float, float], ...]
    basis: str


class Readings:
    """The measures of one user's goals, read in the caller's transaction."""

    def __init__(
        self,
        s: Session,
        user_id: int,
        now: datetime,
        tz: tzinfo,
        catalog: CatalogSnapshot,
        exercise_ids: Iterable[int] = (),
    ) -> None:
        self._s = s
        self._user_id = user_id
        self._now = now
        self.tz = tz
        self._catalog = catalog
        self.today = local_day(now, tz)
        self._today_start = day_start(self.today, tz)
        self._wanted = set(exercise_ids)
        self._weight: Reading | None = None
        self._endurance: Reading | None = None
        self._strength: dict[int, Reading] = {}

    def want(self, exercise_ids: Iterable[int]) -> None:
        """Strength goals about to be read: their exercises are read in one query."""
        self._wanted.update(exercise_ids)

    def of(self, kind: str, exercise_id: int | None) -> Reading:
        if kind in WEIGHT_KINDS:
            return self.weight()
        if kind == "strength":
            return self.strength(exercise_id or 0)
        return self.endurance()

    def _x(self, moment: datetime) -> float:
        return (as_utc(moment) - self._today_start).total_seconds() / DAY_SECONDS

    # -- body weight --------------------------------------------------------------------

    def weight(self) -> Reading:
        if self._weight is None:
            self._weight = self._read_weight()
        return self._weight

    def _read_weight(self) -> Reading:
        s, uid = self._s, self._user_id
        latest = s.execute(
            select(BodyMetricRow.measured_at, BodyMetricRow.weight_kg)
            .where(BodyMetricRow.user_id == uid)
            .order_by(BodyMetricRow.measured_at.desc(), BodyMetricRow.id.desc())
            .limit(1)
        ).first()
        since = self._now - timedelta(days=WEIGHT_TREND_DAYS)
        points = tuple(
            (self._x(at), kg)
            for at, kg in s.execute(
                select(BodyMetricRow.measured_at, BodyMetricRow.weight_kg)
                .where(BodyMetricRow.user_id == uid, BodyMetricRow.measured_at >= since)
                .order_by(BodyMetricRow.measured_at, BodyMetricRow.id)
            )
        )
        trend = f"trend of {len(points)} body metrics of the last {WEIGHT_TREND_DAYS} days"
        if latest is not None:
            at, kg = as_utc(latest[0]), latest[1]
            day = local_day(at, self.tz).isoformat()
            return Reading(kg, at, points, f"body weight: latest body metric ({day}); {trend}")
        profile_kg = s.scalar(select(ProfileRow.weight_kg).where(ProfileRow.user_id == uid))
        if not profile_kg:
            return Reading(None, None, (), "body weight: none recorded")
        return Reading(profile_kg, None, points, f"body weight: the profile's weight; {trend}")

    # -- strength -----------------------------------------------------------------------

    def strength(self, exercise_id: int) -> Reading:
        if exercise_id not in self._strength:
            self._read_strength(self._wanted - set(self._strength) | {exercise_id})
        return self._strength[exercise_id]

    def _read_strength(self, exercise_ids: set[int]) -> None:
        since = self._now - timedelta(days=STRENGTH_TREND_DAYS)
        rows = self._s.execute(
            select(
                HistoryRow.exercise_id,
                HistoryRow.performed_at,
                HistoryRow.weight_kg,
                HistoryRow.reps,
            ).where(
                HistoryRow.user_id == self._user_id,
                HistoryRow.exercise_id.in_(sorted(exercise_ids)),
                HistoryRow.source.in_(DONE_SOURCES),
                HistoryRow.weight_kg > 0,
                HistoryRow.reps.between(1, MAX_RELIABLE_REPS),
                HistoryRow.performed_at >= since,
            )
        )
        sets: dict[int, list[tuple[datetime, float]]] = {i: [] for i in exercise_ids}
        for exercise_id, performed_at, kg, reps in rows:
            sets[exercise_id].append((as_utc(performed_at), epley_1rm(kg, reps)))
        for exercise_id, done in sets.items():
            self._strength[exercise_id] = self._strength_reading(exercise_id, done)

    def _strength_reading(self, exercise_id: int, done: list[tuple[datetime, float]]) -> Reading:
        best_per_day: dict[date, float] = {}
        for at, e1rm in done:
            day = local_day(at, self.tz)
            best_per_day[day] = max(e1rm, best_per_day.get(day, 0.0))
        points = tuple(
            (float((day - self.today).days), e1rm) for day, e1rm in sorted(best_per_day.items())
        )
        recent_since = self._now - timedelta(days=STRENGTH_CURRENT_DAYS)
        recent = [(e1rm, at) for at, e1rm in done if at >= recent_since]
        exercise = self._catalog.by_id.get(exercise_id)
        name = exercise.name if exercise else f"exercise {exercise_id}"
        basis = (
            f"estimated 1RM of {name} (Epley: weight x (1 + reps / 30), sets of 1-"
            f"{MAX_RELIABLE_REPS} reps): best of the last {STRENGTH_CURRENT_DAYS} days; trend "
            f"of the best per day over the last {STRENGTH_TREND_DAYS} days"
        )
        if not recent:
            return Reading(0.0, None, points, basis)
        e1rm, at = max(recent, key=lambda r: (r[0], r[1]))
        return Reading(e1rm, at, points, basis)

    # -- endurance ----------------------------------------------------------------------

    def endurance(self) -> Reading:
        if self._endurance is None:
            self._endurance = self._read_endurance()
        return self._endurance

    def _minutes(self, start: datetime, end: datetime) -> float:
        s, uid = self._s, self._user_id
        sessions = s.scalar(
            select(func.coalesce(func.sum(WorkoutSessionRow.duration_seconds), 0)).where(
                WorkoutSessionRow.user_id == uid,
                WorkoutSessionRow.status == SESSION_ENDED,
                WorkoutSessionRow.started_at >= start,
                WorkoutSessionRow.started_at < end,
            )
        )
        logged = s.scalar(
            select(func.coalesce(func.sum(HistoryRow.duration_seconds), 0)).where(
                HistoryRow.user_id == uid,
                HistoryRow.source == "logged",
                HistoryRow.performed_at >= start,
                HistoryRow.performed_at < end,
            )
        )
        return (int(sessions or 0) + int(logged or 0)) / 60.0

    def _read_endurance(self) -> Reading:
        registered = self._s.scalar(select(UserRow.created_at).where(UserRow.id == self._user_id))
        joined = as_utc(registered) if registered else self._now
        points: list[tuple[float, float]] = []
        current = 0.0
        for week in range(ENDURANCE_TREND_WEEKS):
            last_day = self.today - timedelta(days=week * ENDURANCE_WINDOW_DAYS)
            start = day_start(last_day - timedelta(days=ENDURANCE_WINDOW_DAYS - 1), self.tz)
            end = day_start(last_day + timedelta(days=1), self.tz)
            if week and end <= joined:
                break
            minutes = self._minutes(start, end)
            if week == 0:
                current = minutes
            points.append((float((last_day - self.today).days), minutes))
        basis = (
            f"training minutes of the last {ENDURANCE_WINDOW_DAYS} days (ended workout sessions "
            f"plus logged exercise durations); trend of the last {len(points)} such week(s)"
        )
        return Reading(current, None, tuple(reversed(points)), basis)
