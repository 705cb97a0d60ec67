"""Domain errors and their mapping to rich gRPC statuses (google.rpc.Status with details).

Domain and servicer code raise these; the server interceptor turns them into statuses. A client
mistake is never reported as INTERNAL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "fitco.app"
# At most this many field violations per error: an answer stays small whatever was sent.
MAX_VIOLATIONS = 20


class ServiceError(Exception):
    """Base class: a failure with a gRPC status code and a message safe to show clients."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """Extra trailers for the answer (Envoy's transcoder passes them on as headers)."""
        return ()

    def details(self) -> list[any_pb2.Any]:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN))
        return [info]

    def to_status_proto(self) -> status_pb2.Status:
        return status_pb2.Status(
            code=self.code.value[0], message=self.message, details=self.details()
        )


class FieldViolation:
    __slots__ = ("description", "field")

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description

    def __repr__(self) -> str:
        return f"FieldViolation({self.field!r}, {self.description!r})"


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[FieldViolation], message: str | None = None) -> None:
        found = list(violations)
        self.violations = found[:MAX_VIOLATIONS]
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        if len(found) > MAX_VIOLATIONS:
            summary += "; and more"
        super().__init__(message or f"invalid request: {summary}")

    def details(self) -> list[any_pb2.Any]:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
        )
        return [bad, *super().details()]


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class ResourceExhausted(ServiceError):
    """Refused for now (a busy pool, a back-off); with `retry_after_seconds` the status carries
    a google.rpc.RetryInfo so clients can show or honour when to try again."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        if self.retry_after_seconds is None:
            return ()
        # HTTP's Retry-After takes whole seconds: round up.
        return (("retry-after", str(max(1, math.ceil(self.retry_after_seconds)))),)

    def details(self) -> list[any_pb2.Any]:
        out = super().details()
        if self.retry_after_seconds is not None:
            delay = max(0.0, self.retry_after_seconds)
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.seconds = int(delay)
            retry.retry_delay.nanos = int((delay - int(delay)) * 1e9)
            packed = any_pb2.Any()
            packed.Pack(retry)
            out.append(packed)
        return out


class Validator:
    """Collects field violations so one answer lists every problem of a request."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def check(self, condition: bool, field: str, description: str) -> bool:
        if not condition:
            self.add(field, description)
        return condition

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)


def internal_status(request_id: str) -> status_pb2.Status:
    return status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (request id {request_id})"
    )
