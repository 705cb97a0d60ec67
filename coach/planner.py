"""The coach's WOD planner: pure, deterministic functions (no I/O).

Given the user's goal, level, equipment, muscle groups to avoid, recent history and the catalog,
choose and order a session and prescribe sets, reps, load and rest. The numbers live in
`coach.prescription`, with their sources.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from fitcore.clock import utc_day

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
}


@dataclass(frozen=True)
class UserContext:
    user_id: int
    fitness_goal: str
    experience: str
    body_weight_kg: float
    equipment: frozenset[str]
    avoid_muscle_group_ids: frozenset[int]
    session_minutes: int


@dataclass(frozen=True)
class PastEntry:
    exercise_id: int
    performed_at: datetime
    day: date
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    source: str


@dataclass(frozen=True)
class PlannedItem:
    exercise_id: int
    sets: int
    reps: int
    weight_kg: float
    duration_seconds: int
    rest_seconds: int
    reason: str


Exercises = Mapping[int, catalog_pb2.Exercise]
Groups = Mapping[int, catalog_pb2.MuscleGroup]


def kind_of(e: catalog_pb2.Exercise) -> str:
    if e.category == "cardio" or e.measure == "minutes":
        return "cardio"
    if e.category == "core":
        return "core"
    return "compound" if e.mechanic == "compound" else "isolation"


def slot_accepts(slot: str, e: catalog_pb2.Exercise) -> bool:
    kind = kind_of(e)
    if slot == "any":
        return kind != "cardio"
    if slot == "strength":
        return kind in ("compound", "isolation")
    return kind == slot


def primaries(e: catalog_pb2.Exercise) -> list[catalog_pb2.MuscleGroupImpact]:
    return [m for m in e.muscle_groups if m.is_primary]


def has_equipment(e: catalog_pb2.Exercise, available: frozenset[str]) -> bool:
    if not available:  # nothing said: a fully equipped gym
        return True
    return set(e.equipment_needed) <= available | {"bodyweight"}


def works_avoided(e: catalog_pb2.Exercise, avoid: frozenset[int]) -> bool:
    return any(
        m.id in avoid and (m.is_primary or m.intensity >= rx.AVOID_INTENSITY)
        for m in e.muscle_groups
    )


def recovery_hours(group: catalog_pb2.MuscleGroup | None) -> int:
    if group is not None and group.region == "lower" and group.size == "large":
        return rx.RECOVERY_HOURS_LARGE_LOWER
    return rx.RECOVERY_HOURS


def fatigued_groups(
    history: Sequence[PastEntry], exercises: Exercises, groups: Groups, now: datetime
) -> dict[int, datetime]:
    """Muscle groups trained hard recently enough to still be recovering: id -> last time."""
    last: dict[int, datetime] = {}
    for entry in history:
        exercise = exercises.get(entry.exercise_id)
        if exercise is None or entry.performed_at > now:
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


def _score(
    e: catalog_pb2.Exercise,
    jitter: float,
    tier: int,
    covered: set[int],
    parts: set[str],
    groups: Groups,
) -> float:
    """Prefer new muscle groups and body parts, then the ideal tier; jitter breaks ties."""
    prim = {m.id for m in primaries(e)}
    body = {groups[g].body_part for g in prim if g in groups}
    return (
        jitter
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
            or [e for e in remaining if kind_of(e) != "cardio"]
            or remaining
        )

        scores = {
            e.id: _score(e, jitter[e.id], tiers[e.id], covered, parts, groups) for e in matching
        }
        best = max(matching, key=lambda e: (scores[e.id], -e.id))
        chosen.append((best, kind_of(best)))
        remaining.remove(best)
        prim_ids = {m.id for m in primaries(best)}
        covered |= prim_ids
        parts |= {groups[g].body_part for g in prim_ids if g in groups}
    return chosen


def _order_key(e: catalog_pb2.Exercise, groups: Groups) -> tuple[int, int, float, int]:
    rank = {"compound": 0, "isolation": 1, "core": 2, "cardio": 3}[kind_of(e)]
    prim = primaries(e)
    large = any(groups.get(m.id) is not None and groups[m.id].size == "large" for m in prim)
    strongest = max((m.intensity for m in prim), default=0.0)
    return (rank, 0 if large else 1, -strongest, e.id)


def _round_down(kg: float, equipment: str) -> float:
    step = rx.LOAD_STEP.get(equipment, 0.5)
    value = math.floor(kg / step + 1e-9) * step
    return max(value, rx.MIN_LOAD.get(equipment, step if kg > 0 else 0.0))


def _region(e: catalog_pb2.Exercise, groups: Groups) -> str:
    prim = sorted(primaries(e), key=lambda m: -m.intensity)
    group = groups.get(prim[0].id) if prim else None
    return group.region if group is not None else "upper"


@dataclass
class _Rx:
    sets: int
    reps: int
    weight: float
    duration: int
    rest: int
    note: str


def _prescribe(
    e: catalog_pb2.Exercise,
    user: UserContext,
    goal: str,
    level: str,
    history: Sequence[PastEntry],
    groups: Groups,
) -> _Rx:
    p = rx.GOALS[goal]
    if e.measure == "minutes" or kind_of(e) == "cardio":
        return _Rx(1, 0, 0.0, p.cardio_seconds, 0, "")
    sets = p.sets + (1 if level == "advanced" and goal in rx.ADVANCED_EXTRA_SET_GOALS else 0)
    if level == "beginner":
        sets = min(sets, rx.BEGINNER_MAX_SETS)
    if e.measure == "seconds":
        return _Rx(sets, 0, 0.0, rx.HOLD_SECONDS[level], min(p.rest_seconds, 60), "")
    reps = p.reps
    load = p.load
    if level == "beginner":
        low, high = rx.BEGINNER_REPS
        reps = min(max(reps, low), high)
        load = rx.BEGINNER_LOAD
    weight = 0.0
    note = ""
    if e.rm_bodyweight_ratio > 0:
        body = user.body_weight_kg or rx.DEFAULT_BODY_WEIGHT_KG
        one_rm = e.rm_bodyweight_ratio * body * rx.EXPERIENCE_STRENGTH[level]
        weight = _round_down(one_rm * load, e.equipment)
        logged = [
            h for h in history if h.exercise_id == e.id and h.source == "logged" and h.weight_kg > 0
        ]
        if logged:
            last = max(logged, key=lambda h: h.performed_at)
            weight = last.weight_kg
            note = f" Same load as last time ({last.weight_kg:g} kg)."
            if last.reps >= reps + rx.PROGRESSION_EXTRA_REPS:
                step = max(
                    rx.LOAD_STEP.get(e.equipment, 1.0), rx.PROGRESSION_MIN_KG[_region(e, groups)]
                )
                weight = last.weight_kg + step
                note = (
                    f" You did {last.reps} reps at {last.weight_kg:g} kg last time: +{step:g} kg."
                )
    return _Rx(sets, reps, weight, 0, p.rest_seconds, note)


def _minutes(items: Sequence[_Rx]) -> float:
    total = 0.0
    for i in items:
        if i.reps:
            work = i.sets * i.reps * rx.SECONDS_PER_REP
        elif i.sets > 1 or i.rest:
            work = i.sets * i.duration
        else:
            work = i.duration
        total += work + max(i.sets - 1, 0) * i.rest
    return total / 60


def _fit_session(items: list[_Rx], minutes: int, min_rest: int) -> None:
    """Shrink sets, then rest, until the session fits (or cannot shrink further)."""
    strength = [i for i in items if i.reps or (i.duration and i.rest)]
    while _minutes(items) > minutes:
        candidates = [i for i in strength if i.sets > rx.MIN_SETS]
        if not candidates:
            break
        max(candidates, key=lambda i: i.sets).sets -= 1
    while _minutes(items) > minutes:
        candidates = [i for i in strength if i.rest > min_rest]
        if not candidates:
            break
        for i in candidates:
            i.rest = max(min_rest, i.rest - 15)


def _reason(
    e: catalog_pb2.Exercise,
    label: str,
    goal: str,
    user: UserContext,
    tier: int,
    note: str,
) -> str:
    names = " and ".join(m.name for m in primaries(e)[:2]) or e.name
    text = f"{KIND_LABELS.get(label, 'Exercise')} for {GOAL_LABELS[goal]}; works {names}."
    if tier >= 2:
        text += " Few fresh alternatives, so a recently trained group is worked again."
    elif label != "cardio":
        text += " Those muscles are rested."
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
) -> list[PlannedItem]:
    goal = user.fitness_goal if user.fitness_goal in rx.GOALS else rx.DEFAULT_GOAL
    level = user.experience if user.experience in rx.DIFFICULTY_CAP else "beginner"
    today = utc_day(now)
    yesterday = today - timedelta(days=1)
    done_yesterday = {h.exercise_id for h in history if h.day == yesterday}
    allowed = [
        e
        for _, e in sorted(exercises.items())
        if e.id not in done_yesterday
        and has_equipment(e, user.equipment)
        and not works_avoided(e, user.avoid_muscle_group_ids)
    ]
    fatigued = fatigued_groups(history, exercises, muscle_groups, now)
    cap = rx.DIFFICULTY_CAP[level]
    tiers = {e.id: _tier(e, cap, fatigued) for e in allowed}
    pool: list[catalog_pb2.Exercise] = []
    for tier in range(4):
        pool += [e for e in allowed if tiers[e.id] == tier]
        if len(pool) >= size:
            break
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
    chosen = _choose(pool, tiers, rx.GOALS[goal].slots, size, rng, muscle_groups)
    chosen.sort(key=lambda pair: _order_key(pair[0], muscle_groups))
    plans = [_prescribe(e, user, goal, level, history, muscle_groups) for e, _ in chosen]
    _fit_session(
        plans, user.session_minutes or rx.DEFAULT_SESSION_MINUTES, rx.GOALS[goal].min_rest_seconds
    )
    return [
        PlannedItem(
            exercise_id=e.id,
            sets=p.sets,
            reps=p.reps,
            weight_kg=p.weight,
            duration_seconds=p.duration,
            rest_seconds=p.rest,
            reason=_reason(e, label, goal, user, tiers[e.id], p.note),
        )
        for (e, label), p in zip(chosen, plans, strict=True)
    ]
