"""fitco.user.v1.UserService."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc

from fitcore.auth import current_principal
from fitcore.errors import FieldViolation, InvalidArgument
from fitcore.validation import check_request
from monolith.api import convert
from monolith.domain.accounts import Accounts
from monolith.domain.catalog import Catalog
from monolith.domain.preferences import Preferences, PreferencesView
from monolith.domain.profiles import MetricInput, ProfileChanges, Profiles
from monolith.domain.sessions import Sessions

TOKEN_TYPE = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


def _credentials_from_body(content_type: str, data: bytes) -> user_pb2.LoginRequest:
    """The legacy token endpoint takes JSON or an OAuth2 password-grant form: its credentials,
    held to the limits LoginRequest declares (as for /v1/auth/login)."""
    email, password = _parse_body(content_type, data)
    try:
        credentials = user_pb2.LoginRequest(email=email, password=password)
    except ValueError as exc:  # not Unicode text (a lone surrogate escaped in the JSON)
        raise InvalidArgument([FieldViolation("body", "must be UTF-8 text")]) from exc
    check_request(credentials)
    return credentials


def _parse_body(content_type: str, data: bytes) -> tuple[str, str]:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(data.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise InvalidArgument([FieldViolation("body", "must be UTF-8")]) from exc
        grant = form.get("grant_type", ["password"])[0]
        if grant != "password":
            raise InvalidArgument(
                [FieldViolation("grant_type", "only the 'password' grant is supported")]
            )
        return form.get("username", [""])[0], form.get("password", [""])[0]
    try:
        body = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument([FieldViolation("body", "must be JSON or a form")]) from exc
    if not isinstance(body, dict):
        raise InvalidArgument([FieldViolation("body", "must be a JSON object")])
    email = body.get("email", body.get("username", ""))
    password = body.get("password", "")
    if not isinstance(email, str) or not isinstance(password, str):
        raise InvalidArgument([FieldViolation("email", "email and password must be strings")])
    return email, password


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(
        self,
        accounts: Accounts,
        profiles: Profiles,
        preferences: Preferences,
        catalog: Catalog,
        sessions: Sessions,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._preferences = preferences
        self._catalog = catalog
        self._sessions = sessions

    def RegisterUser(
        self, request: user_pb2.RegisterUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.RegisterUserResponse:
        view, grant = self._accounts.register(request.email, request.name, request.password)
        return user_pb2.RegisterUserResponse(
            user=convert.user(view),
            access_token=grant.access_token,
            token_type=TOKEN_TYPE,
            expires_in=grant.expires_in,
        )

    def Login(
        self, request: user_pb2.LoginRequest, context: grpc.ServicerContext
    ) -> user_pb2.LoginResponse:
        grant = self._accounts.login(request.email, request.password)
        return user_pb2.LoginResponse(
            access_token=grant.access_token,
            token_type=TOKEN_TYPE,
            expires_in=grant.expires_in,
            onboarded=grant.onboarded,
        )

    def IssueToken(
        self, request: user_pb2.IssueTokenRequest, context: grpc.ServicerContext
    ) -> user_pb2.IssueTokenResponse:
        credentials = _credentials_from_body(request.body.content_type, request.body.data)
        grant = self._accounts.login(credentials.email, credentials.password)
        return user_pb2.IssueTokenResponse(
            access_token=grant.access_token,
            token_type=TOKEN_TYPE,
            expires_in=grant.expires_in,
            onboarded=grant.onboarded,
        )

    def BootstrapAdmin(
        self, request: user_pb2.BootstrapAdminRequest, context: grpc.ServicerContext
    ) -> user_pb2.BootstrapAdminResponse:
        key = next((str(v) for k, v in context.invocation_metadata() if k == "x-bootstrap-key"), "")
        account = self._accounts.bootstrap_admin(key, request.email, request.name)
        return user_pb2.BootstrapAdminResponse(
            id=account.user.id,
            email=account.user.email,
            name=account.user.name,
            role=account.user.role,
            password=account.password,
        )

    def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.CreateUserResponse:
        account = self._accounts.create_user(request.email, request.name, request.role)
        return user_pb2.CreateUserResponse(
            id=account.user.id,
            email=account.user.email,
            name=account.user.name,
            role=account.user.role,
            password=account.password,
        )

    def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: grpc.ServicerContext
    ) -> user_pb2.ListUsersResponse:
        users, token = self._accounts.list_users(request.page_size, request.page_token)
        return user_pb2.ListUsersResponse(
            users=[convert.user(u) for u in users], next_page_token=token
        )

    def GetProfile(
        self, request: user_pb2.GetProfileRequest, context: grpc.ServicerContext
    ) -> user_pb2.GetProfileResponse:
        view = self._profiles.get_profile(current_principal().user_id)
        return user_pb2.GetProfileResponse(profile=convert.profile(view))

    def CompleteOnboarding(
        self, request: user_pb2.CompleteOnboardingRequest, context: grpc.ServicerContext
    ) -> user_pb2.CompleteOnboardingResponse:
        view = self._profiles.complete_onboarding(
            current_principal().user_id,
            weight=request.weight,
            height=request.height,
            fitness_goal=request.fitness_goal,
            birth_year=request.birth_year,
            sex=request.sex,
            experience=request.experience,
            activity_level=request.activity_level,
            time_zone=request.time_zone,
        )
        return user_pb2.CompleteOnboardingResponse(profile=convert.profile(view))

    def UpdateProfile(
        self, request: user_pb2.UpdateProfileRequest, context: grpc.ServicerContext
    ) -> user_pb2.UpdateProfileResponse:
        changes = ProfileChanges(
            name=request.name.value if request.HasField("name") else None,
            weight=request.weight.value if request.HasField("weight") else None,
            height=request.height.value if request.HasField("height") else None,
            fitness_goal=request.fitness_goal.value if request.HasField("fitness_goal") else None,
            birth_year=request.birth_year.value if request.HasField("birth_year") else None,
            sex=request.sex.value if request.HasField("sex") else None,
            experience=request.experience.value if request.HasField("experience") else None,
            activity_level=(
                request.activity_level.value if request.HasField("activity_level") else None
            ),
            time_zone=request.time_zone.value if request.HasField("time_zone") else None,
        )
        view = self._profiles.update_profile(current_principal().user_id, changes)
        return user_pb2.UpdateProfileResponse(profile=convert.profile(view))

    def RecordBodyMetric(
        self, request: user_pb2.RecordBodyMetricRequest, context: grpc.ServicerContext
    ) -> user_pb2.RecordBodyMetricResponse:
        view = self._profiles.record_metric(
            current_principal().user_id,
            MetricInput(
                weight_kg=request.weight_kg,
                measured_at=convert.opt_time(request.measured_at, request.HasField("measured_at")),
                body_fat_percent=request.body_fat_percent,
                waist_cm=request.waist_cm,
                resting_heart_rate=request.resting_heart_rate,
                note=request.note,
            ),
        )
        return user_pb2.RecordBodyMetricResponse(metric=convert.metric(view))

    def ListBodyMetrics(
        self, request: user_pb2.ListBodyMetricsRequest, context: grpc.ServicerContext
    ) -> user_pb2.ListBodyMetricsResponse:
        metrics, token = self._profiles.list_metrics(
            current_principal().user_id,
            convert.opt_time(request.start_time, request.HasField("start_time")),
            convert.opt_time(request.end_time, request.HasField("end_time")),
            request.page_size,
            request.page_token,
        )
        return user_pb2.ListBodyMetricsResponse(
            metrics=[convert.metric(m) for m in metrics], next_page_token=token
        )

    def GetPreferences(
        self, request: user_pb2.GetPreferencesRequest, context: grpc.ServicerContext
    ) -> user_pb2.GetPreferencesResponse:
        view = self._preferences.get_preferences(current_principal().user_id)
        return user_pb2.GetPreferencesResponse(preferences=convert.preferences(view))

    def UpdatePreferences(
        self, request: user_pb2.UpdatePreferencesRequest, context: grpc.ServicerContext
    ) -> user_pb2.UpdatePreferencesResponse:
        p = request.preferences
        view = self._preferences.update_preferences(
            current_principal().user_id,
            PreferencesView(
                list(p.equipment),
                p.training_days_per_week,
                p.session_minutes,
                list(p.avoid_muscle_group_ids),
            ),
            set(self._catalog.snapshot().group_ids),
        )
        return user_pb2.UpdatePreferencesResponse(preferences=convert.preferences(view))

    def ChangePassword(
        self, request: user_pb2.ChangePasswordRequest, context: grpc.ServicerContext
    ) -> user_pb2.ChangePasswordResponse:
        grant = self._sessions.change_password(
            current_principal(), request.current_password, request.new_password
        )
        return user_pb2.ChangePasswordResponse(
            access_token=grant.access_token, token_type=TOKEN_TYPE, expires_in=grant.expires_in
        )

    def Logout(
        self, request: user_pb2.LogoutRequest, context: grpc.ServicerContext
    ) -> user_pb2.LogoutResponse:
        self._sessions.logout(current_principal())
        return user_pb2.LogoutResponse()

    def CheckToken(
        self, request: user_pb2.CheckTokenRequest, context: grpc.ServicerContext
    ) -> user_pb2.CheckTokenResponse:
        principal = current_principal()
        version = self._sessions.check_token(principal)
        return user_pb2.CheckTokenResponse(user_id=principal.user_id, token_version=version)
