"""fitco.coach.v1.CoachService, new implementation: a personalised, stateless WOD."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2
from prometheus_client import Counter

from coach.cache import LruCache
from coach.catalog_cache import CatalogCache, CatalogView
from coach.monolith_client import Metadata, MonolithClient
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
    """GetWod. The hot path (a user asking again the same day) is answered from memory:
    the recorded WOD never changes for the day, and the rendered answer (which shows the
    profile's goal and weight) is reused for `answer_ttl` seconds."""

    def __init__(
        self,
        monolith: MonolithClient,
        catalog: CatalogCache,
        clock: Clock,
        *,
        cache_entries: int = 100_000,
        answer_ttl: float = 30.0,
    ) -> None:
        self._monolith = monolith
        self._catalog = catalog
        self._clock = clock
        self._served: LruCache[tuple[int, date], history_pb2.ServedWod] = LruCache(cache_entries)
        self._answers: LruCache[tuple[int, date], coach_pb2.GetWodResponse] = LruCache(
            cache_entries, ttl_seconds=answer_ttl
        )

    def GetWod(
        self, request: coach_pb2.GetWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.GetWodResponse:
        principal = current_principal()
        now = self._clock.now()
        key = (principal.user_id, utc_day(now))
        answer = self._answers.get(key)
        if answer is not None:
            WODS.labels("cached").inc()
            return answer
        catalog = self._catalog.get()
        md = self._monolith.metadata(principal)
        served = self._served.get(key)
        if served is not None:
            profile = self._monolith.profile(md)
        else:
            served, profile = self._monolith.served_wod_and_profile(key[1], md)
            if served is None:
                served = self._generate(principal.user_id, now, profile, catalog, md)
            else:
                WODS.labels("recorded").inc()
            self._served.put(key, served)
        answer = render_wod(
            served,
            catalog.exercises,
            fitness_goal=profile.fitness_goal,
            body_weight_kg=profile.weight,
        )
        self._answers.put(key, answer)
        return answer

    def _generate(
        self,
        user_id: int,
        now: datetime,
        profile: user_pb2.Profile,
        catalog: CatalogView,
        md: Metadata,
    ) -> history_pb2.ServedWod:
        today = utc_day(now)
        prefs, history = self._monolith.preferences_and_history(
            datetime.combine(today - timedelta(days=HISTORY_DAYS), datetime.min.time(), UTC), md
        )
        user = UserContext(
            user_id=user_id,
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
        served = self._monolith.record_wod(today, [_item(n, p) for n, p in enumerate(planned)], md)
        WODS.labels("generated").inc()
        return served
