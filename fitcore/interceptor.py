"""The server interceptor: request id, authentication and authorisation, error mapping,
access logging and metrics, applied to every unary RPC of our services.

Authorisation follows the access table in the contracts (fitcore.access): PUBLIC needs
nothing, USER a valid user token, ADMIN one with the admin role, INTERNAL a valid service token
(fitcore.service_auth) from another fitco service — a user token alone is PERMISSION_DENIED —
plus the user's token when the RPC acts for a user. An RPC the table does not know, or one
without an access option, is refused (PERMISSION_DENIED): fail closed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from fitcore.access import Access, AccessTable
from fitcore.auth import Principal, TokenVerifier, bearer_token, principal_var
from fitcore.errors import PermissionDenied, ServiceError, internal_status
from fitcore.logs import request_id_var
from fitcore.service_auth import (
    SERVICE_TOKEN_HEADER,
    ServicePrincipal,
    ServiceTokenVerifier,
    service_var,
)
from fitcore.streams import StreamGate
from fitcore.validation import check_request

log = logging.getLogger("fitcore.rpc")

RPC_TOTAL = Counter(
    "fitco_grpc_server_handled_total", "RPCs handled", ["service", "method", "code"]
)
RPC_SECONDS = Histogram(
    "fitco_grpc_server_handling_seconds",
    "Time to handle an RPC",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Infrastructure services anyone may call.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.ServicerContext], Any]
# Maps an exception the domain did not raise itself (a lost database connection, a pool
# timeout) to a status clients can act on; None leaves it INTERNAL.
ErrorMapper = Callable[[BaseException], ServiceError | None]


def error_status(exc: ServiceError) -> grpc.Status:
    """The rich status (google.rpc.Status with details, plus the error's own trailers) that
    answers a ServiceError."""
    status: grpc.Status = rpc_status.to_status(exc.to_status_proto())
    extra = exc.trailing_metadata()
    if extra:
        status = _Status(status.code, status.details, (*status.trailing_metadata, *extra))
    return status


def unexpected_status(
    exc: Exception, method: str, request_id: str, error_mapper: ErrorMapper | None
) -> tuple[grpc.StatusCode, grpc.Status]:
    """The answer to an exception a handler did not raise on purpose: what `error_mapper` maps
    it to (logged as an infrastructure error), else INTERNAL carrying only the request id
    (logged with its stack): nothing of the failure leaks to the client."""
    mapped = error_mapper(exc) if error_mapper else None
    if mapped is not None:
        log.warning(
            "infrastructure error",
            extra={"method": method, "code": mapped.code.name, "error": type(exc).__name__},
        )
        return mapped.code, error_status(mapped)
    log.error("unhandled error", exc_info=exc, extra={"method": method})
    return grpc.StatusCode.INTERNAL, rpc_status.to_status(internal_status(request_id))


def text_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """An RPC's invocation metadata as a dict of its text entries (binary ones are ignored)."""
    return {k: v for k, v in metadata or () if isinstance(v, str)}


def request_id_of(metadata: Mapping[str, str]) -> str:
    """The caller's x-request-id (one id through the mesh's logs), or a new one."""
    return metadata.get("x-request-id") or uuid.uuid4().hex


def record_rpc(
    method: str, code: grpc.StatusCode, elapsed: float, seconds: Histogram | None = None
) -> None:
    """Count and time a finished RPC (`seconds`: the histogram for its duration, default
    RPC_SECONDS) and log it when it failed (every RPC at DEBUG)."""
    _, service, name = method.split("/", 2)
    RPC_TOTAL.labels(service, name, code.name).inc()
    (seconds or RPC_SECONDS).labels(service, name).observe(elapsed)
    if code is not grpc.StatusCode.OK or log.isEnabledFor(logging.DEBUG):
        level = logging.WARNING if code is grpc.StatusCode.INTERNAL else logging.INFO
        extra = {"method": method, "code": code.name, "ms": round(elapsed * 1e3, 2)}
        caller = service_var.get()
        if caller is not None:  # INTERNAL RPCs: which service called
            extra["caller"] = caller.subject
        log.log(level, "rpc", extra=extra)


class _Status(grpc.Status):
    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: tuple[tuple[str, str | bytes], ...],
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


class AccessPolicy:
    """Which RPCs of this server need which access: the access table of the services it
    serves, read from their descriptors. Anything else is UNSPECIFIED, which nobody may call."""

    def __init__(self, table: AccessTable) -> None:
        self.table = table

    @classmethod
    def of_modules(cls, *modules: ModuleType) -> AccessPolicy:
        """The policy of every service the generated `*_pb2` modules declare."""
        return cls(AccessTable.of_modules(*modules))

    def for_method(self, method: str) -> Access:
        if method.startswith(PUBLIC_PREFIXES):
            return Access.PUBLIC
        return self.table.access(method)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called an RPC: the user (None for a PUBLIC RPC without a token, or an INTERNAL one
    acting for nobody) and, for INTERNAL RPCs, the calling service."""

    principal: Principal | None
    service: ServicePrincipal | None = None


class Authenticator:
    """The authentication step, by the access an RPC needs: shared by the thread-pool server's
    interceptor and the asyncio one (fitcore.aio_server). It may block (`verifier` may ask
    the monolith whether a token was revoked)."""

    def __init__(
        self, verifier: TokenVerifier, service_verifier: ServiceTokenVerifier | None = None
    ) -> None:
        self._verifier = verifier
        # None: this server trusts no calling service, so every INTERNAL RPC is refused.
        self._service_verifier = service_verifier

    def authenticate(self, metadata: Mapping[str, str], access: Access) -> Caller:
        service = self.service(metadata) if access is Access.INTERNAL else None
        return Caller(self.user(metadata, access), service)

    def user(self, metadata: Mapping[str, str], access: Access) -> Principal | None:
        """The user an RPC with this access acts for (for INTERNAL, check `service` first)."""
        if access is Access.PUBLIC:
            auth = metadata.get("authorization")
            return self._verifier.verify(bearer_token(auth)) if auth else None
        if access is Access.INTERNAL:
            # Acting for a user: the user's own token, verified (signature, expiry, audience).
            # Whether the RPC needs one is up to it (current_principal() is UNAUTHENTICATED
            # without). Revocation is not asked again: the calling service, authenticated
            # first, checked it when the user called it; asking the monolith from here would
            # also make a service the monolith is waiting on wait on the monolith (billing's
            # GetEntitlements during a legacy WOD).
            auth = metadata.get("authorization")
            return (
                self._verifier.verify(bearer_token(auth), check_revocation=False) if auth else None
            )
        if access not in (Access.USER, Access.ADMIN):
            raise PermissionDenied("this RPC is not callable", reason="NO_ACCESS_RULE")
        principal = self._verifier.verify(bearer_token(metadata.get("authorization")))
        if access is Access.ADMIN and not principal.is_admin:
            raise PermissionDenied("admin role required")
        return principal

    def service(self, metadata: Mapping[str, str]) -> ServicePrincipal:
        """The calling fitco service (INTERNAL RPCs)."""
        token = metadata.get(SERVICE_TOKEN_HEADER)
        if not token or self._service_verifier is None:
            # Whatever else the caller holds (a user token, an admin token): not a service.
            raise PermissionDenied(
                "internal RPC: only fitco services may call it",
                reason="SERVICE_IDENTITY_REQUIRED",
            )
        return self._service_verifier.verify(token)


class ServerInterceptor(grpc.ServerInterceptor):
    def __init__(
        self,
        policy: AccessPolicy,
        verifier: TokenVerifier,
        *,
        service_verifier: ServiceTokenVerifier | None = None,
        streams: StreamGate | None = None,
        error_mapper: ErrorMapper | None = None,
    ) -> None:
        self._policy = policy
        self._auth = Authenticator(verifier, service_verifier)
        self._streams = streams
        self._error_mapper = error_mapper

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return None
        if handler.unary_unary is None:
            if self._policy.for_method(method) is not Access.PUBLIC:
                # Authentication is done for unary RPCs only: a streaming RPC that needs more
                # than PUBLIC is answered UNIMPLEMENTED rather than served unauthenticated.
                return None
            # Every streaming RPC (reflection, health Watch, ...) holds a worker thread while
            # open: admit it only through the gate.
            return self._streams.wrap(method, handler) if self._streams else handler
        if method.startswith(PUBLIC_PREFIXES):
            return handler
        access = self._policy.for_method(method)
        wrapped = self._wrap(method, access, handler.unary_unary)
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _authenticate(self, metadata: Mapping[str, str], access: Access) -> Principal | None:
        if access is Access.INTERNAL:
            # Set before the user's token is checked, so a refusal is logged with its caller.
            service_var.set(self._auth.service(metadata))
        return self._auth.user(metadata, access)

    def _wrap(self, method: str, access: Access, behavior: Behavior) -> Behavior:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = text_metadata(context.invocation_metadata())
            request_id = request_id_of(metadata)
            rid_token = request_id_var.set(request_id)
            principal_token = principal_var.set(None)
            service_token = service_var.set(None)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                principal_var.set(self._authenticate(metadata, access))
                # The limits the contract declares (and the OpenAPI states), before any handler.
                check_request(request)
                return behavior(request, context)
            except ServiceError as exc:
                code = exc.code
                context.abort_with_status(error_status(exc))
            except Exception as exc:
                # An abort() from inside the handler has already set the code: let it through.
                aborted = context.code()  # type: ignore[attr-defined]
                if aborted is not None and aborted is not grpc.StatusCode.OK:
                    code = aborted
                    raise
                code, status = unexpected_status(exc, method, request_id, self._error_mapper)
                context.abort_with_status(status)
            finally:
                record_rpc(method, code, time.perf_counter() - started)
                service_var.reset(service_token)
                principal_var.reset(principal_token)
                request_id_var.reset(rid_token)

        return handle
