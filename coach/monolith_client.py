"""The coach's calls to the monolith: one shared channel, a deadline on every call, the caller's
token and request id forwarded, the coach's own service token beside them (INTERNAL RPCs such
as RecordWod need it), a circuit breaker around it all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import grpc
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Histogram

from coach.breaker import CircuitBreaker
from fitcore.auth import Principal
from fitcore.clients import (
    Metadata,
    code_of,
    error_reason,
    forwarded_metadata,
    mesh_channel,
    status_detail,
)
from fitcore.errors import (
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from fitcore.service_auth import ServiceTokenMinter
from fitcore.timestamps import timestamp

T = TypeVar("T")
log = logging.getLogger("coach.monolith")

CALL_SECONDS = Histogram(
    "fitco_coach_monolith_call_seconds",
    "Calls from the coach to the monolith",
    ["method", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# Infrastructure failures reach the client as a generic message: the monolith's details (its
# address, grpc's transport errors) are for our logs, never for the client.
_BUSY = "the workout service is temporarily unavailable; retry shortly"
_INFRASTRUCTURE: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "UPSTREAM_UNAVAILABLE",
    grpc.StatusCode.DEADLINE_EXCEEDED: "UPSTREAM_TIMEOUT",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "UPSTREAM_OVERLOADED",
}
# The monolith's own answers to the user's request: its messages are written for clients.
_PASS_THROUGH: dict[grpc.StatusCode, Callable[[str], Exception]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
}


def translate(exc: grpc.RpcError) -> Exception:
    """A monolith failure as the coach's own error (UNAVAILABLE stays UNAVAILABLE, ...)."""
    code = code_of(exc)
    details = getattr(exc, "details", None)
    message = str(details() or "") if callable(details) else ""
    reason = _INFRASTRUCTURE.get(code)
    if reason is not None:
        log.warning("monolith call failed", extra={"code": code.name, "detail": message[:300]})
        return Unavailable(_BUSY, reason=reason)
    make = _PASS_THROUGH.get(code)
    return make(message) if make is not None else exc


