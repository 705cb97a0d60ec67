"""The asyncio server interceptor (fitcore.aio_server): what fitcore.interceptor does for the
thread-pool servers, for grpc.aio, from the same pieces (AccessPolicy, Authenticator, the error
statuses, record_rpc).

Every RPC but health and reflection is wrapped: unary, server-streaming and bidirectional
alike, so a stream that needs a user is authenticated here (the thread-pool interceptor refuses
such streams instead). Authentication runs on a small thread pool of its own: the verifier may
ask the monolith whether a token was revoked (a blocking call with a deadline), and the event
loop must never block, nor may slow revocation checks starve the default executor. Inside a
handler, the principal, the calling service and the request id are in their context variables
(each RPC runs in a task of its own); the contract's limits were checked on the request of a
unary or server-streaming RPC (a bidirectional stream's handler checks each of its requests).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor
from typing import Any, NoReturn

import grpc
from prometheus_client import Histogram

from fitcore.access import Access
from fitcore.auth import principal_var
from fitcore.errors import ServiceError
from fitcore.interceptor import (
    PUBLIC_PREFIXES,
    RPC_SECONDS,
    AccessPolicy,
    Authenticator,
    Caller,
    ErrorMapper,
    error_status,
    record_rpc,
    request_id_of,
    text_metadata,
    unexpected_status,
)
from fitcore.logs import request_id_var
from fitcore.service_auth import service_var
from fitcore.validation import check_request

# Streams live for minutes to an hour: their durations do not belong in the unary histogram.
STREAM_SECONDS = Histogram(
    "fitco_grpc_server_stream_seconds",
    "How long a streaming RPC stayed open",
    ["service", "method"],
    buckets=(0.1, 1, 10, 60, 300, 900, 1800, 3600, 7200),
)

# (request or request iterator, context) -> response, awaitable or async iterator of them.
Behavior = Callable[..., Any]


class _Outcome:
    """The status an RPC ended with, for its metrics and log line."""

    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK


class AioServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every RPC but health and reflection with authentication (by the access table),
    the request limits, error mapping, metrics and logging."""

    def __init__(
        self,
        policy: AccessPolicy,
        authenticator: Authenticator,
        executor: Executor,
        *,
        error_mapper: ErrorMapper | None = None,
    ) -> None:
        self._policy = policy
        self._auth = authenticator
        self._executor = executor
        self._error_mapper = error_mapper

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        rpc = _Rpc(self, method, self._policy.for_method(method))
        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            unary = rpc.wrap(handler.unary_unary, check=True, seconds=RPC_SECONDS)
            return grpc.unary_unary_rpc_method_handler(unary, des, ser)
        if handler.unary_stream is not None:
            server_stream = rpc.wrap(handler.unary_stream, check=True, seconds=STREAM_SECONDS)
            return grpc.unary_stream_rpc_method_handler(server_stream, des, ser)
        if handler.stream_stream is not None:
            # Each request of a bidirectional stream is the handler's to validate.
            bidi = rpc.wrap(handler.stream_stream, check=False, seconds=STREAM_SECONDS)
            return grpc.stream_stream_rpc_method_handler(bidi, des, ser)
        if handler.stream_unary is not None:
            client_stream = rpc.wrap(handler.stream_unary, check=False, seconds=STREAM_SECONDS)
            return grpc.stream_unary_rpc_method_handler(client_stream, des, ser)
        return None  # a kind of handler this code does not know: not served (fail closed)

    async def authenticate(self, metadata: Mapping[str, str], access: Access) -> Caller:
        """Authentication on the auth threads, seeing this RPC's context (its request id)."""
        call = functools.partial(
            contextvars.copy_context().run, self._auth.authenticate, metadata, access
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @property
    def error_mapper(self) -> ErrorMapper | None:
        return self._error_mapper


class _Rpc:
    """One method's handler, wrapped. Each RPC runs in a task of its own, so the context
    variables set here are that RPC's alone and need no reset."""

    def __init__(self, owner: AioServerInterceptor, method: str, access: Access) -> None:
        self._owner = owner
        self.method = method
        self.access = access

    def wrap(self, behavior: Behavior, *, check: bool, seconds: Histogram) -> Behavior:
        """The same shape of handler grpc.aio expects: an async generator stays one (responses
        yielded), anything else becomes a coroutine (unary, or streaming through
        context.write/read)."""
        if inspect.isasyncgenfunction(behavior):
            return self._generator(behavior, check, seconds)
        return self._coroutine(behavior, check, seconds)

    async def _begin(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any], check: bool
    ) -> None:
        metadata = text_metadata(context.invocation_metadata())
        request_id_var.set(request_id_of(metadata))
        principal_var.set(None)
        service_var.set(None)
        caller = await self._owner.authenticate(metadata, self.access)
        principal_var.set(caller.principal)
        service_var.set(caller.service)
        if check:
            # The limits the contract declares (and the OpenAPI states), before any handler.
            check_request(request)

    async def _abort_for(
        self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any], outcome: _Outcome
    ) -> NoReturn:
        if isinstance(exc, grpc.aio.AbortError):
            # The handler aborted the RPC itself: its status is already set.
            code: grpc.StatusCode | None = context.code()
            outcome.code = code or grpc.StatusCode.UNKNOWN
            raise exc
        if isinstance(exc, ServiceError):
            outcome.code, status = exc.code, error_status(exc)
        else:
            outcome.code, status = unexpected_status(
                exc, self.method, request_id_var.get(), self._owner.error_mapper
            )
        await context.abort_with_status(status)

    def _coroutine(self, behavior: Behavior, check: bool, seconds: Histogram) -> Behavior:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, outcome = time.perf_counter(), _Outcome()
            try:
                await self._begin(request, context, check)
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except Exception as exc:
                await self._abort_for(exc, context, outcome)
            except BaseException:  # cancelled: the client went away or the server stopped
                outcome.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                record_rpc(self.method, outcome.code, time.perf_counter() - started, seconds)

        return handle

    def _generator(self, behavior: Behavior, check: bool, seconds: Histogram) -> Behavior:
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, outcome = time.perf_counter(), _Outcome()
            try:
                await self._begin(request, context, check)
                responses: AsyncIterator[Any] = behavior(request, context)
                async for response in responses:
                    yield response
            except Exception as exc:
                await self._abort_for(exc, context, outcome)
            except BaseException:  # cancelled (or the generator closed): the client went away
                outcome.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                record_rpc(self.method, outcome.code, time.perf_counter() - started, seconds)

        return stream
