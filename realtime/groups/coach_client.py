"""The group sessions' one call to the coach: the owner's WOD of today (CoachService.GetWod)
when a group is created to follow it.

The call acts for the owner: their token and the request id are forwarded (GetWod is a USER
RPC; no service identity is needed), with a deadline. The coach's refusals written for the
user (an invalid or revoked token, a plan that forbids it, a profile it cannot plan for) are
passed on with their reason; anything else (unreachable, overloaded, an error of its own) is
UNAVAILABLE: the group is then not created, and the client may retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc

from fitcore.auth import Principal
from fitcore.clients import CHANNEL_OPTIONS, code_of, error_reason, forwarded_metadata
from fitcore.errors import (
    FailedPrecondition,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from realtime.groups.views import Wod, WodExercise

log = logging.getLogger("realtime.groups.coach")

DEFAULT_TARGET = "127.0.0.1:50061"
_PASS_THROUGH: dict[grpc.StatusCode, Callable[..., ServiceError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def wod_of(resp: coach_pb2.GetWodResponse) -> Wod:
    return Wod(
        date=resp.day,
        exercises=tuple(
            WodExercise(
                exercise_id=e.id,
                name=e.name,
                sets=e.sets,
                reps=e.suggested_reps,
                weight=e.suggested_weight,
                duration_seconds=e.suggested_duration_seconds,
            )
            for e in resp.exercises
        ),
    )


class CoachClient:
    def __init__(self, target: str, deadline: float) -> None:
        self.target = target
        self.deadline = deadline
        # Opened on first use: a grpc.aio channel belongs to the event loop it is used in.
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> coach_pb2_grpc.CoachServiceAsyncStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=list(CHANNEL_OPTIONS))
        return coach_pb2_grpc.CoachServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def todays_wod(self, principal: Principal) -> Wod:
        """The principal's WOD of today, as the coach serves it to them."""
        try:
            resp: coach_pb2.GetWodResponse = await self._stub().GetWod(
                coach_pb2.GetWodRequest(),
                timeout=self.deadline,
                metadata=forwarded_metadata(principal, None),
            )
        except grpc.RpcError as exc:
            code = code_of(exc)
            make = _PASS_THROUGH.get(code)
            if make is not None:
                details = getattr(exc, "details", None)
                message = str(details() or "") if callable(details) else ""
                raise make(
                    message or "the coach refused", reason=error_reason(exc) or None
                ) from exc
            log.warning("GetWod failed", extra={"code": code.name})
            raise Unavailable(
                "the coach is unavailable: the group was not created; retry shortly",
                reason="COACH_UNAVAILABLE",
            ) from exc
        return wod_of(resp)
