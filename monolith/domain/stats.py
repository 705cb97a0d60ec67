"""Training statistics over the user's current week, month or year (GetStats).

Periods are the user's calendar days (the profile's time zone). The database aggregates what it
can (session totals, sets per day and exercise, the heaviest load per exercise and rep count);
the rules that need the calendar or the catalog run over those few rows in
`monolith.domain.workout_rules`. A fixed number of queries whatever the user's history.

What counts as training: sets logged in sessions and exercises the user logged themselves
(history sources "session" and "logged"), never the WODs the user was merely served.

How far back statistics reach is the user's plan's (`history_weeks`: free 4, premium 0 =
unlimited; fitcore.entitlements in the servicer): a limited plan sees its last weeks only,
the period's start, the streak and the personal records alike (`history_floor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta, tzinfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import Validator
from fitrules.days import UTC_NAME, day_bounds, day_start, local_day
from fitrules.strength import MAX_RELIABLE_REPS
from monolith.domain.catalog import Catalog
from monolith.domain.common import user_zone
from monolith.domain.history import SOURCE_LOGGED
from monolith.domain.workout_rules import (
    DEFAULT_PERIOD,
    PERIODS,
    Record,
    best_records,
    period_start,
    streak_days,
    weekly_muscle_sets,
)
from monolith.domain.workout_store import ENDED, SOURCE_SESSION, SessionStore
from monolith.models import HistoryRow, WorkoutSessionRow

TRAINING_SOURCES = (SOURCE_SESSION, SOURCE_LOGGED)


@dataclass(frozen=True)
class RecordView:
    exercise_id: int
    exercise_name: str
    estimated_1rm_kg: float
    weight_kg: float
    reps: int
    day: date
    set_in_period: bool


@dataclass(frozen=True)
class MuscleWeekView:
    week_start: date
    muscle_group_id: int
    muscle_group_name: str
    sets: int


@dataclass(frozen=True)
class StatsView:
    period: str
    start_day: date
    end_day: date
    time_zone: str
    sessions: int
    duration_seconds: int
    calories: int
    volume_kg: float
    streak_days: int
    personal_records: tuple[RecordView, ...]
    muscle_group_sets: tuple[MuscleWeekView, ...]
    history_limited_to_weeks: int = 0  # 0 = unlimited


def history_floor(today: date, weeks: int) -> date:
    """The first day a plan limited to `weeks` weeks of history shows (the last 7 x weeks days,
    today included); date.min when unlimited (weeks 0)."""
    return today - timedelta(days=7 * weeks - 1) if weeks > 0 else date.min


class Stats:
    def __init__(self, db: Database, catalog: Catalog, store: SessionStore, clock: Clock) -> None:
        self._db = db
        self._catalog = catalog
        self._store = store
        self._clock = clock

    def get(self, user_id: int, period: str, history_weeks: int = 0) -> StatsView:
        period = period or DEFAULT_PERIOD
        v = Validator()
        v.check(period in PERIODS, "period", f"must be one of {', '.join(PERIODS)}")
        v.raise_if_any()
        now = self._clock.now()
        self._store.settle(user_id, now)  # a session left open counts once it is closed
        with self._db.transaction(write=False) as s:
            tz = user_zone(s, user_id)
            today = local_day(now, tz)
            floor = history_floor(today, history_weeks)
            start = max(period_start(period, today), floor)
            count, duration, calories, volume = self._session_totals(s, user_id, tz, start, today)
            return StatsView(
                period=period,
                start_day=start,
                end_day=today,
                time_zone=str(getattr(tz, "key", UTC_NAME)),
                sessions=count,
                duration_seconds=duration,
                calories=round(calories),
                volume_kg=round(volume, 3),
                streak_days=streak_days(self._training_days(s, user_id, floor, today), today),
                personal_records=self._records(s, user_id, (floor, start), today),
                muscle_group_sets=self._muscle_weeks(s, user_id, start, today),
                history_limited_to_weeks=max(history_weeks, 0),
            )

    @staticmethod
    def _session_totals(
        s: Session, user_id: int, tz: tzinfo, start: date, today: date
    ) -> tuple[int, int, float, float]:
        """Ended sessions that started within the period, and their stored totals."""
        begin, end = day_start(start, tz), day_bounds(today, tz)[1]
        count, duration, calories, volume = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(WorkoutSessionRow.duration_seconds), 0),
                func.coalesce(func.sum(WorkoutSessionRow.calories), 0.0),
                func.coalesce(func.sum(WorkoutSessionRow.volume_kg), 0.0),
            ).where(
                WorkoutSessionRow.user_id == user_id,
                WorkoutSessionRow.status == ENDED,
                WorkoutSessionRow.started_at >= begin,
                WorkoutSessionRow.started_at < end,
            )
        ).one()
        return int(count), int(duration), float(calories), float(volume)

    @staticmethod
    def _training_days(s: Session, user_id: int, floor: date, today: date) -> list[date]:
        return list(
            s.scalars(
                select(HistoryRow.day)
                .distinct()
                .where(
                    HistoryRow.user_id == user_id,
                    HistoryRow.source.in_(TRAINING_SOURCES),
                    HistoryRow.day >= floor,
                    HistoryRow.day <= today,
                )
            )
        )

    def _records(
        self, s: Session, user_id: int, since: tuple[date, date], today: date
    ) -> tuple[RecordView, ...]:
        """The record of each exercise trained in the period (`since`: the plan's history
        floor and the period's start), over all it shows, heaviest first.

        The database keeps only the heaviest load per (exercise, reps) and the first day it
        was lifted: Epley grows with the load at a fixed rep count, so the record is among
        those rows (at most MAX_RELIABLE_REPS per exercise)."""
        h = HistoryRow
        floor, start = since
        mine = (h.user_id == user_id, h.source.in_(TRAINING_SOURCES), h.day >= floor)
        trained = select(h.exercise_id).where(*mine, h.day >= start, h.day <= today)
        heaviest = (
            select(h.exercise_id, h.reps, func.max(h.weight_kg).label("weight_kg"))
            .where(
                *mine,
                h.exercise_id.in_(trained),
                h.reps >= 1,
                h.reps <= MAX_RELIABLE_REPS,
                h.weight_kg > 0,
            )
            .group_by(h.exercise_id, h.reps)
            .subquery()
        )
        rows = s.execute(
            select(h.exercise_id, h.reps, h.weight_kg, func.min(h.day))
            .join(
                heaviest,
                and_(
                    h.exercise_id == heaviest.c.exercise_id,
                    h.reps == heaviest.c.reps,
                    h.weight_kg == heaviest.c.weight_kg,
                ),
            )
            .where(*mine)
            .group_by(h.exercise_id, h.reps, h.weight_kg)
        )
        records = best_records((e, r, w, d) for e, r, w, d in rows)
        ordered = sorted(records.values(), key=lambda r: (-r.estimated_1rm_kg, r.exercise_id))
        return tuple(self._record_view(r, start) for r in ordered)

    def _record_view(self, record: Record, start: date) -> RecordView:
        exercise = self._catalog.snapshot().by_id.get(record.exercise_id)
        return RecordView(
            exercise_id=record.exercise_id,
            exercise_name=exercise.name if exercise else "",
            estimated_1rm_kg=round(record.estimated_1rm_kg, 1),
            weight_kg=record.weight_kg,
            reps=record.reps,
            day=record.day,
            set_in_period=record.day >= start,
        )

    def _muscle_weeks(
        self, s: Session, user_id: int, start: date, today: date
    ) -> tuple[MuscleWeekView, ...]:
        """Sets per week and primary muscle group; a session set counts once (its `sets` is
        1), a logged entry as many times as its `sets`."""
        h = HistoryRow
        rows = s.execute(
            select(h.day, h.exercise_id, func.sum(h.sets))
            .where(
                h.user_id == user_id,
                h.source.in_(TRAINING_SOURCES),
                h.day >= start,
                h.day <= today,
            )
            .group_by(h.day, h.exercise_id)
        )
        catalog = self._catalog.snapshot()
        primaries = {
            e.id: [m.id for m in e.muscle_groups if m.is_primary] for e in catalog.exercises
        }
        names = {g.id: g.name for g in catalog.muscle_groups}
        counted = weekly_muscle_sets(((d, e, int(n or 0)) for d, e, n in rows), primaries).items()
        ordered = sorted(counted, key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        return tuple(
            MuscleWeekView(week, group, names.get(group, ""), sets)
            for (week, group), sets in ordered
        )
