"""Logging sets in a workout session.

A set IS exercise history: one `exercise_history` row (source "session", `sets` 1, the user's
local day), so ListHistory, yesterday's exclusion, recovery and progression see it with no
second table to keep in step.

LogSet is idempotent on the client's `client_set_id` within a session: a unique constraint on
(session_id, client_set_id) holds it even for concurrent retries, whose loser reads back the
stored set. The same id with other values is a client bug, answered ALREADY_EXISTS.

A new set (never its replay) is also SET_LOGGED activity for the user's live group sessions,
and a PERSONAL_RECORD or STREAK event when it makes one (`workout_events`), in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import AlreadyExists, FailedPrecondition, Validator
from fitrules.days import local_day
from monolith.domain import workout_events
from monolith.domain.catalog import Catalog
from monolith.domain.common import user_zone
from monolith.domain.workout_rules import MAX_SETS_PER_SESSION, TIMED_MEASURES
from monolith.domain.workout_store import ACTIVE, SOURCE_SESSION, SessionStore, SetView
from monolith.models import HistoryRow


@dataclass(frozen=True)
class SetInput:
    exercise_id: int
    client_set_id: str
    reps: int = 0
    weight_kg: float = 0.0
    duration_seconds: int = 0
    rpe: float = 0.0


def _same_set(row: HistoryRow, given: SetInput) -> bool:
    stored = (row.exercise_id, row.reps, row.weight_kg, row.duration_seconds, row.rpe)
    return stored == (
        given.exercise_id,
        given.reps,
        given.weight_kg,
        given.duration_seconds,
        given.rpe,
    )


def _by_client_id(s: Session, session_id: int, client_set_id: str) -> HistoryRow | None:
    return s.scalar(
        select(HistoryRow).where(
            HistoryRow.session_id == session_id, HistoryRow.client_set_id == client_set_id
        )
    )


class WorkoutSets:
    def __init__(self, db: Database, catalog: Catalog, store: SessionStore, clock: Clock) -> None:
        self._db = db
        self._catalog = catalog
        self._store = store
        self._clock = clock

    def log(self, user_id: int, session_id: int, given: SetInput) -> tuple[SetView, bool]:
        """The set, logged now (created True), or the one logged before under the same
        client_set_id (created False, also once the session has ended)."""
        now = self._clock.now()
        self._check(given)
        self._store.settle(user_id, now)
        try:
            with self._db.transaction() as s:
                # Locked: one session's sets and its end take turns (the cap, the totals).
                row = self._store.owned(s, user_id, session_id, lock=True)
                existing = _by_client_id(s, session_id, given.client_set_id)
                if existing is not None:
                    return self._repeat(existing, given), False
                if row.status != ACTIVE:
                    raise FailedPrecondition(
                        f"session {session_id} has ended: start a new one (POST /v1/sessions)",
                        reason="SESSION_NOT_ACTIVE",
                    )
                count = s.scalar(select(func.count()).where(HistoryRow.session_id == session_id))
                if (count or 0) >= MAX_SETS_PER_SESSION:
                    raise FailedPrecondition(
                        f"a session holds at most {MAX_SETS_PER_SESSION} sets: start a new one",
                        reason="SESSION_FULL",
                    )
                new = HistoryRow(
                    user_id=user_id,
                    exercise_id=given.exercise_id,
                    performed_at=now,
                    day=local_day(now, user_zone(s, user_id)),
                    sets=1,
                    reps=given.reps,
                    weight_kg=given.weight_kg,
                    duration_seconds=given.duration_seconds,
                    rest_seconds=0,
                    rpe=given.rpe,
                    note="",
                    source=SOURCE_SESSION,
                    position=0,
                    session_id=session_id,
                    client_set_id=given.client_set_id,
                    created_at=now,
                )
                s.add(new)
                s.flush()
                view = self._store.set_view(new)
                workout_events.set_logged(s, new, view.exercise_name)
                workout_events.personal_record(s, new, view.exercise_name, now)
                self._store.after_training(s, user_id)
                # After the goals: their profile lock first, then the user row (the order
                # UpdateProfile takes them in), so the two cannot deadlock.
                workout_events.streak(s, user_id, new.day, now)
                return view, True
        except IntegrityError:
            # A concurrent retry of the same set was stored first: answer with that one.
            with self._db.transaction(write=False) as s:
                existing = _by_client_id(s, session_id, given.client_set_id)
            if existing is None:
                raise
            return self._repeat(existing, given), False

    def _repeat(self, existing: HistoryRow, given: SetInput) -> SetView:
        if not _same_set(existing, given):
            raise AlreadyExists(
                f"client_set_id {given.client_set_id!r} was already used for another set "
                "of this session",
                reason="CLIENT_SET_ID_REUSED",
            )
        return self._store.set_view(existing)

    def _check(self, given: SetInput) -> None:
        """The rules that need the catalog (the contract's field limits were checked before)."""
        v = Validator()
        exercise = self._catalog.snapshot().by_id.get(given.exercise_id)
        v.check(exercise is not None, "exercise_id", f"unknown exercise {given.exercise_id}")
        v.check(
            given.reps > 0 or given.duration_seconds > 0,
            "reps",
            "give reps, or duration_seconds for timed work",
        )
        if exercise is not None and exercise.measure in TIMED_MEASURES:
            v.check(
                given.duration_seconds > 0,
                "duration_seconds",
                f"{exercise.name} is timed: give duration_seconds",
            )
        v.check(bool(given.client_set_id), "client_set_id", "is required")
        v.raise_if_any()
