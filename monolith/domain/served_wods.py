"""Served WODs: recording the day's WOD (first writer wins), topping it up after an upgrade
(extend) and replacing it (a premium regeneration), for both WOD implementations
(HistoryService RecordWod, ExtendWod, ReplaceWod; the legacy WOD calls these directly).

A served WOD's exercises are history rows of source "wod" (`monolith.domain.history`): recording
adds them, extending appends to them, replacing swaps them (the replaced WOD was never trained:
its rows go, what the user logged stays). `regenerations` counts the replacements of the day
and, with the id, versions the WOD: extend and replace name the version they change, so
concurrent requests (a double click, both implementations at once) change it once.

Each call is one write transaction; the WOD row is locked (FOR UPDATE on PostgreSQL; SQLite
serialises writers) while it changes.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fitcore.clock import Clock, utc_day
from fitcore.db import Database
from fitcore.errors import NotFound, ResourceExhausted, Validator
from fitrules.days import day_start, local_day
from monolith.domain.catalog import Catalog
from monolith.domain.common import user_zone
from monolith.domain.history import (
    IMPLEMENTATIONS,
    MAX_WOD_ITEMS,
    MAX_WOD_NOTES,
    SOURCE_WOD,
    WOD_KINDS,
    ServedWodView,
    WodItemView,
    exercise_ids_on,
    load_served_wod,
    served_view,
)
from monolith.models import HistoryRow, ServedWodRow


def check_wod(
    v: Validator,
    items: list[WodItemView],
    known: Container[int],
    kind: str = "training",
    notes: tuple[str, ...] = (),
) -> None:
    """The rules every recorded WOD follows (RecordWod, ReplaceWod; ExtendWod's candidates)."""
    v.check(kind in WOD_KINDS, "kind", f"must be one of {', '.join(WOD_KINDS)}")
    v.check(len(notes) <= MAX_WOD_NOTES, "notes", f"at most {MAX_WOD_NOTES} notes")
    for n, note in enumerate(notes):
        v.check(len(note) <= 300, f"notes[{n}]", "at most 300 characters")
    v.check(1 <= len(items) <= MAX_WOD_ITEMS, "items", f"1 to {MAX_WOD_ITEMS} exercises")
    ids = [i.exercise_id for i in items]
    v.check(len(set(ids)) == len(ids), "items", "exercises must be distinct")
    for n, item in enumerate(items):
        f = f"items[{n}]"
        v.check(item.exercise_id in known, f"{f}.exercise_id", "unknown exercise")
        v.check(0 <= item.sets <= 20, f"{f}.sets", "must be 0 to 20")
        v.check(0 <= item.reps <= 200, f"{f}.reps", "must be 0 to 200")
        v.check(0 <= item.weight_kg <= 1000, f"{f}.weight_kg", "must be 0 to 1000")
        v.check(0 <= item.duration_seconds <= 86400, f"{f}.duration_seconds", "0 to 86400")
        v.check(0 <= item.rest_seconds <= 900, f"{f}.rest_seconds", "must be 0 to 900")
        v.check(len(item.reason) <= 500, f"{f}.reason", "at most 500 characters")


def check_today(v: Validator, day: date, now: datetime) -> None:
    """`day` is the user's local today: UTC today +/- 1 day holds it in every time zone (the
    zone itself is read inside the write transaction, where the WOD rows get their time)."""
    today = utc_day(now)
    v.check(
        today - timedelta(days=1) <= day <= today + timedelta(days=1),
        "day",
        "must be the user's today",
    )


def _add_items(
    s: Session, wod: ServedWodRow, items: list[WodItemView], first: int, now: datetime
) -> None:
    """The WOD's items as history rows (source "wod") at positions from `first`. Served
    today: performed now; for a neighbouring day (clock skew), at its noon."""
    tz = user_zone(s, wod.user_id)
    performed_at = (
        now
        if wod.day == local_day(now, tz)
        else datetime.combine(wod.day, time(12), tz).astimezone(UTC)
    )
    for position, item in enumerate(items, start=first):
        s.add(
            HistoryRow(
                user_id=wod.user_id,
                exercise_id=item.exercise_id,
                performed_at=performed_at,
                day=wod.day,
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


def _locked(s: Session, user_id: int, day: date) -> ServedWodRow:
    row = s.scalar(
        select(ServedWodRow)
        .options(selectinload(ServedWodRow.items))
        .where(ServedWodRow.user_id == user_id, ServedWodRow.day == day)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"no WOD was served on {day.isoformat()}", reason="WOD_NOT_FOUND")
    return row


@dataclass(frozen=True)
class Replacement:
    """Another WOD for the day (ReplaceWodRequest)."""

    implementation: str
    items: list[WodItemView]
    kind: str = ""
    notes: tuple[str, ...] = ()
    regenerations: int = 0  # the version replaced
    max_regenerations: int = 0  # the user's plan's allowance a day


class ServedWods:
    def __init__(self, db: Database, catalog: Catalog, clock: Clock) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock

    def get(self, user_id: int, day: date) -> ServedWodView | None:
        with self._db.transaction(write=False) as s:
            row = load_served_wod(s, user_id, day)
            return served_view(row) if row else None

    def record(
        self,
        user_id: int,
        day: date,
        implementation: str,
        items: list[WodItemView],
        kind: str = "",
        notes: tuple[str, ...] = (),
    ) -> tuple[ServedWodView, bool]:
        """Store the WOD for (user, day) unless one exists; return the stored one."""
        now = self._clock.now()
        kind = kind or "training"
        v = Validator()
        check_today(v, day, now)
        v.check(implementation in IMPLEMENTATIONS, "implementation", "must be legacy or coach")
        check_wod(v, items, self._catalog.snapshot().by_id, kind, notes)
        v.raise_if_any()
        try:
            with self._db.transaction() as s:
                existing = load_served_wod(s, user_id, day)
                if existing is not None:
                    return served_view(existing), False
                wod = ServedWodRow(
                    user_id=user_id,
                    day=day,
                    implementation=implementation,
                    generated_at=now,
                    kind=kind,
                    notes=list(notes),
                )
                s.add(wod)
                s.flush()
                _add_items(s, wod, items, 0, now)
                return served_view(wod), True
        except IntegrityError:
            # Another request recorded this day's WOD first: serve that one.
            with self._db.transaction(write=False) as s:
                existing = load_served_wod(s, user_id, day)
                if existing is None:
                    raise
                return served_view(existing), False

    def extend(
        self,
        user_id: int,
        day: date,
        version: tuple[int, int],
        items: list[WodItemView],
        size: int,
    ) -> tuple[ServedWodView, bool]:
        """Append `items` (in order; those already in the WOD or done the day before are
        skipped) until the WOD `version` (id, regenerations) holds `size` exercises."""
        now = self._clock.now()
        v = Validator()
        check_today(v, day, now)
        v.check(1 <= size <= MAX_WOD_ITEMS, "size", f"must be 1 to {MAX_WOD_ITEMS}")
        check_wod(v, items, self._catalog.snapshot().by_id)
        v.raise_if_any()
        with self._db.transaction() as s:
            row = _locked(s, user_id, day)
            have = len(row.items)
            if (row.id, row.regenerations) != version or have >= size:
                return served_view(row), False
            skip = {i.exercise_id for i in row.items} | exercise_ids_on(
                s, user_id, day - timedelta(days=1)
            )
            more = [i for i in items if i.exercise_id not in skip][: size - have]
            if not more:
                return served_view(row), False
            first = max((i.position for i in row.items), default=-1) + 1
            _add_items(s, row, more, first, now)
            return served_view(row), True

    def replace(self, user_id: int, day: date, new: Replacement) -> tuple[ServedWodView, bool]:
        """Replace the WOD of `day` by `new` unless another replaced it first (then that one,
        False). Beyond `new.max_regenerations` a day: RESOURCE_EXHAUSTED (REGENERATION_LIMIT),
        retry at the user's next day."""
        now = self._clock.now()
        kind = new.kind or "training"
        v = Validator()
        check_today(v, day, now)
        v.check(new.implementation in IMPLEMENTATIONS, "implementation", "must be legacy or coach")
        v.check(new.regenerations >= 0, "regenerations", "must not be negative")
        v.check(new.max_regenerations >= 0, "max_regenerations", "must not be negative")
        check_wod(v, new.items, self._catalog.snapshot().by_id, kind, new.notes)
        v.raise_if_any()
        with self._db.transaction() as s:
            row = _locked(s, user_id, day)
            if row.regenerations != new.regenerations:
                return served_view(row), False
            if row.regenerations >= new.max_regenerations:
                next_day = day_start(day + timedelta(days=1), user_zone(s, user_id))
                raise ResourceExhausted(
                    f"you have had today's {new.max_regenerations} new workouts; "
                    "tomorrow brings more",
                    reason="REGENERATION_LIMIT",
                    retry_after_seconds=max((next_day - now).total_seconds(), 1.0),
                )
            yesterday = exercise_ids_on(s, user_id, day - timedelta(days=1))
            for n, item in enumerate(new.items):
                v.check(
                    item.exercise_id not in yesterday,
                    f"items[{n}].exercise_id",
                    "was done the day before: never two days in a row",
                )
            v.raise_if_any()
            # The replaced WOD was never trained: its rows go. Logged exercises and session
            # sets are other rows (no wod_id) and stay.
            s.execute(
                delete(HistoryRow).where(
                    HistoryRow.wod_id == row.id, HistoryRow.source == SOURCE_WOD
                )
            )
            row.implementation = new.implementation
            row.generated_at = now
            row.kind = kind
            row.notes = list(new.notes)
            row.regenerations += 1
            s.flush()
            s.expire(row, ["items"])
            _add_items(s, row, new.items, 0, now)
            return served_view(row), True
