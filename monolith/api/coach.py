"""fitco.coach.v1.CoachService, legacy implementation (inside the monolith). The WOD's size and
the regenerations a day are the caller's plan's, asked of billing (fitcore.entitlements)."""

from __future__ import annotations

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc

from fitcore.auth import current_principal
from fitcore.entitlements import EntitlementsClient, premium_required
from fitrules.wod import render_wod
from monolith.api import convert
from monolith.domain.catalog import Catalog
from monolith.domain.legacy_wod import LegacyAnswer, LegacyWod


class LegacyCoachServicer(coach_pb2_grpc.CoachServiceServicer):
    def __init__(
        self, legacy: LegacyWod, catalog: Catalog, entitlements: EntitlementsClient
    ) -> None:
        self._legacy = legacy
        self._catalog = catalog
        self._entitlements = entitlements

    def _render(self, answer: LegacyAnswer) -> coach_pb2.GetWodResponse:
        return render_wod(
            convert.served_wod(answer.wod),
            self._catalog.snapshot().by_id,
            fitness_goal=answer.fitness_goal,
            body_weight_kg=answer.body_weight_kg,
            time_zone=answer.time_zone,
        )

    def GetWod(
        self, request: coach_pb2.GetWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.GetWodResponse:
        principal = current_principal()
        plan = self._entitlements.get(principal)
        return self._render(self._legacy.todays_wod(principal.user_id, plan.wod_exercises))

    def RegenerateWod(
        self, request: coach_pb2.RegenerateWodRequest, context: grpc.ServicerContext
    ) -> coach_pb2.RegenerateWodResponse:
        principal = current_principal()
        plan = self._entitlements.get(principal)
        if plan.wod_regenerations_per_day <= 0:
            raise premium_required("a new workout of the day", plan)
        answer, left = self._legacy.regenerate(
            principal.user_id, plan.wod_exercises, plan.wod_regenerations_per_day
        )
        return coach_pb2.RegenerateWodResponse(wod=self._render(answer), regenerations_left=left)
