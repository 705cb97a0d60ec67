"""Reading and closing workout sessions: views of sessions and their sets, and the totals stored
when a session ends (by EndSession or automatically). Shared by the session lifecycle
(`monolith.domain.workouts`) and set logging (`monolith.domain.workout_sets`).

Views are built in a fixed number of queries whatever the number of sessions (their sets, the
served WODs they follow, the body weights), never one query per row. Closing a session writes
its SESSION_ENDED event in the same transaction (`monolith.domain.workout_events`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from fitcore.db import Database
from fitcore.errors import NotFound
from fitrules.strength import epley_1rm
from monolith.domain import workout_events
from monolith.domain.catalog import Catalog
from monolith.domain.common import AfterUserData, as_utc, no_hook
from monolith.domain.workout_rules import (
    AUTO_CLOSE_AFTER,
    SetWork,
    calories_basis,
    session_totals,
)
from monolith.models import (
    BodyMetricRow,
    HistoryRow,
    ProfileRow,
    ServedWodRow,
    WorkoutSessionRow,
)

ACTIVE = "ACTIVE"
ENDED = "ENDED"
# exercise_history.source of a set logged in a session.
SOURCE_SESSION = "session"


@dataclass(frozen=True)
class SetView:
    id: int
    exercise_id: int
    exercise_name: str
    reps: int
    weight_kg: float
    duration_seconds: int
    rpe: float
    client_set_id: str
    performed_at: datetime
    estimated_1rm_kg: float


@dataclass(frozen=True)
class SessionView:
    id: int
    status: str
    from_wod: bool
    wod_day: date | None
    planned_exercise_ids: tuple[int, ...]
    started_at: datetime
    ended_at: datetime | None
    auto_closed: bool
    day: date
    duration_seconds: int
    calories: float
    volume_kg: float
    set_count: int
    sets: tuple[SetView, ...]
    calories_basis: str


def body_weights(s: Session, user_ids: Collection[int]) -> dict[int, float]:
    """Each user's body weight: the latest body metric, else the profile's weight (users with
    neither are left out)."""
    if not user_ids:
        return {}
    out: dict[int, float] = {}
    for uid, kg in s.execute(
        select(ProfileRow.user_id, ProfileRow.weight_kg).where(
            ProfileRow.user_id.in_(user_ids), ProfileRow.weight_kg > 0
        )
    ):
        out[uid] = kg or 0.0
    latest = (
        select(BodyMetricRow.user_id, func.max(BodyMetricRow.measured_at).label("at"))
        .where(BodyMetricRow.user_id.in_(user_ids))
        .group_by(BodyMetricRow.user_id)
        .subquery()
    )
    rows = s.execute(
        select(BodyMetricRow.user_id, BodyMetricRow.weight_kg)
        .join(
            latest,
            and_(
                BodyMetricRow.user_id == latest.c.user_id,
                BodyMetricRow.measured_at == latest.c.at,
            ),
        )
        .order_by(BodyMetricRow.id)  # two at the same instant: the one recorded last wins
    )
    for uid, kg in rows:
        out[uid] = kg
    return out


def session_not_found(session_id: int) -> NotFound:
    """Worded the same for another user's session as for one that does not exist."""
    return NotFound(f"session {session_id} not found", reason="SESSION_NOT_FOUND")


