"""Exercise history and served WODs: the record both WOD implementations read and feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fitcore.clock import Clock, utc_day
from fitcore.errors import NotFound, Validator
from monolith.db import Database
from monolith.domain.catalog import Catalog
from monolith.domain.common import as_utc, newest_first_page
from monolith.models import HistoryRow, ServedWodRow

SOURCE_LOGGED = "logged"
SOURCE_WOD = "wod"
IMPLEMENTATIONS = ("legacy", "coach")
MAX_WOD_ITEMS = 12


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


def _served_view(row: ServedWodRow) -> ServedWodView:
    return ServedWodView(
        id=row.id,
        day=row.day,
        implementation=row.implementation,
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
    def __init__(self, db: Database, catalog: Catalog, clock: Clock) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock

    def today(self) -> date:
        return utc_day(self._clock.now())

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
                day=utc_day(performed_at),
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
            return set(
                s.scalars(
                    select(HistoryRow.exercise_id).where(
                        HistoryRow.user_id == user_id, HistoryRow.day == day
                    )
                )
            )

    def _load_wod(self, s: Session, user_id: int, day: date) -> ServedWodRow | None:
        return s.scalar(
            select(ServedWodRow)
            .options(selectinload(ServedWodRow.items))
            .where(ServedWodRow.user_id == user_id, ServedWodRow.day == day)
        )

    def get_served_wod(self, user_id: int, day: date) -> ServedWodView | None:
        with self._db.transaction(write=False) as s:
            row = self._load_wod(s, user_id, day)
            return _served_view(row) if row else None

    def record_wod(
        self, user_id: int, day: date, implementation: str, items: list[WodItemView]
    ) -> tuple[ServedWodView, bool]:
        """Store the WOD for (user, day) unless one exists; return the stored one."""
        now = self._clock.now()
        today = utc_day(now)
        catalog = self._catalog.snapshot()
        v = Validator()
        v.check(
            today - timedelta(days=1) <= day <= today + timedelta(days=1),
            "day",
            "must be today (UTC)",
        )
        v.check(implementation in IMPLEMENTATIONS, "implementation", "must be legacy or coach")
        v.check(1 <= len(items) <= MAX_WOD_ITEMS, "items", f"1 to {MAX_WOD_ITEMS} exercises")
        ids = [i.exercise_id for i in items]
        v.check(len(set(ids)) == len(ids), "items", "exercises must be distinct")
        for n, item in enumerate(items):
            f = f"items[{n}]"
            v.check(item.exercise_id in catalog.by_id, f"{f}.exercise_id", "unknown exercise")
            v.check(0 <= item.sets <= 20, f"{f}.sets", "must be 0 to 20")
            v.check(0 <= item.reps <= 200, f"{f}.reps", "must be 0 to 200")
            v.check(0 <= item.weight_kg <= 1000, f"{f}.weight_kg", "must be 0 to 1000")
            v.check(0 <= item.duration_seconds <= 86400, f"{f}.duration_seconds", "0 to 86400")
            v.check(0 <= item.rest_seconds <= 900, f"{f}.rest_seconds", "must be 0 to 900")
            v.check(len(item.reason) <= 500, f"{f}.reason", "at most 500 characters")
        v.raise_if_any()
        performed_at = now if day == today else datetime.combine(day, time(12), UTC)
        try:
            with self._db.transaction() as s:
                existing = self._load_wod(s, user_id, day)
                if existing is not None:
                    return _served_view(existing), False
                wod = ServedWodRow(
                    user_id=user_id, day=day, implementation=implementation, generated_at=now
                )
                s.add(wod)
                s.flush()
                for position, item in enumerate(items):
                    s.add(
                        HistoryRow(
                            user_id=user_id,
                            exercise_id=item.exercise_id,
                            performed_at=performed_at,
                            day=day,
                            sets=item.sets,
                            reps=item.reps,
                            weight_kg=item.weight_kg,
                            duration_seconds=item.duration_seconds,
                            rest_seconds=item.rest_seconds,
                            note=item.reason,
                            source=SOURCE_WOD,
                            wod_id=wod.id,
                            position=position,
                            created_at=now,
                        )
                    )
                s.flush()
                s.refresh(wod, ["items"])
                return _served_view(wod), True
        except IntegrityError:
            # Another request recorded this day's WOD first: serve that one.
            with self._db.transaction(write=False) as s:
                existing = self._load_wod(s, user_id, day)
                if existing is None:
                    raise
                return _served_view(existing), False
