"""Calling another service of the mesh: the one way every client here (the coach and billing
to the monolith, the coach and the monolith to billing) opens its channel, says who it acts
for and reads a refusal's reason.

- `mesh_channel`: keepalive so a dead peer is noticed between calls; no grpcio retries (each
  caller has a deadline and its own failure policy: a breaker, a fallback, UNAVAILABLE); with a
  DNS name that resolves to several pods, the calls are spread over them (round_robin).
- `forwarded_metadata`: what every call carries: the request id (one id through the mesh's
  logs), the user's token when acting for one (the callee checks it itself) and the calling
  service's own short-lived token (INTERNAL RPCs need it), minted per call, never kept.
- `code_of`, `status_detail`, `error_reason`: a failed call's status and its rich details.
"""

from __future__ import annotations

from typing import Final, TypeVar, cast

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from fitcore.auth import Principal
from fitcore.logs import request_id_var
from fitcore.service_auth import ServiceTokenMinter

Metadata = tuple[tuple[str, str], ...]
M = TypeVar("M", bound=Message)

CHANNEL_OPTIONS: Final[tuple[tuple[str, int | str], ...]] = (
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    ("grpc.lb_policy_name", "round_robin"),
)


def mesh_channel(target: str) -> grpc.Channel:
    """A channel to another service of the mesh at `target` (host:port or dns:///name:port)."""
    return grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS))


def forwarded_metadata(
    principal: Principal | None, identity: ServiceTokenMinter | None
) -> Metadata:
    """Request id, the user's token (when acting for one: `principal`) and the calling
    service's token (when it has an identity). Build it per request: the service token is
    short-lived."""
    md: list[tuple[str, str]] = [("x-request-id", request_id_var.get())]
    if principal is not None:
        md.append(("authorization", f"Bearer {principal.token}"))
    if identity is not None:
        md.append(identity.metadata())
    return tuple(md)


def code_of(exc: grpc.RpcError) -> grpc.StatusCode:
    """The status of a failed call (grpc raises objects that are both RpcError and Call)."""
    code = getattr(exc, "code", None)
    return cast("grpc.StatusCode", code()) if callable(code) else grpc.StatusCode.UNKNOWN


def status_detail(exc: BaseException | None, kind: type[M]) -> M | None:
    """The first detail of type `kind` (ErrorInfo, RetryInfo, ...) in a failed call's
    google.rpc.Status, None when it has none (or `exc` is not a failed call)."""
    if not isinstance(exc, grpc.RpcError):
        return None
    status = rpc_status.from_call(cast("grpc.Call", exc))  # grpc's errors are also Calls
    for detail in status.details if status is not None else ():
        if detail.Is(kind.DESCRIPTOR):
            out = kind()
            detail.Unpack(out)
            return out
    return None


def error_reason(exc: BaseException | None) -> str:
    """The ErrorInfo reason of a failed call ("" when it has none)."""
    info = status_detail(exc, error_details_pb2.ErrorInfo)
    return "" if info is None else str(info.reason)
