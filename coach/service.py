"""fitco.coach.v1.CoachService, new implementation: a personalised, stateless WOD."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2
from prometheus_client import Counter

from coach.catalog_cache import CatalogCache
from coach.monolith_client import MonolithClient
from coach.planner import PastEntry, PlannedItem, UserContext, plan_wod
from fitcore.auth import current_principal
from fitcore.clock import Clock, utc_day
from fitcore.errors import FailedPrecondition
from fitcore.wodview import render_wod

WODS = Counter("fitco_coach_wods_total", "WOD requests answered by the coach", ["path"])
HISTORY_DAYS = 14  # recovery needs 72 h; progression looks back two weeks


def _past(entries: list[history_pb2.HistoryEntry]) -> list[PastEntry]:
    return [
        PastEntry(
            exercise_id=e.exercise_id,
            performed_at=e.performed_at.ToDatetime(tzinfo=UTC),
            day=date.fromisoformat(e.day),
            sets=e.sets,
            reps=e.reps,
            weight_kg=e.weight_kg,
            duration_seconds=e.duration_seconds,
            source=e.source,
        )
        for e in entries
    ]


def _item(position: int, planned: PlannedItem) -> history_pb2.WodItem:
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


class CoachServicer(coach_pb2_grpc.CoachServiceServicer):
    def __init__(self, monolith: MonolithClient, catalog: CatalogCache, clock: Clock) -> None:
        self._monolith = monolith
        self._catalog = catalog
        self._clock = clock

    def GetWod(
        self, request: coach_pb2.GetWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.GetWodResponse:
        principal = current_principal()
        md = self._monolith.metadata(principal)
        now = self._clock.now()
        today = utc_day(now)
        catalog = self._catalog.get()
        served, profile = self._monolith.served_wod_and_profile(today, md)
        if served is not None:
            WODS.labels("recorded").inc()
        else:
            prefs, history = self._monolith.preferences_and_history(
                datetime.combine(today - timedelta(days=HISTORY_DAYS), datetime.min.time(), UTC),
                md,
            )
            user = UserContext(
                user_id=principal.user_id,
                fitness_goal=profile.fitness_goal,
                experience=profile.experience,
                body_weight_kg=profile.weight,
                equipment=frozenset(prefs.equipment),
                avoid_muscle_group_ids=frozenset(prefs.avoid_muscle_group_ids),
                session_minutes=prefs.session_minutes,
            )
            planned = plan_wod(user, now, _past(history), catalog.exercises, catalog.muscle_groups)
            if not planned:
                raise FailedPrecondition(
                    "no exercise fits your equipment and the muscle groups you avoid",
                    reason="NO_SUITABLE_EXERCISE",
                )
            served = self._monolith.record_wod(
                today, [_item(n, p) for n, p in enumerate(planned)], md
            )
            WODS.labels("generated").inc()
        return render_wod(
            served,
            catalog.exercises,
            fitness_goal=profile.fitness_goal,
            body_weight_kg=profile.weight,
        )
