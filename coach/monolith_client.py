"""The coach's calls to the monolith: one shared channel, a deadline on every call, the caller's
token and request id forwarded, the coach's own service token beside them (INTERNAL RPCs such
as RecordWod need it), a circuit breaker around it all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar, cast

import grpc
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import Histogram

from coach.breaker import CircuitBreaker, code_of
from fitcore.auth import Principal
from fitcore.errors import NotFound, PermissionDenied, Unauthenticated, Unavailable
from fitcore.logs import request_id_var
from fitcore.service_auth import ServiceTokenMinter

T = TypeVar("T")
log = logging.getLogger("coach.monolith")
Metadata = tuple[tuple[str, str], ...]

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


def _error_reason(exc: BaseException | None) -> str:
    """The ErrorInfo reason of a failed call ("" when it has none)."""
    if not isinstance(exc, grpc.RpcError):
        return ""
    status = rpc_status.from_call(cast("grpc.Call", exc))  # grpc's errors are also Calls
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


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
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.keepalive_time_ms", 30000),
                ("grpc.keepalive_timeout_ms", 5000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.enable_retries", 0),
                # With a DNS name that resolves to several monolith pods, spread the calls.
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )
        self.users = user_pb2_grpc.UserServiceStub(self.channel)
        self.history = history_pb2_grpc.HistoryServiceStub(self.channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def metadata(self, principal: Principal | None) -> Metadata:
        """Request id, the user's token (when acting for one) and the coach's service token
        (short-lived: build it per request, not once)."""
        md: list[tuple[str, str]] = [("x-request-id", request_id_var.get())]
        if principal is not None:
            md.append(("authorization", f"Bearer {principal.token}"))
        if self.identity is not None:
            md.append(self.identity.metadata())
        return tuple(md)

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
        self, since: datetime, md: Metadata
    ) -> tuple[user_pb2.Preferences, list[history_pb2.HistoryEntry]]:
        prefs_f = self.users.GetPreferences.future(
            user_pb2.GetPreferencesRequest(), timeout=self.deadline, metadata=md
        )
        hist_f = self.history.ListHistory.future(
            history_pb2.ListHistoryRequest(start_time=_ts(since), page_size=500),
            timeout=self.deadline,
            metadata=md,
        )
        prefs, hist = self._parallel("GetPreferences+ListHistory", [prefs_f, hist_f])
        return prefs.preferences, list(hist.entries)

    def record_wod(
        self, day: date, items: Sequence[history_pb2.WodItem], md: Metadata
    ) -> history_pb2.ServedWod:
        req = history_pb2.RecordWodRequest(day=day.isoformat(), implementation="coach", items=items)
        resp: history_pb2.RecordWodResponse = self._call(
            "RecordWod", lambda: self.history.RecordWod(req, timeout=self.deadline, metadata=md)
        )
        return resp.wod

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
            reason = _error_reason(exc.__cause__)
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
