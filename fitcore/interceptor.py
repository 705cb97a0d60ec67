"""The server interceptor: request id, authentication and authorisation, error mapping,
access logging and metrics, applied to every unary RPC of our services.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from fitcore.auth import Access, Principal, TokenVerifier, bearer_token, principal_var
from fitcore.errors import PermissionDenied, ServiceError, internal_status
from fitcore.logs import request_id_var
from fitcore.streams import StreamGate

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


def _abort(context: grpc.ServicerContext, exc: ServiceError) -> None:
    status = rpc_status.to_status(exc.to_status_proto())
    extra = exc.trailing_metadata()
    if extra:
        status = _Status(status.code, status.details, (*status.trailing_metadata, *extra))
    context.abort_with_status(status)


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
    """Which RPCs need which access. Unlisted RPCs of our services need a signed-in user."""

    def __init__(self, rules: Mapping[str, Access]) -> None:
        self._rules = dict(rules)

    def for_method(self, method: str) -> Access:
        if method.startswith(PUBLIC_PREFIXES):
            return Access.PUBLIC
        return self._rules.get(method, Access.USER)


class ServerInterceptor(grpc.ServerInterceptor):
    def __init__(
        self,
        policy: AccessPolicy,
        verifier: TokenVerifier,
        *,
        streams: StreamGate | None = None,
        error_mapper: ErrorMapper | None = None,
    ) -> None:
        self._policy = policy
        self._verifier = verifier
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
        if access is Access.PUBLIC:
            auth = metadata.get("authorization")
            return self._verifier.verify(bearer_token(auth)) if auth else None
        principal = self._verifier.verify(bearer_token(metadata.get("authorization")))
        if access is Access.ADMIN and not principal.is_admin:
            raise PermissionDenied("admin role required")
        return principal

    def _wrap(self, method: str, access: Access, behavior: Behavior) -> Behavior:
        _, service, name = method.split("/", 2)

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            request_id = metadata.get("x-request-id") or uuid.uuid4().hex
            rid_token = request_id_var.set(request_id)
            principal_token = principal_var.set(None)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                principal_var.set(self._authenticate(metadata, access))
                return behavior(request, context)
            except ServiceError as exc:
                code = exc.code
                _abort(context, exc)
            except Exception as exc:
                # An abort() from inside the handler has already set the code: let it through.
                aborted = context.code()  # type: ignore[attr-defined]
                if aborted is not None and aborted is not grpc.StatusCode.OK:
                    code = aborted
                    raise
                mapped = self._error_mapper(exc) if self._error_mapper else None
                if mapped is not None:
                    code = mapped.code
                    log.warning(
                        "infrastructure error",
                        extra={"method": method, "code": code.name, "error": type(exc).__name__},
                    )
                    _abort(context, mapped)
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error", extra={"method": method})
                context.abort_with_status(rpc_status.to_status(internal_status(request_id)))
            finally:
                elapsed = time.perf_counter() - started
                RPC_TOTAL.labels(service, name, code.name).inc()
                RPC_SECONDS.labels(service, name).observe(elapsed)
                if code is not grpc.StatusCode.OK or log.isEnabledFor(logging.DEBUG):
                    level = logging.WARNING if code is grpc.StatusCode.INTERNAL else logging.INFO
                    log.log(
                        level,
                        "rpc",
                        extra={"method": method, "code": code.name, "ms": round(elapsed * 1e3, 2)},
                    )
                principal_var.reset(principal_token)
                request_id_var.reset(rid_token)

        return handle
