"""The asyncio twin of fitcore.server: a grpc.aio server for services whose RPCs are mostly
long-lived streams (the realtime service, adr/10-real-time.md), where an idle stream is a
coroutine and a queue, not a worker thread.

The same as the thread-pool server: the interceptor's cross-cutting behaviour
(fitcore.aio_interceptor: access table, authentication, context variables, request limits,
rich errors, metrics and logging), health with liveness and readiness, reflection, settings
from `<prefix>_*` variables (ServingSettings), a graceful stop on SIGTERM/SIGINT.

Different, because of asyncio and streams:
- streams are bounded by the service itself (the realtime service caps watchers per user and
  per process); the server only caps RPCs open at once (`max_concurrent_rpcs`);
- keepalive: the server pings each connection every `keepalive_seconds` (~30 s) and drops
  one that does not answer, so the streams of a dead peer end;
- stopping: health NOT_SERVING, the drain period, then the service's `close_streams` hooks
  (its streams end, clients reconnect elsewhere), then stop with `grace_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from fitcore.aio_interceptor import AioServerInterceptor
from fitcore.auth import TokenVerifier
from fitcore.config import ConfigError, Env
from fitcore.interceptor import AccessPolicy, Authenticator, ErrorMapper
from fitcore.server import LIVENESS_SERVICE, ServingSettings
from fitcore.service_auth import ServiceTokenVerifier

log = logging.getLogger("fitcore.aio_server")

AioRegistrar = Callable[[grpc.aio.Server], None]
Readiness = Callable[[], Awaitable[bool]]
StreamCloser = Callable[[], Awaitable[None]]
Status = health_pb2.HealthCheckResponse.ServingStatus.ValueType


@dataclass(frozen=True, kw_only=True)
class AioServerSettings(ServingSettings):
    """How an asyncio service serves (`<prefix>_*` variables, see ServingSettings)."""

    # RPCs open at once, streams included; beyond it grpc answers RESOURCE_EXHAUSTED. The
    # service's own caps (watchers per process) sit below it.
    max_concurrent_rpcs: int = 32768
    # Threads verifying tokens: a revocation check may wait on the monolith for its deadline.
    auth_threads: int = 8
    # The server pings every connection this often and drops one that does not answer within
    # keepalive_timeout_seconds: a dead peer's streams end instead of being held forever.
    keepalive_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Env, prefix: str, default_address: str) -> AioServerSettings:
        out = cls(
            **cls.env_values(env, prefix, default_address),
            max_concurrent_rpcs=env.get_int(f"{prefix}_MAX_CONCURRENT_RPCS", 32768),
            auth_threads=env.get_int(f"{prefix}_AUTH_THREADS", 8),
            keepalive_seconds=env.get_float(f"{prefix}_KEEPALIVE_SECONDS", 30.0),
            keepalive_timeout_seconds=env.get_float(f"{prefix}_KEEPALIVE_TIMEOUT_SECONDS", 10.0),
        )
        if out.max_concurrent_rpcs < 1 or out.auth_threads < 1 or out.keepalive_seconds <= 0:
            raise ConfigError(
                f"{prefix}_MAX_CONCURRENT_RPCS, {prefix}_AUTH_THREADS and "
                f"{prefix}_KEEPALIVE_SECONDS must be positive"
            )
        return out

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_time_ms", int(self.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # Keep pinging an idle connection (the default stops after two pings without data).
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]


class AioService:
    """A grpc.aio server with health, reflection, the interceptor and a graceful stop. Nothing
    of grpc.aio is created before `start()`: its objects belong to the loop that runs them."""

    def __init__(
        self,
        *,
        settings: AioServerSettings,
        service_names: Sequence[str],
        register: Iterable[AioRegistrar],
        policy: AccessPolicy,
        verifier: TokenVerifier,
        service_verifier: ServiceTokenVerifier | None = None,
        readiness: Readiness | None = None,
        error_mapper: ErrorMapper | None = None,
        close_streams: Sequence[StreamCloser] = (),
    ) -> None:
        self.settings = settings
        self._names = list(service_names)
        self._register = list(register)
        self._readiness = readiness
        self._close_streams = list(close_streams)
        self._executor = ThreadPoolExecutor(settings.auth_threads, thread_name_prefix="auth")
        self._interceptor = AioServerInterceptor(
            policy,
            Authenticator(verifier, service_verifier),
            self._executor,
            error_mapper=error_mapper,
        )
        self.server: grpc.aio.Server | None = None
        self.health: HealthServicer | None = None
        self.port = 0
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None

    async def _set_all(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        assert self.health is not None
        for name in ["", *self._names]:
            await self.health.set(name, status)

    async def check_readiness(self) -> bool:
        try:
            ready = True if self._readiness is None else bool(await self._readiness())
        except Exception:
            log.exception("readiness check failed")
            ready = False
        if not self._stopping:
            serving = health_pb2.HealthCheckResponse.SERVING
            await self._set_all(serving if ready else health_pb2.HealthCheckResponse.NOT_SERVING)
        return ready

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.readiness_interval)
            await self.check_readiness()

    async def start(self) -> None:
        """Bind and serve: liveness SERVING at once, readiness from `readiness`, re-checked
        every `readiness_interval` seconds."""
        server = grpc.aio.server(
            interceptors=[self._interceptor],
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
            options=self.settings.channel_options(),
        )
        for reg in self._register:
            reg(server)
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if self.settings.reflection:
            reflection.enable_server_reflection(
                [*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
            )
        self.port = server.add_insecure_port(self.settings.address)
        if self.port == 0:
            raise RuntimeError(f"cannot bind {self.settings.address}")
        self.server = server
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.check_readiness()
        await server.start()
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port, addr=self.settings.metrics_host)
        self._watcher = asyncio.create_task(self._watch(), name="readiness")
        log.info("serving", extra={"address": self.settings.address, "port": self.port})

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, the drain period (load balancers notice), the service closes
        its streams, then in-flight RPCs get `grace_seconds` to finish."""
        if self._stopping:
            return
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
        if self.server is not None and self.health is not None:
            await self.health.enter_graceful_shutdown()
            if self.settings.drain_seconds > 0:
                await asyncio.sleep(self.settings.drain_seconds)
            for close in self._close_streams:
                try:
                    await close()
                except Exception:
                    log.exception("closing streams failed")
            await self.server.stop(self.settings.grace_seconds)
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


class AsyncApp(Protocol):
    """A built asyncio service: `start()` serves (and connects what it needs), `stop()` stops
    it gracefully and releases everything."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def serve_async(name: str, build: Callable[[], AsyncApp]) -> int:
    """Build the app, serve until SIGTERM/SIGINT, stop it gracefully. Exit code 2 on bad
    config, 1 when it cannot start."""
    return asyncio.run(_serve(name, build))


async def _serve(name: str, build: Callable[[], AsyncApp]) -> int:
    logger = logging.getLogger(name)
    try:
        app = build()
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        logger.info("signal received, shutting down", extra={"signal": signum})
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    # Starting may wait (for the event bus): a signal meanwhile still stops the process.
    starting = asyncio.create_task(app.start(), name="start")
    signalled = asyncio.create_task(done.wait(), name="signals")
    await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    failed = starting.done() and not starting.cancelled() and starting.exception() is not None
    if failed:
        logger.error("cannot start", exc_info=starting.exception())
        signalled.cancel()
    else:
        await signalled
        starting.cancel()
    await app.stop()
    return 1 if failed else 0
