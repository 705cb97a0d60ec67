"""The coach's WOD planner: pure, deterministic functions (no I/O).

Given the user's goal, level, equipment, muscle groups to avoid, time zone, weekly plan, recent
history and the catalog, decide what kind of day today is (training, a planned rest day's
recovery session, or a deload), then choose and order a session and prescribe sets, reps, load
and rest. Rules live beside it: `coach.progression` (loads, deloads), `coach.volume` (weekly sets,
training and rest days), `coach.recovery` (rest-day sessions); their numbers in
`coach.prescription`, with sources; time estimates in `fitrules.wod`, shared with the renderer.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from coach.context import (
    Exercises,
    Groups,
    PastEntry,
    Plan,
    PlannedItem,
    UserContext,
    entry_day,
    group_names,
    has_equipment,
    kind_of,
    primaries,
    works_avoided,
)
from coach.progression import (
    deload_note,
    deload_sets,
    deload_weight,
    round_down,
    working_load,
)
from coach.recovery import plan_recovery, role_of
from coach.volume import (
    rest_day_note,
    shortfall,
    training_day_note,
    volume_note,
    weekly_sets,
)
from fitrules.days import local_day, zone
from fitrules.wod import item_seconds

__all__ = [
    "GOAL_LABELS",
    "PastEntry",
    "Plan",
    "PlannedItem",
    "UserContext",
    "fatigued_groups",
    "kind_of",
    "plan_wod",
    "primaries",
    "session_minutes",
]

GOAL_LABELS = {
    "strength": "strength",
    "muscle_gain": "muscle gain",
    "endurance": "endurance",
    "weight_loss": "weight loss",
    "general_fitness": "general fitness",
}
KIND_LABELS = {
    "compound": "Compound lift",
    "isolation": "Isolation exercise",
    "core": "Core work",
    "cardio": "Cardio finisher",
    "mobility": "Mobility work",
}
ORDER_RANK = {"compound": 0, "isolation": 1, "core": 2, "cardio": 3, "mobility": 4}


def slot_accepts(slot: str, e: catalog_pb2.Exercise) -> bool:
    kind = kind_of(e)
    if slot == "any":
        return kind not in ("cardio", "mobility")
    if slot == "strength":
        return kind in ("compound", "isolation")
    return kind == slot


def recovery_hours(group: catalog_pb2.MuscleGroup | None) -> int:
    if group is not None and group.region == "lower" and group.size == "large":
        return rx.RECOVERY_HOURS_LARGE_LOWER
    return rx.RECOVERY_HOURS


def fatigued_groups(
    history: Sequence[PastEntry], exercises: Exercises, groups: Groups, now: datetime
) -> dict[int, datetime]:
    """Muscle groups trained hard recently enough to still be recovering: id -> last time.
    Light work (what a recovery session uses: stretches, easy holds, light cardio) does not
    count: the 48-72 h rule is about resistance work."""
    last: dict[int, datetime] = {}
    for entry in history:
        exercise = exercises.get(entry.exercise_id)
        if exercise is None or entry.performed_at > now or role_of(exercise) is not None:
            continue
        for m in primaries(exercise):
            if m.intensity >= rx.HARD_INTENSITY and entry.performed_at > last.get(
                m.id, entry.performed_at - timedelta(seconds=1)
            ):
                last[m.id] = entry.performed_at
    return {
        gid: at
        for gid, at in last.items()
        if now - at < timedelta(hours=recovery_hours(groups.get(gid)))
    }


def _seed(user: UserContext, day: date, *parts: object) -> int:
    text = "|".join([str(user.user_id), day.isoformat(), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _tier(e: catalog_pb2.Exercise, cap: int, fatigued: Mapping[int, datetime]) -> int:
    """0 = ideal; 1 = above the level's difficulty; 2 = a recovering group; 3 = both."""
    tired = any(m.id in fatigued for m in primaries(e))
    return (2 if tired else 0) + (1 if e.difficulty > cap else 0)


@dataclass(frozen=True)
class _Week:
    """This week's sets per primary muscle group and the goal's weekly target."""

    sets: Mapping[int, int]
    target: int


def _score(
    e: catalog_pb2.Exercise,
    jitter: float,
    tier: int,
    covered: set[int],
    parts: set[str],
    groups: Groups,
    week: _Week,
) -> float:
    """Prefer muscle groups short of the week's target, new muscle groups and body parts, then
    the ideal tier; jitter breaks ties."""
    prim = {m.id for m in primaries(e)}
    body = {groups[g].body_part for g in prim if g in groups}
    short, _ = shortfall(e, week.sets, week.target)
    return (
        jitter
        + rx.VOLUME_WEIGHT * short
        + 0.5 * len(prim - covered)
        - 1.0 * len(prim & covered)
        + (0.3 if body - parts else 0.0)
        - 10.0 * tier
    )


