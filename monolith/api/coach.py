"""fitco.coach.v1.CoachService, legacy implementation (inside the monolith)."""

from __future__ import annotations

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc

from fitcore.auth import current_principal
from fitcore.wodview import render_wod
from monolith.api import convert
from monolith.domain.catalog import Catalog
from monolith.domain.legacy_wod import LegacyWod
from monolith.domain.profiles import Profiles


class LegacyCoachServicer(coach_pb2_grpc.CoachServiceServicer):
    def __init__(self, legacy: LegacyWod, catalog: Catalog, profiles: Profiles) -> None:
        self._legacy = legacy
        self._catalog = catalog
        self._profiles = profiles

    def GetWod(
        self, request: coach_pb2.GetWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.GetWodResponse:
        user_id = current_principal().user_id
        wod = self._legacy.todays_wod(user_id)
        profile = self._profiles.get_profile(user_id)
        return render_wod(
            convert.served_wod(wod),
            self._catalog.snapshot().by_id,
            fitness_goal=profile.fitness_goal,
            body_weight_kg=profile.weight,
        )
