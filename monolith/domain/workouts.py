"""Workout sessions: start, end, read and list them, and close those left open.

A user has at most one ACTIVE session, held by the database (a partial unique index), so two
concurrent starts cannot both succeed: the loser's IntegrityError becomes the same
FAILED_PRECONDITION a sequential second start gets. The sets are exercise history rows
(`monolith.domain.workout_sets`).

A session left open longer than `AUTO_CLOSE_AFTER` is closed with what was logged: lazily,
before any RPC touches its user's sessions (`SessionStore.settle`), and in bulk by
`close_stale`, which a scheduler may run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import FailedPrecondition
from fitrules.days import local_day
from monolith.domain.common import newest_first_page, page_size, user_zone
from monolith.domain.workout_rules import AUTO_CLOSE_AFTER
from monolith.domain.workout_store import ACTIVE, SessionStore, SessionView
from monolith.models import ServedWodRow, WorkoutSessionRow

LIST_DEFAULT, LIST_MAX = 20, 100
# Sessions `close_stale` closes per call (per transaction) unless told otherwise.
CLOSE_BATCH = 500


def already_active(session_id: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"session {session_id} is already active: end it first "
        f"(POST /v1/sessions/{session_id}:end)",
        reason="SESSION_ALREADY_ACTIVE",
    )


class Workouts:
    def __init__(self, db: Database, store: SessionStore, clock: Clock) -> None:
        self._db = db
        self._store = store
        self._clock = clock

    def start(self, user_id: int, from_wod: bool) -> SessionView:
        """Start a session now; from today's served WOD (the user's day) when `from_wod`."""
        now = self._clock.now()
        self._store.settle(user_id, now)
        try:
            with self._db.transaction() as s:
                active = self._store.active_id(s, user_id)
                if active is not None:
                    raise already_active(active)
                today = local_day(now, user_zone(s, user_id))
                wod_id = None
                if from_wod:
                    # Never generated here: the WOD is the one the user was shown today.
                    wod_id = s.scalar(
                        select(ServedWodRow.id).where(
                            ServedWodRow.user_id == user_id, ServedWodRow.day == today
                        )
                    )
                    if wod_id is None:
                        raise FailedPrecondition(
                            "no WOD was served today: get today's WOD first: GET /v1/wod",
                            reason="NO_WOD_TODAY",
                        )
                row = WorkoutSessionRow(
                    user_id=user_id,
                    status=ACTIVE,
                    from_wod=from_wod,
                    wod_id=wod_id,
                    day=today,
                    started_at=now,
                    auto_closed=False,
                    duration_seconds=0,
                    calories=0.0,
                    volume_kg=0.0,
                    set_count=0,
                    body_weight_kg=0.0,
                )
                s.add(row)
                s.flush()  # a concurrent start's ACTIVE row makes this fail (unique index)
                return self._store.views(s, [row], now, with_sets=True)[0]
        except IntegrityError:
            with self._db.transaction(write=False) as s:
                active = self._store.active_id(s, user_id)
            if active is None:
                raise
            raise already_active(active) from None

    def end(self, user_id: int, session_id: int) -> SessionView:
        """End an active session now and store its totals; an ended one is returned as it is
        (a retried EndSession changes nothing)."""
        now = self._clock.now()
        self._store.settle(user_id, now)
        with self._db.transaction() as s:
            # Locked: a set logged concurrently lands before the totals or is refused.
            row = self._store.owned(s, user_id, session_id, lock=True)
            if row.status == ACTIVE:
                self._store.close(s, [row], ended_at=now, now=now)
            return self._store.views(s, [row], now, with_sets=True)[0]

    def get(self, user_id: int, session_id: int) -> SessionView:
        now = self._clock.now()
        self._store.settle(user_id, now)
        with self._db.transaction(write=False) as s:
            row = self._store.owned(s, user_id, session_id, lock=False)
            return self._store.views(s, [row], now, with_sets=True)[0]

    def list(self, user_id: int, size: int, token: str) -> tuple[list[SessionView], str]:
        """The user's sessions, newest first, without their sets."""
        now = self._clock.now()
        self._store.settle(user_id, now)
        rows, next_token = newest_first_page(
            self._db,
            WorkoutSessionRow,
            WorkoutSessionRow.started_at,
            user_id,
            None,
            None,
            page_size(size, LIST_DEFAULT, LIST_MAX),
            token,
        )
        with self._db.transaction(write=False) as s:
            return self._store.views(s, rows, now, with_sets=False), next_token

    def close_stale(self, now: datetime, limit: int = CLOSE_BATCH) -> int:
        """Close up to `limit` sessions of any user left open longer than AUTO_CLOSE_AFTER,
        oldest first, in one transaction; how many were closed (call again while it is
        `limit`). Sessions another transaction holds are skipped (PostgreSQL)."""
        with self._db.transaction() as s:
            rows = list(
                s.scalars(
                    select(WorkoutSessionRow)
                    .where(
                        WorkoutSessionRow.status == ACTIVE,
                        WorkoutSessionRow.started_at < now - AUTO_CLOSE_AFTER,
                    )
                    .order_by(WorkoutSessionRow.started_at, WorkoutSessionRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            self._store.close(s, rows, ended_at=None, now=now)
        return len(rows)
