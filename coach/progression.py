"""Load progression and deloads, from the sets the user logged (pure functions).

- Double progression: the weight stays until every set at it reached the prescribed reps (the top
  of the goal's range) at RPE <= 8, then goes up one equipment step. "Last session" = the user's
  latest day with loaded sets of the exercise; its working weight = the heaviest of them, and the
  sets at that weight decide (lighter warm-up sets do not).
- The suggested weight follows the best recent estimated 1RM (Epley) times the NSCA %1RM for the
  prescribed reps: the higher of that and the (progressed) last weight, but never more than one
  step above the 1RM-based load (safety: a last weight the estimate does not support is not
  pushed further). Without a reliable estimate (only sets of > 12 reps) the last weight decides;
  without any loaded set, the catalog's ratio estimate.
- A deload (half the sets, -10 % load) after a run of hard weeks or when performance drops.

Numbers and their sources: `coach.prescription`; formulas: `fitrules.strength`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from coach.context import Exercises, Groups, PastEntry, entry_day, region
from fitrules.days import week_start
from fitrules.strength import epley_1rm, percent_1rm_for_reps


def round_down(kg: float, equipment: str) -> float:
    """Down to a load the equipment allows, never below its least load."""
    step = rx.LOAD_STEP.get(equipment, 0.5)
    value = math.floor(kg / step + 1e-9) * step
    return max(value, rx.MIN_LOAD.get(equipment, step if kg > 0 else 0.0))


def progression_step(e: catalog_pb2.Exercise, groups: Groups) -> float:
    return max(rx.LOAD_STEP.get(e.equipment, 1.0), rx.PROGRESSION_MIN_KG[region(e, groups)])


def _loaded_work(history: Sequence[PastEntry], exercise_id: int) -> list[PastEntry]:
    return [h for h in history if h.exercise_id == exercise_id and h.is_work and h.weight_kg > 0]


def best_e1rm(history: Sequence[PastEntry], exercise_id: int, since: datetime) -> float:
    """Best Epley estimate over the loaded sets of an exercise since `since` (0 when none)."""
    return max(
        (
            epley_1rm(h.weight_kg, h.reps)
            for h in _loaded_work(history, exercise_id)
            if h.performed_at >= since
        ),
        default=0.0,
    )


@dataclass(frozen=True)
class Load:
    weight: float
    note: str  # appended to the exercise's reason ("" when there is nothing to say)


def working_load(
    e: catalog_pb2.Exercise,
    reps: int,
    estimate_kg: float,
    history: Sequence[PastEntry],
    groups: Groups,
    now: datetime,
    tz: tzinfo,
) -> Load:
    """The load for `reps` reps of `e`. `estimate_kg` is the catalog-based guess, used only when
    the user has not logged loaded sets of it."""
    work = _loaded_work(history, e.id)
    if not work:
        return Load(estimate_kg, "")
    step = progression_step(e, groups)
    last_day = max(entry_day(h, tz) for h in work)
    last = [h for h in work if entry_day(h, tz) == last_day]
    working = max(h.weight_kg for h in last)
    at_working = [h for h in last if h.weight_kg == working]
    missed = any(h.reps < reps for h in at_working)
    hardest = max(h.rpe for h in at_working)
    progressed = not missed and hardest <= rx.PROGRESSION_MAX_RPE
    base = working + step if progressed else working
    if progressed:
        note = (
            f" All sets reached {reps} reps at {working:g} kg at RPE"
            f" {rx.PROGRESSION_MAX_RPE:g} or less: +{step:g} kg."
        )
    elif missed:
        note = f" Same load as last time ({working:g} kg) until every set reaches {reps} reps."
    else:
        note = f" Same load as last time ({working:g} kg): it was hard (RPE {hardest:g})."
    e1rm = best_e1rm(history, e.id, now - timedelta(days=rx.E1RM_DAYS))
    if e1rm <= 0:  # only high-rep sets: no reliable 1RM estimate, the last weight decides
        return Load(base, note)
    percent = percent_1rm_for_reps(reps)
    from_e1rm = round_down(e1rm * percent, e.equipment)
    weight = min(max(base, from_e1rm), from_e1rm + step)
    if weight > base:
        note = (
            f" {percent:.0%} of your estimated 1RM ({e1rm:.0f} kg) for {reps} reps"
            f" (last time {working:g} kg)."
        )
    elif weight < base:
        note += f" Held to one step above {percent:.0%} of your estimated 1RM ({e1rm:.0f} kg)."
    return Load(weight, note)


def deload_sets(sets: int) -> int:
    return max(rx.DELOAD_MIN_SETS, math.ceil(sets * rx.DELOAD_SET_FRACTION))


def deload_weight(weight: float, equipment: str) -> float:
    return round_down(weight * rx.DELOAD_LOAD, equipment) if weight > 0 else 0.0


def _hard_weeks_note(history: Sequence[PastEntry], today: date, tz: tzinfo) -> str | None:
    hard: dict[date, int] = defaultdict(int)
    for h in history:
        if h.is_work and h.rpe >= rx.HARD_RPE:
            hard[week_start(entry_day(h, tz))] += h.set_count
    this_week = week_start(today)
    weeks = [this_week - timedelta(weeks=k) for k in range(1, rx.DELOAD_AFTER_HARD_WEEKS + 1)]
    if all(hard[w] >= rx.HARD_SETS_PER_WEEK for w in weeks):
        return (
            f"Deload week: each of your last {rx.DELOAD_AFTER_HARD_WEEKS} weeks had"
            f" {rx.HARD_SETS_PER_WEEK}+ sets at RPE {rx.HARD_RPE:g} or more; fewer sets and"
            f" {1 - rx.DELOAD_LOAD:.0%} less load let you recover."
        )
    return None


def _drop_note(
    history: Sequence[PastEntry], exercises: Exercises, today: date, tz: tzinfo
) -> str | None:
    best: dict[int, dict[date, float]] = defaultdict(dict)
    for h in history:
        e1rm = epley_1rm(h.weight_kg, h.reps) if h.is_work else 0.0
        if e1rm > 0:
            day = entry_day(h, tz)
            best[h.exercise_id][day] = max(best[h.exercise_id].get(day, 0.0), e1rm)
    drops: list[tuple[float, int]] = []
    for exercise_id, by_day in best.items():
        days = sorted(by_day)
        if len(days) < 2 or (today - days[-1]).days >= rx.DROP_RECENT_DAYS:
            continue
        before, last = by_day[days[-2]], by_day[days[-1]]
        drop = 1 - last / before
        if drop >= rx.DROP_FRACTION - 1e-9:
            drops.append((drop, exercise_id))
    if not drops:
        return None
    drop, exercise_id = max(drops, key=lambda d: (d[0], -d[1]))
    exercise = exercises.get(exercise_id)
    name = exercise.name if exercise is not None else "an exercise"
    return (
        f"Deload: your estimated 1RM on {name} fell {drop:.0%} since the session before, a sign"
        f" of fatigue; fewer sets and {1 - rx.DELOAD_LOAD:.0%} less load let you recover."
    )


def deload_note(
    history: Sequence[PastEntry], exercises: Exercises, today: date, tz: tzinfo
) -> str | None:
    """Why today is a deload, or None when it is not."""
    return _hard_weeks_note(history, today, tz) or _drop_note(history, exercises, today, tz)
