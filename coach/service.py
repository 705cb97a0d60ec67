"""fitco.coach.v1.CoachService, new implementation: a personalised, stateless WOD. Caching and
rendering here; planning and recording the WOD in coach.wod_plans."""

from __future__ import annotations

from datetime import date

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2
from prometheus_client import Counter

from coach.catalog_cache import CatalogCache, CatalogView
from coach.monolith_client import MonolithClient
from coach.wod_plans import Today, WodPlanner
from fitcore.auth import current_principal
from fitcore.cache import LruCache
from fitcore.clock import Clock
from fitcore.entitlements import EntitlementsClient, premium_required
from fitrules.days import local_day, zone
from fitrules.wod import render_wod, wants_top_up

WODS = Counter("fitco_coach_wods_total", "WOD requests answered by the coach", ["path"])
# How long a user's time zone is trusted from memory (the day of a request depends on it).
ZONE_TTL_SECONDS = 60.0
Key = tuple[int, date]  # (user, their day)


class CoachServicer(coach_pb2_grpc.CoachServiceServicer):
    """GetWod and RegenerateWod, for the user's local day, sized by the user's plan (billing,
    through fitcore.entitlements: asked at most every few seconds per user).

    The hot path (a user asking again the same day) is answered from memory: the user's time
    zone is kept for `zone_ttl` seconds (it decides which day it is), and the recorded WOD and
    its rendered answer (which shows the profile's goal and weight) for `answer_ttl` seconds.
    An answer is reused only for the WOD size it was made for: after an upgrade the next
    request tops the WOD up (coach.wod_plans). A WOD replaced elsewhere (a regeneration through
    the legacy implementation or another coach) shows here within `answer_ttl`. Without the
    zone in memory, the profile is read first; with it, the profile and the day's WOD are read
    in one parallel round trip."""

    def __init__(
        self,
        monolith: MonolithClient,
        catalog: CatalogCache,
        clock: Clock,
        entitlements: EntitlementsClient,
        *,
        cache_entries: int = 100_000,
        answer_ttl: float = 30.0,
        zone_ttl: float = ZONE_TTL_SECONDS,
    ) -> None:
        self._monolith = monolith
        self._catalog = catalog
        self._clock = clock
        self._entitlements = entitlements
        self._planner = WodPlanner(monolith)
        self._zones: LruCache[int, str] = LruCache(cache_entries, ttl_seconds=zone_ttl)
        self._served: LruCache[Key, history_pb2.ServedWod] = LruCache(
            cache_entries, ttl_seconds=answer_ttl
        )
        # The answer with the WOD size it was made for.
        self._answers: LruCache[Key, tuple[int, coach_pb2.GetWodResponse]] = LruCache(
            cache_entries, ttl_seconds=answer_ttl
        )

    def GetWod(
        self, request: coach_pb2.GetWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.GetWodResponse:
        principal = current_principal()
        user_id = principal.user_id
        size = self._entitlements.get(principal).wod_exercises
        now = self._clock.now()
        md = self._monolith.metadata(principal)
        time_zone = self._zones.get(user_id)
        profile: user_pb2.Profile | None = None
        if time_zone is None:
            profile = self._monolith.profile(md)
            time_zone = profile.time_zone
            self._zones.put(user_id, time_zone)
        key = (user_id, local_day(now, zone(time_zone)))
        cached = self._answers.get(key)
        if cached is not None and cached[0] == size:
            WODS.labels("cached").inc()
            return cached[1]
        catalog = self._catalog.get()
        served = self._served.get(key)
        fresh = served is None  # not from memory: read or generated now
        if served is not None:
            profile = profile or self._monolith.profile(md)
        elif profile is not None:  # read just now, for the zone
            served = self._monolith.served_wod(key[1], md)
        else:
            served, profile = self._monolith.served_wod_and_profile(key[1], md)
        if profile.time_zone != time_zone:  # moved since cached: their day may differ
            self._zones.put(user_id, profile.time_zone)
            key = (user_id, local_day(now, zone(profile.time_zone)))
            served = self._served.get(key) or self._monolith.served_wod(key[1], md)
            fresh = True
        today = Today(user_id, profile, now, key[1], md)
        if served is None:
            served = self._planner.generate(today, catalog, size)
            WODS.labels("generated").inc()
        elif wants_top_up(served.kind, len(served.items), size):
            served = self._planner.top_up(today, catalog, served, size)
            WODS.labels("topped_up").inc()
        elif fresh:
            WODS.labels("recorded").inc()
        return self._remember(key, size, served, profile, catalog)

    def RegenerateWod(
        self, request: coach_pb2.RegenerateWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.RegenerateWodResponse:
        principal = current_principal()
        user_id = principal.user_id
        plan = self._entitlements.get(principal)
        if plan.wod_regenerations_per_day <= 0:
            raise premium_required("a new workout of the day", plan)
        now = self._clock.now()
        md = self._monolith.metadata(principal)
        # Read fresh, never from memory: the version replaced must be the stored one.
        profile = self._monolith.profile(md)
        self._zones.put(user_id, profile.time_zone)
        key = (user_id, local_day(now, zone(profile.time_zone)))
        catalog = self._catalog.get()
        today = Today(user_id, profile, now, key[1], md)
        served = self._monolith.served_wod(key[1], md) or self._planner.generate(
            today, catalog, plan.wod_exercises
        )
        new = self._planner.regenerate(
            today, catalog, served, plan.wod_exercises, plan.wod_regenerations_per_day
        )
        WODS.labels("regenerated").inc()
        return coach_pb2.RegenerateWodResponse(
            wod=self._remember(key, plan.wod_exercises, new, profile, catalog),
            regenerations_left=max(plan.wod_regenerations_per_day - new.regenerations, 0),
        )

    def _remember(
        self,
        key: Key,
        size: int,
        served: history_pb2.ServedWod,
        profile: user_pb2.Profile,
        catalog: CatalogView,
    ) -> coach_pb2.GetWodResponse:
        """Render the WOD and keep it, with the size it was made for, for the next requests."""
        self._served.put(key, served)
        answer = render_wod(
            served,
            catalog.exercises,
            fitness_goal=profile.fitness_goal,
            body_weight_kg=profile.weight,
            time_zone=profile.time_zone,
        )
        self._answers.put(key, (size, answer))
        return answer
