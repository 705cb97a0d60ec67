"""A planned rest day's WOD: a short, light recovery session (pure functions).

Three or four low-intensity exercises from the catalog, chosen by category and measure:
stretches (category "mobility"), easy core holds, light cardio (below vigorous METs), and when
those run short, gentle bodyweight moves (light METs, difficulty 1). No loads. Light cardio comes
first as a warm-up, stretches last. Numbers and sources: `coach.prescription`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from fitco.catalog.v1 import catalog_pb2

from coach import prescription as rx
from coach.context import PlannedItem, group_names, kind_of
from fitrules.wod import item_seconds

REST_DAY = "Planned rest day: light work only, to recover."
ORDER = {"cardio": 0, "gentle": 1, "hold": 2, "mobility": 3}
LABELS = {
    "mobility": "Easy stretch",
    "hold": "Easy core hold",
    "cardio": "Light cardio at a conversational pace",
    "gentle": "Gentle movement",
}


def role_of(e: catalog_pb2.Exercise) -> str | None:
    """What a recovery session may use the exercise for (None: too demanding)."""
    if e.category == "mobility":
        return "mobility"
    if (
        e.category == "core"
        and e.measure == "seconds"
        and e.difficulty <= rx.RECOVERY_MAX_DIFFICULTY
    ):
        return "hold"
    if kind_of(e) == "cardio" and e.met_value < rx.VIGOROUS_MET:
        return "cardio"
    if (
        e.measure == "reps"
        and e.difficulty == 1
        and e.rm_bodyweight_ratio == 0
        and 0 < e.met_value < rx.LIGHT_MET
    ):
        return "gentle"
    return None


def _prescribe(role: str, minutes_left: float) -> tuple[int, int, int, int]:
    """(sets, reps, duration_seconds, rest_seconds)."""
    if role == "mobility":
        return rx.STRETCH_SETS, 0, rx.STRETCH_SECONDS, rx.STRETCH_REST
    if role == "hold":
        return rx.RECOVERY_HOLD_SETS, 0, rx.RECOVERY_HOLD_SECONDS, rx.RECOVERY_HOLD_REST
    if role == "cardio":  # what time is left, within bounds
        seconds = min(rx.RECOVERY_CARDIO_SECONDS, max(rx.RECOVERY_CARDIO_MIN_SECONDS, minutes_left))
        return 1, 0, int(seconds), 0
    return rx.GENTLE_SETS, rx.GENTLE_REPS, 0, rx.GENTLE_REST


def plan_recovery(
    allowed: Sequence[catalog_pb2.Exercise],
    rng: random.Random,
    session_seconds: float,
) -> list[PlannedItem]:
    """Up to RECOVERY_SIZE light exercises from `allowed` (already filtered for equipment,
    avoided groups and yesterday), fitted in `session_seconds` where the cardio can shrink."""
    by_role: dict[str, list[catalog_pb2.Exercise]] = {}
    for e in allowed:
        role = role_of(e)
        if role is not None:
            by_role.setdefault(role, []).append(e)
    chosen: list[tuple[catalog_pb2.Exercise, str]] = []
    wanted = list(rx.RECOVERY_ROLES) + ["gentle"] * rx.RECOVERY_SIZE
    for role in wanted:
        if len(chosen) >= rx.RECOVERY_SIZE:
            break
        options = [e for e in by_role.get(role, []) if all(e.id != c.id for c, _ in chosen)]
        if options:
            chosen.append((options[rng.randrange(len(options))], role))
    chosen.sort(key=lambda pair: (ORDER[pair[1]], pair[0].id))
    fixed = 0.0
    for _, role in chosen:
        if role != "cardio":
            sets, reps, duration, rest = _prescribe(role, 0)
            fixed += item_seconds(sets, reps, duration, rest)
    items = []
    for e, role in chosen:
        sets, reps, duration, rest = _prescribe(role, session_seconds - fixed)
        items.append(
            PlannedItem(
                exercise_id=e.id,
                sets=sets,
                reps=reps,
                weight_kg=0.0,
                duration_seconds=duration,
                rest_seconds=rest,
                reason=f"{LABELS[role]} for {group_names(e)}; no load. {REST_DAY}"[:300],
            )
        )
    return items