def _retry_after(exc: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call, in seconds (None when it has none)."""
    info = status_detail(exc, error_details_pb2.RetryInfo)
    if info is None:
        return None
    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)


def _limit_reached(exc: grpc.RpcError) -> ResourceExhausted | None:
    """The monolith's REGENERATION_LIMIT refusal as the coach's own answer to the user (None
    for any other failure). An answer, not an outage: the breaker must not count it."""
    if code_of(exc) != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    if error_reason(exc) != REGENERATION_LIMIT:
        return None
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    return ResourceExhausted(
        str(details or "no new workout left today"),
        reason=REGENERATION_LIMIT,
        retry_after_seconds=_retry_after(exc),
    )


# ReplaceWod's refusal once the day's regenerations are used (history.proto).
REGENERATION_LIMIT = "REGENERATION_LIMIT"
# ListHistory's largest page (the monolith's maximum).
HISTORY_PAGE = 500
# The latest sessions a nutrition plan averages (4 weeks hold far fewer for nearly everyone).
SESSIONS_PAGE = 100


@dataclass(frozen=True)
class NutritionReads:
    profile: user_pb2.Profile
    latest_metric: user_pb2.BodyMetric | None
    preferences: user_pb2.Preferences
    # None: the monolith has no session service (yet); the plan goes without session data.
    sessions: training_pb2.ListSessionsResponse | None


class MonolithClient:
    def __init__(
        self,
        target: str,
        deadline: float,
        breaker: CircuitBreaker,
        identity: ServiceTokenMinter | None = None,
    ) -> None:
        self.target = target
        self.deadline = deadline
        self.breaker = breaker
        # Who the coach is to the monolith; without it, INTERNAL RPCs are refused.
        self.identity = identity
        self.channel = mesh_channel(target)
        self.users = user_pb2_grpc.UserServiceStub(self.channel)
        self.history = history_pb2_grpc.HistoryServiceStub(self.channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channel)
        self.training = training_pb2_grpc.TrainingServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def metadata(self, principal: Principal | None) -> Metadata:
        """Request id, the user's token (when acting for one) and the coach's service token
        (short-lived: build it per request, not once)."""
        return forwarded_metadata(principal, self.identity)

    def _call(self, method: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return self.breaker.call(fn)
        except grpc.RpcError as exc:
            outcome = code_of(exc).name
            raise translate(exc) from exc
        except Unavailable:
            outcome = "circuit_open"
            raise
        finally:
            CALL_SECONDS.labels(method, outcome).observe(time.perf_counter() - started)

    def _parallel(self, method: str, futures: Sequence[Any]) -> list[Any]:
        """Wait for calls started together; the breaker sees them as one call."""

        def wait_all() -> list[Any]:
            return [f.result() for f in futures]

        return self._call(method, wait_all)

    # -- calls ----------------------------------------------------------------------------

    def get_catalog(self, known_version: str) -> catalog_pb2.GetCatalogResponse:
        req = catalog_pb2.GetCatalogRequest(known_version=known_version)
        md = self.metadata(None)
        return self._call(
            "GetCatalog", lambda: self.catalog.GetCatalog(req, timeout=self.deadline, metadata=md)
        )

    def profile(self, md: Metadata) -> user_pb2.Profile:
        resp: user_pb2.GetProfileResponse = self._call(
            "GetProfile",
            lambda: self.users.GetProfile(
                user_pb2.GetProfileRequest(), timeout=self.deadline, metadata=md
            ),
        )
        return resp.profile

    def served_wod(self, day: date, md: Metadata) -> history_pb2.ServedWod | None:
        """The WOD recorded for the user's `day`, None when none was."""
        req = history_pb2.GetServedWodRequest(day=day.isoformat())

        def wod_or_none() -> history_pb2.ServedWod | None:
            try:
                resp = self.history.GetServedWod(req, timeout=self.deadline, metadata=md)
            except grpc.RpcError as exc:
                if code_of(exc) == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return resp.wod

        return self._call("GetServedWod", wod_or_none)

    def served_wod_and_profile(
        self, day: date, md: Metadata
    ) -> tuple[history_pb2.ServedWod | None, user_pb2.Profile]:
        """Today's recorded WOD (None when none) and the profile, fetched concurrently."""
        wod_f = self.history.GetServedWod.future(
            history_pb2.GetServedWodRequest(day=day.isoformat()), timeout=self.deadline, metadata=md
        )
        profile_f = self.users.GetProfile.future(
            user_pb2.GetProfileRequest(), timeout=self.deadline, metadata=md
        )

        def wod_or_none() -> history_pb2.ServedWod | None:
            try:
                return wod_f.result().wod
            except grpc.RpcError as exc:
                if code_of(exc) == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        def both() -> tuple[history_pb2.ServedWod | None, user_pb2.Profile]:
            profile = profile_f.result().profile
            return wod_or_none(), profile

        return self._call("GetServedWod+GetProfile", both)

    def preferences_and_history(
        self, since: datetime, md: Metadata, max_pages: int = 1
    ) -> tuple[user_pb2.Preferences, list[history_pb2.HistoryEntry]]:
        """The preferences and the history since `since`, newest first: the first page beside
        the preferences, then up to `max_pages` - 1 more pages of HISTORY_PAGE rows (the
        monolith's largest page), one after the other; older rows beyond that are left out."""
        prefs_f = self.users.GetPreferences.future(
            user_pb2.GetPreferencesRequest(), timeout=self.deadline, metadata=md
        )
        hist_f = self.history.ListHistory.future(
            history_pb2.ListHistoryRequest(start_time=timestamp(since), page_size=HISTORY_PAGE),
            timeout=self.deadline,
            metadata=md,
        )
        prefs, hist = self._parallel("GetPreferences+ListHistory", [prefs_f, hist_f])
        entries = list(hist.entries)
        token, pages = hist.next_page_token, 1
        while token and pages < max_pages:
            more = self._history_page(since, token, md)
            entries += more.entries
            token, pages = more.next_page_token, pages + 1
        return prefs.preferences, entries

    def _history_page(
        self, since: datetime, token: str, md: Metadata
    ) -> history_pb2.ListHistoryResponse:
        req = history_pb2.ListHistoryRequest(
            start_time=timestamp(since), page_size=HISTORY_PAGE, page_token=token
        )
        return self._call(
            "ListHistory", lambda: self.history.ListHistory(req, timeout=self.deadline, metadata=md)
        )

    def nutrition_inputs(self, md: Metadata) -> NutritionReads:
        """What a nutrition plan is computed from, fetched concurrently: the profile, the latest
        body metric, the preferences and the latest sessions. A monolith without the training
        service (UNIMPLEMENTED) gives `sessions` None ("no session data"); any other failure
        fails the call."""
        profile_f = self.users.GetProfile.future(
            user_pb2.GetProfileRequest(), timeout=self.deadline, metadata=md
        )
        metric_f = self.users.ListBodyMetrics.future(
            user_pb2.ListBodyMetricsRequest(page_size=1), timeout=self.deadline, metadata=md
        )
        prefs_f = self.users.GetPreferences.future(
            user_pb2.GetPreferencesRequest(), timeout=self.deadline, metadata=md
        )
        sessions_f = self.training.ListSessions.future(
            training_pb2.ListSessionsRequest(page_size=SESSIONS_PAGE),
            timeout=self.deadline,
            metadata=md,
        )

        def sessions_or_none() -> training_pb2.ListSessionsResponse | None:
            try:
                return sessions_f.result()
            except grpc.RpcError as exc:
                if code_of(exc) == grpc.StatusCode.UNIMPLEMENTED:
                    return None
                raise

        def wait_all() -> NutritionReads:
            profile = profile_f.result().profile
            metrics = metric_f.result().metrics
            prefs = prefs_f.result().preferences
            return NutritionReads(
                profile, metrics[0] if metrics else None, prefs, sessions_or_none()
            )

        return self._call("GetProfile+ListBodyMetrics+GetPreferences+ListSessions", wait_all)

    def record_wod(
        self,
        day: date,
        items: Sequence[history_pb2.WodItem],
        md: Metadata,
        *,
        kind: str = "",
        notes: Sequence[str] = (),
    ) -> history_pb2.ServedWod:
        req = history_pb2.RecordWodRequest(
            day=day.isoformat(), implementation="coach", items=items, kind=kind, notes=notes
        )
        resp: history_pb2.RecordWodResponse = self._call(
            "RecordWod", lambda: self.history.RecordWod(req, timeout=self.deadline, metadata=md)
        )
        return resp.wod

    def extend_wod(
        self,
        wod: history_pb2.ServedWod,
        items: Sequence[history_pb2.WodItem],
        size: int,
        md: Metadata,
    ) -> history_pb2.ServedWod:
        """Top `wod` up to `size` exercises with `items` (ExtendWod): the stored WOD, extended
        or as another request left it."""
        req = history_pb2.ExtendWodRequest(
            day=wod.day, wod_id=wod.id, regenerations=wod.regenerations, items=items, size=size
        )
        resp: history_pb2.ExtendWodResponse = self._call(
            "ExtendWod", lambda: self.history.ExtendWod(req, timeout=self.deadline, metadata=md)
        )
        return resp.wod

    def replace_wod(
        self,
        wod: history_pb2.ServedWod,
        items: Sequence[history_pb2.WodItem],
        md: Metadata,
        *,
        max_regenerations: int,
        kind: str = "",
        notes: Sequence[str] = (),
    ) -> history_pb2.ServedWod:
        """Replace `wod` (ReplaceWod): the stored WOD, the new one or another request's.
        ResourceExhausted (REGENERATION_LIMIT) once `max_regenerations` are used today."""
        req = history_pb2.ReplaceWodRequest(
            day=wod.day,
            implementation="coach",
            items=items,
            kind=kind,
            notes=notes,
            regenerations=wod.regenerations,
            max_regenerations=max_regenerations,
        )

        def replace() -> history_pb2.ServedWod | ResourceExhausted:
            try:
                resp = self.history.ReplaceWod(req, timeout=self.deadline, metadata=md)
            except grpc.RpcError as exc:
                refused = _limit_reached(exc)
                if refused is None:
                    raise
                return refused
            return resp.wod

        result = self._call("ReplaceWod", replace)
        if isinstance(result, ResourceExhausted):
            raise result
        return result

    def token_version(self, principal: Principal) -> int:
        """The current token version of the principal's user, asked of the monolith (which reads
        it fresh): what the coach's TokenVerifier compares the token with. When the monolith
        says the token is revoked, the token's own version + 1 (a lower bound, enough to refuse
        it); any other refusal is passed on with its reason."""
        md = self.metadata(principal)
        try:
            resp: user_pb2.CheckTokenResponse = self._call(
                "CheckToken",
                lambda: self.users.CheckToken(
                    user_pb2.CheckTokenRequest(), timeout=self.deadline, metadata=md
                ),
            )
        except Unauthenticated as exc:
            reason = error_reason(exc.__cause__)
            if reason == "TOKEN_REVOKED":
                return principal.token_version + 1
            raise Unauthenticated(exc.message, reason=reason or "TOKEN_INVALID") from exc
        return int(resp.token_version)

    def healthy(self) -> bool:
        """The monolith's own health (readiness probe; not counted by the breaker)."""
        try:
            resp = self.health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
