"""fitco.catalog.v1.CatalogService."""

from __future__ import annotations

import grpc
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from fitcore.errors import Validator
from monolith.domain.catalog import Catalog
from monolith.domain.common import decode_page_token, encode_page_token, page_size, token_id


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def ListExercises(
        self, request: catalog_pb2.ListExercisesRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListExercisesResponse:
        v = Validator()
        v.check(request.muscle_group_id >= 0, "muscle_group_id", "must not be negative")
        v.check(0 <= request.difficulty <= 5, "difficulty", "must be 1 to 5 (0 = any)")
        limit = page_size(request.page_size, 50, 200)
        after = decode_page_token(request.page_token)
        v.raise_if_any()
        matching = self._catalog.snapshot().filtered(
            request.muscle_group_id, request.equipment, request.difficulty
        )
        start = token_id(after, 0) if after else 0
        page = [e for e in matching if e.id > start][: limit + 1]
        more = len(page) > limit
        page = page[:limit]
        return catalog_pb2.ListExercisesResponse(
            exercises=page,
            next_page_token=encode_page_token([page[-1].id]) if more else "",
            total_size=len(matching),
        )

    def GetExercise(
        self, request: catalog_pb2.GetExerciseRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.GetExerciseResponse:
        return catalog_pb2.GetExerciseResponse(
            exercise=self._catalog.snapshot().exercise(request.exercise_id)
        )

    def ListMuscleGroups(
        self, request: catalog_pb2.ListMuscleGroupsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListMuscleGroupsResponse:
        return catalog_pb2.ListMuscleGroupsResponse(
            muscle_groups=self._catalog.snapshot().muscle_groups
        )

    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.GetCatalogResponse:
        snap = self._catalog.snapshot()
        if request.known_version and request.known_version == snap.version:
            return catalog_pb2.GetCatalogResponse(version=snap.version, not_modified=True)
        return catalog_pb2.GetCatalogResponse(
            exercises=snap.exercises, muscle_groups=snap.muscle_groups, version=snap.version
        )
