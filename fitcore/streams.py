"""Bounds on streaming RPCs: how many may be open at once, how long one may live, how long it
may stay idle.

Why this exists: in grpcio's synchronous server every open stream holds one worker thread for
its whole life. About twenty idle server-reflection streams (opened by anyone, through the
edge, with no token) used to hold all sixteen worker threads of the monolith, so health and
every unary RPC timed out. grpcio itself only offers a global `maximum_concurrent_rpcs` (which
would refuse health too) and no per-stream deadline on the server side; no library adds these
to the sync server, so this small gate does: a non-blocking slot per stream (RESOURCE_EXHAUSTED
when none is free, so unary RPCs always keep most of the workers) and a reaper thread that
cancels streams past their maximum duration or idle time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

log = logging.getLogger("fitcore.streams")

STREAMS_OPEN = Gauge("fitco_grpc_streams_open", "Streaming RPCs open now")
STREAMS_REJECTED = Counter(
    "fitco_grpc_streams_rejected_total", "Streaming RPCs refused: no free stream slot", ["method"]
)
STREAMS_CANCELLED = Counter(
    "fitco_grpc_streams_cancelled_total",
    "Streaming RPCs cancelled by the server",
    ["method", "reason"],
)


@dataclass(eq=False)
class _Stream:
    method: str
    context: grpc.ServicerContext
    started: float
    last: float
    cancelled: bool = field(default=False)


class StreamGate:
    """Admits at most `max_streams` streaming RPCs and cancels those open longer than
    `max_seconds` or idle (no message either way) longer than `idle_seconds`."""

    def __init__(
        self,
        max_streams: int,
        max_seconds: float,
        idle_seconds: float,
        *,
        tick: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self.max_streams = max_streams
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds
        self._tick = tick
        self._now = monotonic
        self._lock = threading.Lock()
        self._open: set[_Stream] = set()
        self._stopped = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- admission ------------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def _enter(self, method: str, context: grpc.ServicerContext) -> _Stream | None:
        now = self._now()
        with self._lock:
            if len(self._open) >= self.max_streams:
                return None
            stream = _Stream(method, context, now, now)
            self._open.add(stream)
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap, name="stream-reaper", daemon=True
                )
                self._reaper.start()
        STREAMS_OPEN.inc()
        return stream

    def _leave(self, stream: _Stream) -> None:
        with self._lock:
            if stream not in self._open:
                return
            self._open.discard(stream)
        STREAMS_OPEN.dec()

    def _touch(self, stream: _Stream) -> None:
        stream.last = self._now()

    def _refuse(self, method: str, context: grpc.ServicerContext) -> None:
        STREAMS_REJECTED.labels(method).inc()
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many open streams (at most {self.max_streams}); try again later",
        )

    # -- the reaper -----------------------------------------------------------------------

    def expired(self) -> list[tuple[_Stream, str]]:
        """Streams past their limits now (and why)."""
        now = self._now()
        with self._lock:
            streams = list(self._open)
        out: list[tuple[_Stream, str]] = []
        for s in streams:
            if s.cancelled:
                continue
            if self.max_seconds > 0 and now - s.started > self.max_seconds:
                out.append((s, "max_duration"))
            elif self.idle_seconds > 0 and now - s.last > self.idle_seconds:
                out.append((s, "idle"))
        return out

    def reap_once(self) -> int:
        expired = self.expired()
        for stream, reason in expired:
            stream.cancelled = True
            STREAMS_CANCELLED.labels(stream.method, reason).inc()
            log.info("stream cancelled", extra={"method": stream.method, "reason": reason})
            stream.context.cancel()  # the handler's request/response iteration ends
            # The handler thread leaves when its iteration ends; free the slot now so a stuck
            # handler cannot keep it.
            self._leave(stream)
        return len(expired)

    def _reap(self) -> None:
        while not self._stopped.wait(self._tick):
            try:
                self.reap_once()
            except Exception:  # the reaper must survive anything one stream does
                log.exception("stream reaper failed")

    def stop(self) -> None:
        self._stopped.set()

    # -- wrapping handlers ----------------------------------------------------------------

    def _requests(self, stream: _Stream, requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            self._touch(stream)
            yield request

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The same handler, admitted through the gate and watched by the reaper."""
        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.stream_stream is not None:
            bidi = handler.stream_stream

            def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                stream = self._enter(method, context)
                if stream is None:
                    self._refuse(method, context)
                    return
                try:
                    for response in bidi(self._requests(stream, requests), context):
                        self._touch(stream)
                        yield response
                finally:
                    self._leave(stream)

            return grpc.stream_stream_rpc_method_handler(stream_stream, des, ser)
        if handler.unary_stream is not None:
            server_streaming = handler.unary_stream

            def unary_stream(request: Any, context: grpc.ServicerContext) -> Any:
                stream = self._enter(method, context)
                if stream is None:
                    self._refuse(method, context)
                    return
                try:
                    for response in server_streaming(request, context):
                        self._touch(stream)
                        yield response
                finally:
                    self._leave(stream)

            return grpc.unary_stream_rpc_method_handler(unary_stream, des, ser)
        if handler.stream_unary is not None:
            client_streaming = handler.stream_unary

            def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                stream = self._enter(method, context)
                if stream is None:
                    self._refuse(method, context)
                    return None
                try:
                    return client_streaming(self._requests(stream, requests), context)
                finally:
                    self._leave(stream)

            return grpc.stream_unary_rpc_method_handler(stream_unary, des, ser)
        return handler
