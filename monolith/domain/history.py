"""Exercise history: the record both WOD implementations read and feed. The served WODs' views
are here (a served WOD's exercises are history rows of source "wod"); recording, extending and
replacing them is `monolith.domain.served_wods`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import NotFound, Validator
from fitrules.days import local_day
from monolith.domain.catalog import Catalog
from monolith.domain.common import (
    AfterUserData,
    as_utc,
    newest_first_page,
    no_hook,
    user_zone,
)
from monolith.models import HistoryRow, ServedWodRow

SOURCE_LOGGED = "logged"
SOURCE_SESSION = "session"  # one set of a workout session (monolith.domain.workouts)
SOURCE_WOD = "wod"
IMPLEMENTATIONS = ("legacy", "coach")
WOD_KINDS = ("training", "recovery", "deload")
MAX_WOD_ITEMS = 12
MAX_WOD_NOTES = 5


@dataclass(frozen=True)
class EntryView:
    id: int
    exercise_id: int
    exercise_name: str
    performed_at: datetime
    day: date
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    note: str
    source: str
    wod_id: int
    rpe: float = 0.0
    session_id: int = 0


@dataclass(frozen=True)
class ExerciseLog:
    exercise_id: int
    sets: int = 0
    reps: int = 0
    weight_kg: float = 0.0
    duration_seconds: int = 0
    performed_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class WodItemView:
    exercise_id: int
    position: int
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    rest_seconds: int
    reason: str


@dataclass(frozen=True)
class ServedWodView:
    id: int
    day: date
    implementation: str
    generated_at: datetime
    items: tuple[WodItemView, ...]
    kind: str = "training"
    notes: tuple[str, ...] = ()
    regenerations: int = 0


def load_served_wod(s: Session, user_id: int, day: date) -> ServedWodRow | None:
    """The WOD served to the user on `day` with its items, in the caller's transaction."""
    return s.scalar(
        select(ServedWodRow)
        .options(selectinload(ServedWodRow.items))
        .where(ServedWodRow.user_id == user_id, ServedWodRow.day == day)
    )


def exercise_ids_on(s: Session, user_id: int, day: date) -> set[int]:
    """The exercises the user did (logged, in a session, or served as a WOD) on `day`."""
    return set(
        s.scalars(
            select(HistoryRow.exercise_id).where(
                HistoryRow.user_id == user_id, HistoryRow.day == day
            )
        )
    )


def served_view(row: ServedWodRow) -> ServedWodView:
    return ServedWodView(
        id=row.id,
        day=row.day,
        implementation=row.implementation,
        kind=row.kind or "training",
        notes=tuple(row.notes or ()),
        regenerations=row.regenerations or 0,
        generated_at=as_utc(row.generated_at),
        items=tuple(
            WodItemView(
                exercise_id=i.exercise_id,
                position=i.position,
                sets=i.sets,
                reps=i.reps,
                weight_kg=i.weight_kg,
                duration_seconds=i.duration_seconds,
                rest_seconds=i.rest_seconds,
                reason=i.note,
            )
            for i in sorted(row.items, key=lambda i: i.position)
        ),
    )


class History:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        clock: Clock,
        after_logged: AfterUserData = no_hook,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock
        # Strength and endurance goals measure logged exercises.
        self._after_logged = after_logged

    def _entry_view(self, row: HistoryRow) -> EntryView:
        exercise = self._catalog.snapshot().by_id.get(row.exercise_id)
        return EntryView(
            id=row.id,
            exercise_id=row.exercise_id,
            exercise_name=exercise.name if exercise else "",
            performed_at=as_utc(row.performed_at),
            day=row.day,
            sets=row.sets,
            reps=row.reps,
            weight_kg=row.weight_kg,
            duration_seconds=row.duration_seconds,
            note=row.note,
            source=row.source,
            wod_id=row.wod_id or 0,
            rpe=row.rpe or 0.0,
            session_id=row.session_id or 0,
        )

    def record_exercise(self, user_id: int, log: ExerciseLog) -> EntryView:
        now = self._clock.now()
        performed_at = as_utc(log.performed_at) if log.performed_at else now
        v = Validator()
        v.check(log.exercise_id > 0, "exercise_id", "is required")
        if log.exercise_id > 0:
            v.check(
                log.exercise_id in self._catalog.snapshot().by_id,
                "exercise_id",
                f"unknown exercise {log.exercise_id}",
            )
        v.check(0 <= log.sets <= 20, "sets", "must be between 0 and 20")
        v.check(0 <= log.reps <= 200, "reps", "must be between 0 and 200")
        v.check(0 <= log.weight_kg <= 1000, "weight_kg", "must be between 0 and 1000 kg")
        v.check(0 <= log.duration_seconds <= 86400, "duration_seconds", "must be 0 to 86400")
        v.check(
            log.sets > 0 or log.reps > 0 or log.duration_seconds > 0,
            "sets",
            "give sets/reps or a duration",
        )
        v.check(
            performed_at <= now + timedelta(minutes=5),
            "performed_at",
            "must not be in the future",
        )
        v.check(
            performed_at >= now - timedelta(days=366),
            "performed_at",
            "must be within the last year",
        )
        v.check(len(log.note) <= 500, "note", "must be at most 500 characters")
        v.raise_if_any()
        with self._db.transaction() as s:
            row = HistoryRow(
                user_id=user_id,
                exercise_id=log.exercise_id,
                performed_at=performed_at,
                day=local_day(performed_at, user_zone(s, user_id)),
                sets=log.sets,
                reps=log.reps,
                weight_kg=log.weight_kg,
                duration_seconds=log.duration_seconds,
                note=log.note,
                source=SOURCE_LOGGED,
                created_at=now,
            )
            s.add(row)
            s.flush()
            self._after_logged(s, user_id)
            return self._entry_view(row)

    def list_history(
        self,
        user_id: int,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> tuple[list[EntryView], str]:
        rows, next_token = newest_first_page(
            self._db, HistoryRow, HistoryRow.performed_at, user_id, start, end, size, token
        )
        return [self._entry_view(r) for r in rows], next_token

    def delete_entry(self, user_id: int, entry_id: int) -> None:
        with self._db.transaction() as s:
            result = s.execute(
                delete(HistoryRow).where(
                    HistoryRow.id == entry_id,
                    HistoryRow.user_id == user_id,
                    HistoryRow.source == SOURCE_LOGGED,
                )
            )
            if getattr(result, "rowcount", 0) == 0:
                raise NotFound(f"history entry {entry_id} not found")

    def entries_on_day(self, user_id: int, day: date) -> list[EntryView]:
        with self._db.transaction(write=False) as s:
            rows = s.scalars(
                select(HistoryRow)
                .where(HistoryRow.user_id == user_id, HistoryRow.day == day)
                .order_by(HistoryRow.performed_at, HistoryRow.id)
            )
            return [self._entry_view(r) for r in rows]

    def exercise_ids_on_day(self, user_id: int, day: date) -> set[int]:
        with self._db.transaction(write=False) as s:
            return exercise_ids_on(s, user_id, day)
