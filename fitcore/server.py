"""Building, running and gracefully stopping a gRPC server with the shared plumbing:
health (with a readiness probe), reflection, the interceptor, metrics, signal handling.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol, Self

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from fitcore.auth import TokenVerifier
from fitcore.config import ConfigError, Env
from fitcore.interceptor import AccessPolicy, ErrorMapper, ServerInterceptor
from fitcore.logs import setup_logging
from fitcore.service_auth import ServiceTokenVerifier
from fitcore.streams import StreamGate

log = logging.getLogger("fitcore.server")

Registrar = Callable[[grpc.Server], None]
# Health "service" that is SERVING while the process runs (liveness), independent of readiness.
LIVENESS_SERVICE = "liveness"


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """What every server of ours is told, on a thread pool (`ServerSettings`) or on asyncio
    (fitcore.aio_server): where it listens, how it reports readiness and metrics, how long it
    drains and waits for in-flight RPCs when it stops. Read from `<prefix>_*` variables."""

    address: str
    grace_seconds: float
    drain_seconds: float
    metrics_port: int
    metrics_host: str
    readiness_interval: float
    reflection: bool = True

    def with_address(self, address: str | None) -> Self:
        return self if address is None else dataclasses.replace(self, address=address)

    @staticmethod
    def env_values(env: Env, prefix: str, default_address: str) -> dict[str, Any]:
        """The fields of this class from the environment (for a subclass's `from_env`)."""
        return {
            "address": env.get_str(f"{prefix}_ADDR", default_address),
            "grace_seconds": env.get_float(f"{prefix}_GRACE_SECONDS", 10.0),
            "drain_seconds": env.get_float(f"{prefix}_DRAIN_SECONDS", 0.0),
            "metrics_port": env.get_int(f"{prefix}_METRICS_PORT", 0),
            "metrics_host": env.get_str(f"{prefix}_METRICS_HOST", "127.0.0.1"),
            "readiness_interval": env.get_float(f"{prefix}_READINESS_INTERVAL", 2.0),
            "reflection": env.get_bool(f"{prefix}_REFLECTION", True),
        }


@dataclass(frozen=True, kw_only=True)
class ServerSettings(ServingSettings):
    """How a thread-pool service serves. Every bound has a default that keeps health and unary
    RPCs answering whatever streams and slow clients do (see adr/04-availability.md)."""

    max_workers: int
    # RPCs admitted at once (running + queued for a worker); beyond it grpcio answers
    # RESOURCE_EXHAUSTED at once instead of queueing without bound.
    max_concurrent_rpcs: int = 256
    # Streaming RPCs open at once: each holds a worker thread, so at most a quarter of them.
    max_streams: int = 4
    stream_max_seconds: float = 300.0
    stream_idle_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Env, prefix: str, default_address: str) -> ServerSettings:
        workers = env.get_int(f"{prefix}_WORKERS", 16)
        if workers < 4:
            raise ConfigError(f"{prefix}_WORKERS must be at least 4")
        max_streams = env.get_int(f"{prefix}_MAX_STREAMS", max(1, workers // 4))
        if not 1 <= max_streams <= workers // 2:
            raise ConfigError(
                f"{prefix}_MAX_STREAMS must be 1 to {workers // 2} (half the workers): "
                "each open stream holds a worker thread"
            )
        return cls(
            **cls.env_values(env, prefix, default_address),
            max_workers=workers,
            max_concurrent_rpcs=env.get_int(f"{prefix}_MAX_CONCURRENT_RPCS", workers * 16),
            max_streams=max_streams,
            stream_max_seconds=env.get_float(f"{prefix}_STREAM_MAX_SECONDS", 300.0),
            stream_idle_seconds=env.get_float(f"{prefix}_STREAM_IDLE_SECONDS", 30.0),
        )


class Service:
    """A running gRPC server with health, reflection and graceful shutdown."""

    def __init__(
        self,
        *,
        settings: ServerSettings,
        service_names: Sequence[str],
        register: Iterable[Registrar],
        policy: AccessPolicy,
        verifier: TokenVerifier,
        service_verifier: ServiceTokenVerifier | None = None,
        readiness: Callable[[], bool] = lambda: True,
        error_mapper: ErrorMapper | None = None,
        described_elsewhere: Sequence[str] = (),
    ) -> None:
        """`described_elsewhere`: services this server does not serve but describes through
        reflection (their descriptors must be imported): the edge sends reflection to one
        service, and a client such as grpcurl should see every service the edge routes."""
        self.settings = settings
        self._names = list(service_names)
        self._described = list(described_elsewhere)
        self._readiness = readiness
        self._stopping = threading.Event()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.streams = StreamGate(
            settings.max_streams, settings.stream_max_seconds, settings.stream_idle_seconds
        )
        interceptor = ServerInterceptor(
            policy,
            verifier,
            service_verifier=service_verifier,
            streams=self.streams,
            error_mapper=error_mapper,
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
            interceptors=[interceptor],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ],
        )
        for reg in register:
            reg(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if settings.reflection:
            reflection.enable_server_reflection(
                [*self._names, *self._described, health.SERVICE_NAME, reflection.SERVICE_NAME],
                self.server,
            )
        self.port = self.server.add_insecure_port(settings.address)
        if self.port == 0:
            raise RuntimeError(f"cannot bind {settings.address}")
        self._watcher: threading.Thread | None = None

    def _set_all(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ["", *self._names]:
            self.health.set(name, status)

    def check_readiness(self) -> bool:
        try:
            ready = bool(self._readiness())
        except Exception:
            log.exception("readiness check failed")
            ready = False
        if not self._stopping.is_set():
            serving = health_pb2.HealthCheckResponse.SERVING
            self._set_all(serving if ready else health_pb2.HealthCheckResponse.NOT_SERVING)
        return ready

    def _watch(self) -> None:
        while not self._stopping.wait(self.settings.readiness_interval):
            self.check_readiness()

    def start(self) -> None:
        self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.check_readiness()
        self.server.start()
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port, addr=self.settings.metrics_host)
        self._watcher = threading.Thread(target=self._watch, name="readiness", daemon=True)
        self._watcher.start()
        log.info("serving", extra={"address": self.settings.address, "port": self.port})

    def stop(self) -> None:
        """Graceful: report NOT_SERVING, let load balancers notice, finish in-flight RPCs."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        if self.settings.drain_seconds > 0:
            threading.Event().wait(self.settings.drain_seconds)
        self.server.stop(self.settings.grace_seconds).wait()
        self.streams.stop()
        log.info("stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        done = shutdown_requested(log)
        self.start()
        done.wait()
        self.stop()


def shutdown_requested(logger: logging.Logger) -> threading.Event:
    """An event set (and logged on `logger`) when the process gets SIGTERM or SIGINT: what a
    process waits on before stopping gracefully. Call it from the main thread."""
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal received, shutting down", extra={"signal": signum})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return done


class App(Protocol):
    """A built service: its gRPC server plus whatever it must release when it stops."""

    @property
    def service(self) -> Service: ...

    def stop(self) -> None: ...


def env_with_logging(name: str) -> Env:
    """Read the environment once and configure logging from it."""
    env = Env()
    setup_logging(
        name, env.get_str("FITCO_LOG_LEVEL", "INFO"), env.get_str("FITCO_LOG_FORMAT", "json")
    )
    return env


def serve(name: str, build: Callable[[], App]) -> int:
    """Build the app, serve until SIGTERM/SIGINT, stop it gracefully. Exit code 2 on bad config."""
    try:
        app = build()
    except ConfigError as exc:
        logging.getLogger(name).error("configuration error: %s", exc)
        return 2
    app.service.serve_forever()
    app.stop()
    return 0


class CachedCheck:
    """A readiness check answered from a cache at most `ttl` seconds old, so a health endpoint
    under load does not query the database on every call."""

    def __init__(
        self,
        check: Callable[[], bool],
        ttl: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._now = monotonic
        self._lock = threading.Lock()
        self._value = False
        self._at = float("-inf")

    def __call__(self) -> bool:
        if self._now() - self._at < self._ttl:
            return self._value
        with self._lock:
            if self._now() - self._at >= self._ttl:
                try:
                    self._value = bool(self._check())
                except Exception:
                    log.warning("readiness check failed", exc_info=True)
                    self._value = False
                self._at = self._now()
            return self._value