class SessionStore:
    def __init__(
        self, db: Database, catalog: Catalog, after_training: AfterUserData = no_hook
    ) -> None:
        self._db = db
        self._catalog = catalog
        # Strength and endurance goals measure sets and ended sessions: settled in the same
        # transaction as each logged set and each closed session.
        self.after_training = after_training

    @staticmethod
    def owned(s: Session, user_id: int, session_id: int, *, lock: bool) -> WorkoutSessionRow:
        """The caller's session (locked until the transaction ends when `lock`)."""
        q = select(WorkoutSessionRow).where(
            WorkoutSessionRow.id == session_id, WorkoutSessionRow.user_id == user_id
        )
        if lock:
            q = q.with_for_update().execution_options(populate_existing=True)
        row = s.scalar(q)
        if row is None:
            raise session_not_found(session_id)
        return row

    @staticmethod
    def active_id(s: Session, user_id: int) -> int | None:
        return s.scalar(
            select(WorkoutSessionRow.id).where(
                WorkoutSessionRow.user_id == user_id, WorkoutSessionRow.status == ACTIVE
            )
        )

    def settle(self, user_id: int, now: datetime) -> None:
        """Close the user's session if it was left open longer than AUTO_CLOSE_AFTER. Run
        before each RPC's own transaction: a write transaction only when there is one to
        close, so reads do not queue behind writers for nothing (SQLite)."""
        stale = (
            WorkoutSessionRow.user_id == user_id,
            WorkoutSessionRow.status == ACTIVE,
            WorkoutSessionRow.started_at < now - AUTO_CLOSE_AFTER,
        )
        with self._db.transaction(write=False) as s:
            if s.scalar(select(WorkoutSessionRow.id).where(*stale)) is None:
                return
        with self._db.transaction() as s:
            rows = list(s.scalars(select(WorkoutSessionRow).where(*stale).with_for_update()))
            self.close(s, rows, ended_at=None, now=now)

    def close(
        self,
        s: Session,
        rows: list[WorkoutSessionRow],
        ended_at: datetime | None,
        *,
        now: datetime,
    ) -> None:
        """End `rows` at `ended_at` (EndSession), or, when None (left open), at their last
        set's time (their start when they have none); store their totals. `now`: when they
        are closed (the SESSION_ENDED events' time)."""
        sets = self.sets_of(s, [r.id for r in rows])
        weights = body_weights(s, {r.user_id for r in rows})
        for row in rows:
            mine = sets.get(row.id, [])
            started = as_utc(row.started_at)
            end = ended_at or (as_utc(mine[-1].performed_at) if mine else started)
            body = weights.get(row.user_id, 0.0)
            totals = session_totals(started, end, self._work(mine), body)
            row.status = ENDED
            row.ended_at = end
            row.auto_closed = ended_at is None
            row.duration_seconds = totals.duration_seconds
            row.calories = totals.calories
            row.volume_kg = totals.volume_kg
            row.set_count = totals.set_count
            row.body_weight_kg = body
            workout_events.session_ended(s, row, now)
        s.flush()
        for user_id in sorted({r.user_id for r in rows}):
            self.after_training(s, user_id)

    def views(
        self, s: Session, rows: list[WorkoutSessionRow], now: datetime, *, with_sets: bool
    ) -> list[SessionView]:
        """Views of `rows`; an active session's totals are counted so far (until `now`, with
        the current body weight), an ended one's are those stored when it ended."""
        active = [r for r in rows if r.status == ACTIVE]
        sets = self.sets_of(s, [r.id for r in (rows if with_sets else active)])
        weights = body_weights(s, {r.user_id for r in active})
        planned = self._planned(s, {r.wod_id for r in rows if r.wod_id})
        out = []
        for row in rows:
            mine = sets.get(row.id, [])
            started = as_utc(row.started_at)
            if row.status == ACTIVE:
                body = weights.get(row.user_id, 0.0)
                totals = session_totals(started, now, self._work(mine), body)
                duration, calories = totals.duration_seconds, totals.calories
                volume, count = totals.volume_kg, totals.set_count
            else:
                body = row.body_weight_kg
                duration, calories = row.duration_seconds, row.calories
                volume, count = row.volume_kg, row.set_count
            wod_day, exercise_ids = planned.get(row.wod_id or 0, (None, ()))
            out.append(
                SessionView(
                    id=row.id,
                    status=row.status,
                    from_wod=row.from_wod,
                    wod_day=wod_day,
                    planned_exercise_ids=exercise_ids,
                    started_at=started,
                    ended_at=as_utc(row.ended_at) if row.ended_at else None,
                    auto_closed=row.auto_closed,
                    day=row.day,
                    duration_seconds=duration,
                    calories=calories,
                    volume_kg=volume,
                    set_count=count,
                    sets=tuple(self.set_view(x) for x in mine) if with_sets else (),
                    calories_basis=calories_basis(body),
                )
            )
        return out

    def set_view(self, row: HistoryRow) -> SetView:
        exercise = self._catalog.snapshot().by_id.get(row.exercise_id)
        return SetView(
            id=row.id,
            exercise_id=row.exercise_id,
            exercise_name=exercise.name if exercise else "",
            reps=row.reps,
            weight_kg=row.weight_kg,
            duration_seconds=row.duration_seconds,
            rpe=row.rpe,
            client_set_id=row.client_set_id or "",
            performed_at=as_utc(row.performed_at),
            estimated_1rm_kg=round(epley_1rm(row.weight_kg, row.reps), 1),
        )

    @staticmethod
    def sets_of(s: Session, session_ids: list[int]) -> dict[int, list[HistoryRow]]:
        """Sets of the sessions, each list in the order logged (one query)."""
        out: dict[int, list[HistoryRow]] = defaultdict(list)
        if session_ids:
            for row in s.scalars(
                select(HistoryRow)
                .where(HistoryRow.session_id.in_(session_ids))
                .order_by(HistoryRow.performed_at, HistoryRow.id)
            ):
                out[row.session_id or 0].append(row)
        return out

    def _work(self, sets: Iterable[HistoryRow]) -> list[SetWork]:
        by_id = self._catalog.snapshot().by_id
        return [
            SetWork(
                as_utc(x.performed_at),
                x.reps,
                x.weight_kg,
                x.duration_seconds,
                # An exercise removed from the catalog since: its set has no known energy.
                by_id[x.exercise_id].met_value if x.exercise_id in by_id else 0.0,
            )
            for x in sets
        ]

    @staticmethod
    def _planned(s: Session, wod_ids: set[int]) -> dict[int, tuple[date, tuple[int, ...]]]:
        """Day and exercises, in order, of each served WOD (one query)."""
        if not wod_ids:
            return {}
        found: dict[int, tuple[date, list[int]]] = {}
        for wod_id, day, exercise_id in s.execute(
            select(ServedWodRow.id, ServedWodRow.day, HistoryRow.exercise_id)
            .outerjoin(HistoryRow, HistoryRow.wod_id == ServedWodRow.id)
            .where(ServedWodRow.id.in_(wod_ids))
            .order_by(ServedWodRow.id, HistoryRow.position)
        ):
            entry = found.setdefault(wod_id, (day, []))
            if exercise_id is not None:
                entry[1].append(exercise_id)
        return {k: (day, tuple(ids)) for k, (day, ids) in found.items()}