def _choose(
    pool: list[catalog_pb2.Exercise],
    tiers: Mapping[int, int],
    slots: Sequence[str],
    size: int,
    rng: random.Random,
    groups: Groups,
    week: _Week,
) -> list[tuple[catalog_pb2.Exercise, str]]:
    chosen: list[tuple[catalog_pb2.Exercise, str]] = []
    covered: set[int] = set()
    parts: set[str] = set()
    jitter = {e.id: rng.random() for e in pool}
    wanted = list(slots[:size]) + ["any"] * max(0, size - len(slots))
    remaining = list(pool)
    for slot in wanted:
        if not remaining:
            break
        matching = (
            [e for e in remaining if slot_accepts(slot, e)]
            or [e for e in remaining if slot_accepts("any", e)]
            or remaining
        )
        scores = {
            e.id: _score(e, jitter[e.id], tiers[e.id], covered, parts, groups, week)
            for e in matching
        }
        best = max(matching, key=lambda e: (scores[e.id], -e.id))
        chosen.append((best, kind_of(best)))
        remaining.remove(best)
        prim_ids = {m.id for m in primaries(best)}
        covered |= prim_ids
        parts |= {groups[g].body_part for g in prim_ids if g in groups}
    return chosen


def _order_key(e: catalog_pb2.Exercise, groups: Groups) -> tuple[int, int, float, int]:
    prim = primaries(e)
    large = any(groups.get(m.id) is not None and groups[m.id].size == "large" for m in prim)
    strongest = max((m.intensity for m in prim), default=0.0)
    return (ORDER_RANK[kind_of(e)], 0 if large else 1, -strongest, e.id)


@dataclass
class _Rx:
    sets: int
    reps: int
    weight: float
    duration: int
    rest: int
    note: str

    @property
    def seconds(self) -> float:
        return item_seconds(self.sets, self.reps, self.duration, self.rest)


@dataclass(frozen=True)
class _Day:
    """What the planner decided about today, shared by the prescriptions."""

    goal: str
    level: str
    now: datetime
    tz: tzinfo
    deload: bool


def _prescribe(
    e: catalog_pb2.Exercise,
    user: UserContext,
    day: _Day,
    history: Sequence[PastEntry],
    groups: Groups,
) -> _Rx:
    p = rx.GOALS[day.goal]
    if kind_of(e) == "cardio":
        return _Rx(1, 0, 0.0, p.cardio_seconds, 0, "")
    sets = p.sets + (
        1 if day.level == "advanced" and day.goal in rx.ADVANCED_EXTRA_SET_GOALS else 0
    )
    if day.level == "beginner":
        sets = min(sets, rx.BEGINNER_MAX_SETS)
    if day.deload:
        sets = deload_sets(sets)
    if e.measure == "seconds":
        return _Rx(sets, 0, 0.0, rx.HOLD_SECONDS[day.level], min(p.rest_seconds, 60), "")
    reps = p.reps
    load = p.load
    if day.level == "beginner":
        low, high = rx.BEGINNER_REPS
        reps = min(max(reps, low), high)
        load = rx.BEGINNER_LOAD
    if e.rm_bodyweight_ratio <= 0:  # bodyweight: no load to prescribe
        return _Rx(sets, reps, 0.0, 0, p.rest_seconds, "")
    body = user.body_weight_kg or rx.DEFAULT_BODY_WEIGHT_KG
    one_rm = e.rm_bodyweight_ratio * body * rx.EXPERIENCE_STRENGTH[day.level]
    estimate = round_down(one_rm * load, e.equipment)
    chosen = working_load(e, reps, estimate, history, groups, day.now, day.tz)
    weight, note = chosen.weight, chosen.note
    if day.deload:
        weight = deload_weight(weight, e.equipment)
        note += f" Deload: {weight:g} kg, {1 - rx.DELOAD_LOAD:.0%} less."
    return _Rx(sets, reps, weight, 0, p.rest_seconds, note)


def session_minutes(items: Sequence[PlannedItem]) -> float:
    """The planned session's length, as the WOD's renderer estimates it (fitrules.wod)."""
    seconds = sum(item_seconds(i.sets, i.reps, i.duration_seconds, i.rest_seconds) for i in items)
    return seconds / 60


