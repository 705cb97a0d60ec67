"""The training events (fitcore.outbox, adr/10-real-time.md), each written in the transaction of
the change that causes it:

- PERSONAL_RECORD: a newly logged session set (not the replay of one: LogSet is idempotent)
  whose estimated 1RM (Epley, `fitrules.strength`) beats the best of every earlier loaded set
  of that exercise the user did themselves; previous 0 = the first loaded set of it.
- STREAK: the user trained today (their time zone) and that makes 2 or more consecutive days
  of training (the definition of GetStats' streak: `workout_rules.streak_days` over session
  sets and logged exercises), sent at most once per user and day (`users.last_streak_day`,
  claimed with a conditional UPDATE so two concurrent trainings cannot both send it; run it
  after the goals' hook, which locks the profile: UpdateProfile locks the profile, then the
  user row, and the same order everywhere keeps PostgreSQL from deadlocking).
- SESSION_ENDED: a session ended by EndSession or closed after 4 hours (`auto_closed`).
- SET_LOGGED activity (core NATS, for live group sessions): every newly logged set.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fitcore.clock import Clock
from fitcore.outbox import add_activity, add_event
from fitcore.timestamps import timestamp
from fitrules.strength import MAX_RELIABLE_REPS, epley_1rm
from monolith.domain.common import user_today
from monolith.domain.goal_data import DONE_SOURCES
from monolith.domain.workout_rules import streak_days
from monolith.models import HistoryRow, UserRow, WorkoutSessionRow

# A new estimate must beat the old one by more than float noise to be a record.
_EPSILON = 1e-9


def set_logged(s: Session, new: HistoryRow, name: str) -> None:
    """SET_LOGGED activity for the newly logged set `new` (exercise `name`)."""
    add_activity(
        s,
        new.user_id,
        groups_pb2.SetLogged(
            session_id=new.session_id or 0,
            set_id=new.id,
            exercise_id=new.exercise_id,
            exercise_name=name,
            reps=new.reps,
            weight=new.weight_kg,
            duration_seconds=new.duration_seconds,
            rpe=new.rpe,
        ),
    )


def personal_record(s: Session, new: HistoryRow, name: str, now: datetime) -> None:
    """PERSONAL_RECORD when the new set `new` beats the user's best estimated 1RM for its
    exercise (sets without a load, or with more reps than Epley is reliable for, never do)."""
    e1rm = epley_1rm(new.weight_kg, new.reps)
    if e1rm <= 0:
        return
    h = HistoryRow
    heaviest = s.execute(
        select(h.reps, func.max(h.weight_kg))
        .where(
            h.user_id == new.user_id,
            h.exercise_id == new.exercise_id,
            h.source.in_(DONE_SOURCES),
            h.reps.between(1, MAX_RELIABLE_REPS),
            h.weight_kg > 0,
            h.id != new.id,
        )
        .group_by(h.reps)
    )
    # Epley grows with the load at a fixed rep count: the best is among the heaviest per reps.
    previous = max((epley_1rm(kg, reps) for reps, kg in heaviest), default=0.0)
    if e1rm <= previous + _EPSILON:
        return
    payload = events_pb2.PersonalRecord(
        exercise_id=new.exercise_id,
        exercise_name=name,
        estimated_one_rep_max=round(e1rm, 1),
        previous_estimated_one_rep_max=round(previous, 1),
        reps=new.reps,
        weight=new.weight_kg,
        set_id=new.id,
        session_id=new.session_id or 0,
    )
    ev = events_pb2.WatchEventsResponse(
        type="PERSONAL_RECORD", time=timestamp(now), personal_record=payload
    )
    add_event(s, new.user_id, ev)


def streak(s: Session, user_id: int, today: date, now: datetime) -> None:
    """STREAK when the user has trained on `today` (their day at `now`) and that makes a
    streak of 2+ days, unless one was sent for `today` already."""
    sent = s.scalar(select(UserRow.last_streak_day).where(UserRow.id == user_id))
    if sent is not None and sent >= today:
        return
    # Most calls end here, cheaply (two days by the (user_id, day) index): no training today
    # (a past day was logged: the streak is told when today's training extends it), or none
    # yesterday (no streak). The whole history is read once per user and day at most.
    recent = set(
        s.scalars(
            select(HistoryRow.day)
            .distinct()
            .where(
                HistoryRow.user_id == user_id,
                HistoryRow.source.in_(DONE_SOURCES),
                HistoryRow.day.in_([today, today - timedelta(days=1)]),
            )
        )
    )
    if len(recent) < 2:
        return
    days = set(
        s.scalars(
            select(HistoryRow.day)
            .distinct()
            .where(
                HistoryRow.user_id == user_id,
                HistoryRow.source.in_(DONE_SOURCES),
                HistoryRow.day <= today,
            )
        )
    )
    count = streak_days(days, today)
    claimed = s.execute(
        update(UserRow)
        .where(
            UserRow.id == user_id,
            or_(UserRow.last_streak_day.is_(None), UserRow.last_streak_day < today),
        )
        .values(last_streak_day=today)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return  # a concurrent training of the same day sent it
    payload = events_pb2.Streak(days=count, day=today.isoformat())
    add_event(
        s,
        user_id,
        events_pb2.WatchEventsResponse(type="STREAK", time=timestamp(now), streak=payload),
    )


class Streaks:
    """`streak` as a hook after other training (`monolith.domain.history`'s logged exercises,
    `common.AfterUserData`), on the service's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def after_training(self, s: Session, user_id: int) -> None:
        now = self._clock.now()
        streak(s, user_id, user_today(s, user_id, now), now)


def session_ended(s: Session, row: WorkoutSessionRow, now: datetime) -> None:
    """SESSION_ENDED for `row`, whose totals were just stored."""
    payload = events_pb2.SessionEnded(
        session_id=row.id,
        duration_seconds=row.duration_seconds,
        calories=round(row.calories),
        volume_kg=row.volume_kg,
        set_count=row.set_count,
        auto_closed=row.auto_closed,
    )
    ev = events_pb2.WatchEventsResponse(
        type="SESSION_ENDED", time=timestamp(now), session_ended=payload
    )
    add_event(s, row.user_id, ev)
