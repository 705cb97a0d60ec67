"""The legacy WOD, as the old system did it after its history task: random exercises, none done
yesterday (the whole catalog when too few remain), a generic 3 x 10 at a conservative load.
Recorded in the user's history so tomorrow avoids it; the first WOD recorded today is served
again on every later request today, whichever implementation recorded it.

How many exercises is the user's plan's (free 6, premium 9: `size`, from billing through
fitcore.entitlements in the servicer). A WOD served smaller earlier today (before an upgrade)
is topped up with more random exercises, appended and recorded (ServedWods.extend), the same
rule as the coach's (fitrules.wod.wants_top_up). Premium users may replace today's WOD
(`regenerate`) up to their plan's allowance a day.

"Today" and "yesterday" are the user's days (the profile's time zone). Everything the WOD needs
is read in one read transaction (the user's zone and profile, today's WOD if served, yesterday's
exercises); generating, topping up or replacing writes in one more (ServedWods). The catalog
comes from its in-process snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from fitco.catalog.v1 import catalog_pb2
from sqlalchemy import select

from fitcore.clock import Clock
from fitcore.db import Database
from fitrules.days import local_day, zone
from fitrules.wod import wants_top_up
from monolith.domain.catalog import Catalog
from monolith.domain.history import (
    ServedWodView,
    WodItemView,
    exercise_ids_on,
    load_served_wod,
    served_view,
)
from monolith.domain.served_wods import Replacement, ServedWods
from monolith.models import ProfileRow

WOD_SIZE: Final = 6  # the free plan's (billing.plans.FREE_ALLOWANCE): the size when none is given
DEFAULT_BODY_WEIGHT_KG = 70.0
# Generic prescription of the old system: 3 sets of 10 at about 60 % of an estimated 1RM.
SETS, REPS, LOAD_FRACTION, REST_SECONDS = 3, 10, 0.6, 90
HOLD_SECONDS, CARDIO_SECONDS = 30, 600
PICKED = "Picked at random from exercises you did not do yesterday."


def _round_load(kg: float) -> float:
    """Round to the nearest 0.5 kg (what dumbbells and plates allow)."""
    return round(kg * 2) / 2


def _items(chosen: list[catalog_pb2.Exercise], body_weight: float) -> list[WodItemView]:
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
                reason=PICKED,
            )
        )
    return items


@dataclass(frozen=True)
class LegacyAnswer:
    """Today's WOD and the profile facts its rendering shows."""

    wod: ServedWodView
    fitness_goal: str
    body_weight_kg: float
    time_zone: str


@dataclass(frozen=True)
class _Today:
    day: date
    served: ServedWodView | None
    yesterday: set[int]
    goal: str
    weight: float
    time_zone: str

    @property
    def body_weight(self) -> float:
        return self.weight or DEFAULT_BODY_WEIGHT_KG

    def answer(self, wod: ServedWodView) -> LegacyAnswer:
        return LegacyAnswer(wod, self.goal, self.weight, self.time_zone or "UTC")


class LegacyWod:
    def __init__(
        self,
        db: Database,
        wods: ServedWods,
        catalog: Catalog,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._wods = wods
        self._catalog = catalog
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - not security relevant

    def _read(self, user_id: int) -> _Today:
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            profile = s.scalar(select(ProfileRow).where(ProfileRow.user_id == user_id))
            tz_name = (profile.time_zone if profile else None) or ""
            today = local_day(now, zone(tz_name))
            existing = load_served_wod(s, user_id, today)
            return _Today(
                day=today,
                served=served_view(existing) if existing is not None else None,
                yesterday=exercise_ids_on(s, user_id, today - timedelta(days=1)),
                goal=(profile.fitness_goal if profile else None) or "",
                weight=(profile.weight_kg if profile else None) or 0.0,
                time_zone=tz_name,
            )

    def _current(self, user_id: int, size: int) -> tuple[_Today, ServedWodView]:
        t = self._read(user_id)
        served = t.served
        if served is None:
            served = self._generate(user_id, t, size)
        elif wants_top_up(served.kind, len(served.items), size):
            served = self._top_up(user_id, t, served, size)
        return t, served

    def todays_wod(self, user_id: int, size: int = WOD_SIZE) -> LegacyAnswer:
        """Today's WOD of `size` exercises: recorded on the first call, topped up to `size`
        when it was served smaller (before an upgrade)."""
        t, served = self._current(user_id, size)
        return t.answer(served)

    def regenerate(self, user_id: int, size: int, allowance: int) -> tuple[LegacyAnswer, int]:
        """Replace today's WOD with other random exercises (never yesterday's, none of the
        replaced WOD's while enough others remain); `allowance` replacements a day (the
        user's plan), beyond it RESOURCE_EXHAUSTED. Returns the answer and what is left."""
        t, wod = self._current(user_id, size)
        fresh = self._pick(size, t.yesterday | {i.exercise_id for i in wod.items})
        if len(fresh) < size:  # a small catalog: allow the replaced WOD's exercises back
            fresh = self._pick(size, t.yesterday)
        replaced, _ = self._wods.replace(
            user_id,
            wod.day,
            Replacement(
                implementation="legacy",
                items=_items(fresh, t.body_weight),
                regenerations=wod.regenerations,
                max_regenerations=allowance,
            ),
        )
        return t.answer(replaced), max(allowance - replaced.regenerations, 0)

    def _pick(self, size: int, avoid: Collection[int]) -> list[catalog_pb2.Exercise]:
        pool = [e for e in self._catalog.snapshot().exercises if e.id not in avoid]
        return self._rng.sample(pool, min(size, len(pool)))

    def _generate(self, user_id: int, t: _Today, size: int) -> ServedWodView:
        chosen = self._pick(size, t.yesterday)
        if len(chosen) < size:
            chosen = self._pick(size, ())
        wod, _created = self._wods.record(user_id, t.day, "legacy", _items(chosen, t.body_weight))
        return wod

    def _top_up(self, user_id: int, t: _Today, served: ServedWodView, size: int) -> ServedWodView:
        have = {i.exercise_id for i in served.items}
        more = self._pick(size - len(have), t.yesterday | have)
        if not more:
            return served
        wod, _extended = self._wods.extend(
            user_id,
            t.day,
            (served.id, served.regenerations),
            _items(more, t.body_weight),
            size,
        )
        return wod