def _fit_session(items: list[_Rx], minutes: int, min_rest: int) -> None:
    """Shrink sets, then rest, until the session fits (or cannot shrink further)."""
    strength = [i for i in items if i.reps or (i.duration and i.rest)]

    def total() -> float:
        return sum(i.seconds for i in items) / 60

    while total() > minutes:
        candidates = [i for i in strength if i.sets > rx.MIN_SETS]
        if not candidates:
            break
        max(candidates, key=lambda i: i.sets).sets -= 1
    while total() > minutes:
        candidates = [i for i in strength if i.rest > min_rest]
        if not candidates:
            break
        for i in candidates:
            i.rest = max(min_rest, i.rest - 15)


def _reason(
    e: catalog_pb2.Exercise,
    label: str,
    day: _Day,
    user: UserContext,
    tier: int,
    note: str,
    week: _Week,
    groups: Groups,
) -> str:
    text = (
        f"{KIND_LABELS.get(label, 'Exercise')} for {GOAL_LABELS[day.goal]}; works {group_names(e)}."
    )
    if tier >= 2:
        text += " Few fresh alternatives, so a recently trained group is worked again."
    elif label != "cardio":
        text += " Those muscles are rested."
    short, group_id = shortfall(e, week.sets, week.target)
    if short > 0 and label != "cardio" and group_id in groups:
        text += volume_note(groups[group_id].name, week.sets.get(group_id, 0), week.target)
    if user.equipment and e.equipment not in ("bodyweight", "pool"):
        text += f" Uses your {e.equipment.replace('_', ' ')}."
    return (text + note)[:300]


def plan_wod(
    user: UserContext,
    now: datetime,
    history: Sequence[PastEntry],
    exercises: Exercises,
    muscle_groups: Groups,
    size: int = 6,
) -> Plan:
    goal = user.fitness_goal if user.fitness_goal in rx.GOALS else rx.DEFAULT_GOAL
    level = user.experience if user.experience in rx.DIFFICULTY_CAP else "beginner"
    tz = zone(user.time_zone)
    today = local_day(now, tz)
    yesterday = today - timedelta(days=1)
    done_yesterday = {h.exercise_id for h in history if entry_day(h, tz) == yesterday}
    allowed = [
        e
        for _, e in sorted(exercises.items())
        if e.id not in done_yesterday
        and has_equipment(e, user.equipment)
        and not works_avoided(e, user.avoid_muscle_group_ids)
    ]
    minutes = user.session_minutes or rx.DEFAULT_SESSION_MINUTES
    rest = rest_day_note(history, today, tz, user.training_days_per_week)
    if rest is not None:
        rng = random.Random(_seed(user, today, "recovery", sorted(done_yesterday)))  # noqa: S311
        items = plan_recovery(allowed, rng, minutes * 60)
        if items:
            return Plan("recovery", items, [rest])
    fatigued = fatigued_groups(history, exercises, muscle_groups, now)
    cap = rx.DIFFICULTY_CAP[level]
    tiers = {e.id: _tier(e, cap, fatigued) for e in allowed}
    pool: list[catalog_pb2.Exercise] = []
    for tier in range(4):
        pool += [e for e in allowed if tiers[e.id] == tier]
        if len(pool) >= size:
            break
    week = _Week(weekly_sets(history, exercises, today, tz), rx.WEEKLY_SETS_TARGET[goal])
    rng = random.Random(  # noqa: S311 - variety, not security; seeded for determinism
        _seed(
            user,
            today,
            goal,
            level,
            sorted(user.equipment),
            sorted(user.avoid_muscle_group_ids),
            sorted(done_yesterday),
            sorted(fatigued),
        )
    )
    chosen = _choose(pool, tiers, rx.GOALS[goal].slots, size, rng, muscle_groups, week)
    chosen.sort(key=lambda pair: _order_key(pair[0], muscle_groups))
    deload = deload_note(history, exercises, today, tz)
    day = _Day(goal, level, now, tz, deload is not None)
    plans = [_prescribe(e, user, day, history, muscle_groups) for e, _ in chosen]
    _fit_session(plans, minutes, rx.GOALS[goal].min_rest_seconds)
    items = [
        PlannedItem(
            exercise_id=e.id,
            sets=p.sets,
            reps=p.reps,
            weight_kg=p.weight,
            duration_seconds=p.duration,
            rest_seconds=p.rest,
            reason=_reason(e, label, day, user, tiers[e.id], p.note, week, muscle_groups),
        )
        for (e, label), p in zip(chosen, plans, strict=True)
    ]
    if deload is not None:
        return Plan("deload", items, [deload])
    notes = [training_day_note(history, today, tz, user.training_days_per_week)]
    if rest is not None:  # a rest day without any light exercise available: train lightly
        notes = [rest, "No light exercise fits your equipment today: a regular session."]
    return Plan("training", items, notes)
