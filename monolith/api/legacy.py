"""fitco.legacy.v1.LegacyService: the legacy paths whose JSON is a bare array or object.

Rendered here (the transcoder cannot unwrap a message field), with the same field names and
number types as the /v1 API. The catalog renderings are cached per catalog version.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import grpc
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from fitcore.auth import current_principal
from fitcore.errors import Validator
from monolith.api import convert
from monolith.domain.accounts import Accounts
from monolith.domain.catalog import Catalog
from monolith.domain.profiles import Profiles

JSON = "application/json"


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def body(value: Any) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=JSON, data=json.dumps(value).encode())


class LegacyServicer(legacy_pb2_grpc.LegacyServiceServicer):
    def __init__(self, accounts: Accounts, profiles: Profiles, catalog: Catalog) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._catalog = catalog
        self._lock = threading.Lock()
        self._rendered: dict[tuple[str, int], bytes] = {}

    def ListUsers(
        self, request: legacy_pb2.ListUsersRequest, context: grpc.ServicerContext
    ) -> legacy_pb2.ListUsersResponse:
        users: list[dict[str, str]] = []
        token = ""
        while True:
            page, token = self._accounts.list_users(500, token)
            users += [{"email": u.email, "name": u.name, "role": u.role} for u in page]
            if not token:
                return legacy_pb2.ListUsersResponse(body=body(users))

    def GetProfile(
        self, request: legacy_pb2.GetProfileRequest, context: grpc.ServicerContext
    ) -> legacy_pb2.GetProfileResponse:
        view = self._profiles.get_profile(current_principal().user_id)
        return legacy_pb2.GetProfileResponse(body=body(as_dict(convert.profile(view))))

    def CompleteOnboarding(
        self, request: legacy_pb2.CompleteOnboardingRequest, context: grpc.ServicerContext
    ) -> legacy_pb2.CompleteOnboardingResponse:
        view = self._profiles.complete_onboarding(
            current_principal().user_id,
            weight=request.weight,
            height=request.height,
            fitness_goal=request.fitness_goal,
        )
        return legacy_pb2.CompleteOnboardingResponse(body=body(as_dict(convert.profile(view))))

    def _exercises_json(self, muscle_group_id: int) -> bytes:
        snap = self._catalog.snapshot()
        key = (snap.version, muscle_group_id)
        cached = self._rendered.get(key)
        if cached is None:
            chosen = snap.filtered(muscle_group_id) if muscle_group_id else snap.exercises
            cached = json.dumps([as_dict(e) for e in chosen]).encode()
            with self._lock:
                if len(self._rendered) > 64:
                    self._rendered.clear()
                self._rendered[key] = cached
        return cached

    def ListExercises(
        self, request: legacy_pb2.ListExercisesRequest, context: grpc.ServicerContext
    ) -> legacy_pb2.ListExercisesResponse:
        v = Validator()
        v.check(request.muscle_group_id >= 0, "muscle_group_id", "must not be negative")
        v.raise_if_any()
        data = self._exercises_json(request.muscle_group_id)
        return legacy_pb2.ListExercisesResponse(
            body=httpbody_pb2.HttpBody(content_type=JSON, data=data)
        )

    def GetExercise(
        self, request: legacy_pb2.GetExerciseRequest, context: grpc.ServicerContext
    ) -> legacy_pb2.GetExerciseResponse:
        exercise = self._catalog.snapshot().exercise(request.exercise_id)
        return legacy_pb2.GetExerciseResponse(body=body(as_dict(exercise)))
