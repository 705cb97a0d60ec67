"""The legacy WOD, as the old system did it after its history task: six random exercises,
none done yesterday (the whole catalog when fewer than six remain), a generic 3 x 10 at a
conservative load. Recorded in the user's history so tomorrow avoids it; the first WOD recorded
today is served again on every later request today, whichever implementation recorded it.
"""

from __future__ import annotations

import random
from datetime import timedelta

from monolith.domain.catalog import Catalog
from monolith.domain.history import History, ServedWodView, WodItemView
from monolith.domain.profiles import Profiles

WOD_SIZE = 6
DEFAULT_BODY_WEIGHT_KG = 70.0
# Generic prescription of the old system: 3 sets of 10 at about 60 % of an estimated 1RM.
SETS, REPS, LOAD_FRACTION, REST_SECONDS = 3, 10, 0.6, 90
HOLD_SECONDS, CARDIO_SECONDS = 30, 600


def _round_load(kg: float) -> float:
    """Round to the nearest 0.5 kg (what dumbbells and plates allow)."""
    return round(kg * 2) / 2


class LegacyWod:
    def __init__(
        self,
        history: History,
        catalog: Catalog,
        profiles: Profiles,
        rng: random.Random | None = None,
    ) -> None:
        self._history = history
        self._catalog = catalog
        self._profiles = profiles
        self._rng = rng or random.Random()  # noqa: S311 - not security relevant

    def todays_wod(self, user_id: int) -> ServedWodView:
        today = self._history.today()
        existing = self._history.get_served_wod(user_id, today)
        if existing is not None:
            return existing
        yesterday = self._history.exercise_ids_on_day(user_id, today - timedelta(days=1))
        snapshot = self._catalog.snapshot()
        pool = [e for e in snapshot.exercises if e.id not in yesterday]
        if len(pool) < WOD_SIZE:
            pool = list(snapshot.exercises)
        chosen = self._rng.sample(pool, min(WOD_SIZE, len(pool)))
        body_weight = self._profiles.get_profile(user_id).weight or DEFAULT_BODY_WEIGHT_KG
        items = []
        for position, exercise in enumerate(chosen):
            if exercise.measure == "minutes":
                sets, reps, duration = 1, 0, CARDIO_SECONDS
            elif exercise.measure == "seconds":
                sets, reps, duration = SETS, 0, HOLD_SECONDS
            else:
                sets, reps, duration = SETS, REPS, 0
            load = _round_load(exercise.rm_bodyweight_ratio * body_weight * LOAD_FRACTION)
            items.append(
                WodItemView(
                    exercise_id=exercise.id,
                    position=position,
                    sets=sets,
                    reps=reps,
                    weight_kg=load,
                    duration_seconds=duration,
                    rest_seconds=REST_SECONDS if exercise.measure != "minutes" else 0,
                    reason="Picked at random from exercises you did not do yesterday.",
                )
            )
        wod, _created = self._history.record_wod(user_id, today, "legacy", items)
        return wod
