"""Training preferences: equipment at hand, training days, session length, muscle groups to
avoid. One row per user, written with one atomic upsert."""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcore.clock import Clock
from fitcore.db import Database, dialect_insert
from fitcore.errors import Validator
from monolith.domain.common import user_or_not_found
from monolith.models import PreferencesRow

EQUIPMENT = (
    "bodyweight",
    "dumbbell",
    "barbell",
    "kettlebell",
    "cable",
    "machine",
    "cardio_machine",
    "jump_rope",
    "pull_up_bar",
    "bench",
    "pool",
)


@dataclass(frozen=True)
class PreferencesView:
    equipment: list[str] = field(default_factory=list)
    training_days_per_week: int = 3
    session_minutes: int = 45
    avoid_muscle_group_ids: list[int] = field(default_factory=list)


class Preferences:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- preferences --------------------------------------------------------------------

    def get_preferences(self, user_id: int) -> PreferencesView:
        with self._db.transaction(write=False) as s:
            user_or_not_found(s, user_id)
            row = s.get(PreferencesRow, user_id)
            if row is None:
                return PreferencesView()
            return PreferencesView(
                list(row.equipment),
                row.training_days_per_week,
                row.session_minutes,
                [int(x) for x in row.avoid_muscle_group_ids],
            )

    def update_preferences(
        self, user_id: int, prefs: PreferencesView, known_muscle_groups: set[int]
    ) -> PreferencesView:
        v = Validator()
        equipment = sorted({e.strip().lower() for e in prefs.equipment})
        for i, item in enumerate(equipment):
            v.check(item in EQUIPMENT, f"preferences.equipment[{i}]", f"unknown equipment {item!r}")
        days = prefs.training_days_per_week or 3
        minutes = prefs.session_minutes or 45
        v.check(1 <= days <= 7, "preferences.training_days_per_week", "must be between 1 and 7")
        v.check(10 <= minutes <= 180, "preferences.session_minutes", "must be 10 to 180")
        avoid = sorted(set(prefs.avoid_muscle_group_ids))
        for i, mg in enumerate(avoid):
            v.check(
                mg in known_muscle_groups,
                f"preferences.avoid_muscle_group_ids[{i}]",
                f"unknown muscle group {mg}",
            )
        v.raise_if_any()
        values = {
            "equipment": equipment,
            "training_days_per_week": days,
            "session_minutes": minutes,
            "avoid_muscle_group_ids": avoid,
            "updated_at": self._clock.now(),
        }
        with self._db.transaction() as s:
            user_or_not_found(s, user_id)
            # One atomic upsert: a concurrent first write updates instead of failing.
            s.execute(
                dialect_insert(s, PreferencesRow)
                .values(user_id=user_id, **values)
                .on_conflict_do_update(index_elements=[PreferencesRow.user_id], set_=values)
            )
        return PreferencesView(equipment, days, minutes, avoid)
