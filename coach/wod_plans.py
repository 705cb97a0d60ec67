"""Today's WOD in the coach: the first one of the day, its top-up after an upgrade and a
premium regeneration. Reads what the planner needs from the monolith (profile given,
preferences, 28 days of history), plans with the pure planner (coach.planner) and records
through the monolith's HistoryService (RecordWod, ExtendWod, ReplaceWod), so both WOD
implementations serve the same WOD all day.

- Size: the user's plan's (fitco.billing.v1.Entitlements.wod_exercises), given by the servicer.
- Top-up (a WOD served smaller than the plan now allows, e.g. before an upgrade): the planner
  plans the full size from the history without today's WOD, the same inputs the served WOD was
  planned from, and what it chose beyond the served exercises is appended. Deterministic per
  user and day, so every replica appends the same; ExtendWod appends once.
- Regeneration: the replaced WOD is planned as if done yesterday. The planner then leaves its
  exercises out (never two days in a row) and rests their muscle groups (48-72 h, ACSM 2011),
  so the new WOD is another workout rather than a reshuffle; those rows only exist in the
  planner's input. Its real rows leave the history (ReplaceWod).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2

from coach.catalog_cache import CatalogView
from coach.monolith_client import MonolithClient
from coach.planner import PastEntry, Plan, PlannedItem, UserContext, plan_wod
from fitcore.clients import Metadata
from fitcore.errors import FailedPrecondition
from fitrules.days import day_start, zone
from fitrules.wod import wants_top_up

# History the planner reads: a deload looks at the last 3 full weeks before this one (up to 27
# days back); recovery needs 72 h; e1RM and progression look back two weeks.
HISTORY_DAYS = 28
# Pages of 500 history rows read at most (newest first): 2,000 rows cover 28 days of a heavy
# user (six exercises x five sets a day and the served WODs is about 1,000); beyond that the
# oldest rows are left out, which only weakens the deload check.
HISTORY_PAGES = 4
SOURCE_WOD = "wod"  # history rows of a served WOD (history.proto HistoryEntry.source)


def past_entries(entries: list[history_pb2.HistoryEntry], without_wod: int = 0) -> list[PastEntry]:
    """History rows as the planner's entries, without the rows of WOD `without_wod`."""
    return [
        PastEntry(
            exercise_id=e.exercise_id,
            performed_at=e.performed_at.ToDatetime(tzinfo=UTC),
            sets=e.sets,
            reps=e.reps,
            weight_kg=e.weight_kg,
            duration_seconds=e.duration_seconds,
            source=e.source,
            rpe=e.rpe,
            session_id=e.session_id,
        )
        for e in entries
        if not (without_wod and e.wod_id == without_wod)
    ]


def wod_item(position: int, planned: PlannedItem) -> history_pb2.WodItem:
    return history_pb2.WodItem(
        exercise_id=planned.exercise_id,
        position=position,
        sets=planned.sets,
        reps=planned.reps,
        weight_kg=planned.weight_kg,
        duration_seconds=planned.duration_seconds,
        rest_seconds=planned.rest_seconds,
        reason=planned.reason,
    )


def as_done_yesterday(wod: history_pb2.ServedWod, today: date, tz_name: str) -> list[PastEntry]:
    """The WOD's exercises as if served at noon yesterday (source "wod": not work, so weekly
    volume, progression and training days ignore them; the day and fatigue rules see them)."""
    noon = datetime.combine(today - timedelta(days=1), time(12), zone(tz_name)).astimezone(UTC)
    return [PastEntry(i.exercise_id, noon, i.sets, i.reps, 0.0, 0, SOURCE_WOD) for i in wod.items]


def top_up_items(plan: Plan, served: history_pb2.ServedWod, size: int) -> list[PlannedItem]:
    """What the full-size `plan` holds beyond the served exercises, as many as are missing."""
    have = {i.exercise_id for i in served.items}
    return [p for p in plan.items if p.exercise_id not in have][: max(size - len(have), 0)]


@dataclass(frozen=True)
class Today:
    """Who and when: the request's user, their profile, now and their day."""

    user_id: int
    profile: user_pb2.Profile
    now: datetime
    day: date
    md: Metadata


class WodPlanner:
    def __init__(self, monolith: MonolithClient) -> None:
        self._monolith = monolith

    def _inputs(self, t: Today) -> tuple[UserContext, list[history_pb2.HistoryEntry]]:
        since = day_start(t.day - timedelta(days=HISTORY_DAYS), zone(t.profile.time_zone))
        prefs, history = self._monolith.preferences_and_history(since, t.md, HISTORY_PAGES)
        user = UserContext(
            user_id=t.user_id,
            fitness_goal=t.profile.fitness_goal,
            experience=t.profile.experience,
            body_weight_kg=t.profile.weight,
            equipment=frozenset(prefs.equipment),
            avoid_muscle_group_ids=frozenset(prefs.avoid_muscle_group_ids),
            session_minutes=prefs.session_minutes,
            time_zone=t.profile.time_zone,
            training_days_per_week=prefs.training_days_per_week,
        )
        return user, history

    @staticmethod
    def _plan(
        t: Today, user: UserContext, past: list[PastEntry], catalog: CatalogView, size: int
    ) -> Plan:
        plan = plan_wod(user, t.now, past, catalog.exercises, catalog.muscle_groups, size=size)
        if not plan.items:
            raise FailedPrecondition(
                "no exercise fits your equipment and the muscle groups you avoid",
                reason="NO_SUITABLE_EXERCISE",
            )
        return plan

    def generate(self, t: Today, catalog: CatalogView, size: int) -> history_pb2.ServedWod:
        """Plan today's WOD of `size` exercises and record it (the first recorded wins)."""
        user, history = self._inputs(t)
        plan = self._plan(t, user, past_entries(history), catalog, size)
        return self._monolith.record_wod(
            t.day,
            [wod_item(n, p) for n, p in enumerate(plan.items)],
            t.md,
            kind=plan.kind,
            notes=plan.notes,
        )

    def top_up(
        self, t: Today, catalog: CatalogView, served: history_pb2.ServedWod, size: int
    ) -> history_pb2.ServedWod:
        """Append planned exercises until the served WOD holds `size` (ExtendWod)."""
        user, history = self._inputs(t)
        plan = self._plan(t, user, past_entries(history, without_wod=served.id), catalog, size)
        more = top_up_items(plan, served, size)
        if not more:
            return served
        first = len(served.items)
        items = [wod_item(first + n, p) for n, p in enumerate(more)]
        return self._monolith.extend_wod(served, items, size, t.md)

    def regenerate(
        self,
        t: Today,
        catalog: CatalogView,
        served: history_pb2.ServedWod,
        size: int,
        allowance: int,
    ) -> history_pb2.ServedWod:
        """Plan another WOD for today and replace `served` with it (ReplaceWod), within the
        plan's `allowance` a day."""
        user, history = self._inputs(t)
        past = past_entries(history, without_wod=served.id)
        plan = self._plan(
            t, user, past + as_done_yesterday(served, t.day, t.profile.time_zone), catalog, size
        )
        if wants_top_up(plan.kind, len(plan.items), size):
            # Too few others fit the user's equipment: the replaced WOD's exercises may return.
            plan = self._plan(t, user, past, catalog, size)
        return self._monolith.replace_wod(
            served,
            [wod_item(n, p) for n, p in enumerate(plan.items)],
            t.md,
            max_regenerations=allowance,
            kind=plan.kind,
            notes=plan.notes,
        )
