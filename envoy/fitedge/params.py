"""What differs between renderings of the edge: addresses, ports, mounted files, limits, and
the contract (descriptor set) the routes are derived from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fitedge.contract import Contract
from fitedge.limits import RateLimits


@dataclass
class Endpoints:
    hosts: list[tuple[str, int]]
    dns: bool = False  # STRICT_DNS (compose/k8s: every A record is a host) instead of STATIC


@dataclass(frozen=True)
class Tls:
    """TLS at the edge: `listen` serves HTTPS (JSON and gRPC, ALPN h2/http1.1) with this
    certificate (paths as Envoy sees them); `redirect` is a plain-HTTP listener that only
    answers 301 to the HTTPS port (a plain gRPC client gets an error, never data)."""

    cert_file: str
    key_file: str
    redirect: tuple[str, int] | None = None
    https_port: int = 443  # the port clients reach HTTPS on (published port), for redirects


@dataclass(frozen=True)
class StreamLimits:
    """Long-lived streams at the edge (adr/10): no route timeout, an idle timeout the service's
    keep-alive traffic keeps from firing, and a cap on the streams open to the realtime
    service (each open stream counts as a request for the circuit breaker)."""

    # WatchEvents: a heartbeat every 15 s, so 60 s without a byte means a dead stream.
    watch_idle_seconds: int = 60
    # Connect: the service closes a member silent for 300 s (IDLE); the edge waits longer,
    # so the member hears why.
    session_idle_seconds: int = 330
    # Streams open to the realtime instances at once (all of them together; each open stream
    # counts as a request for the circuit breaker); beyond it the edge answers UNAVAILABLE at
    # once. The service has its own caps (5 per user, REALTIME_MAX_WATCHERS per process).
    max_open: int = 20000


@dataclass
class EnvoyParams:
    listen: tuple[str, int]
    admin: tuple[str, int]
    monolith: Endpoints
    coach: Endpoints
    descriptor: str  # the descriptor set's path as Envoy sees it (a mount in compose)
    jwks: dict[str, Any] | None = None  # inline JWKS (local), or
    jwks_file: str | None = None  # a mounted JWKS file (compose)
    runtime_root: str = "/etc/envoy/runtime/current"
    issuer: str = "fitco"
    audience: str = "fitco-api"
    health_interval: float = 2.0
    ejection_seconds: float = 10.0
    access_log: str = "/dev/stdout"
    limits: RateLimits = field(default_factory=RateLimits)
    # Server reflection through the edge (grpcurl), bounded: at most this many open streams,
    # each closed after 15 s idle or 60 s. 0 = not routed at the edge (services' own ports).
    edge_reflection_streams: int = 2
    tls: Tls | None = None  # None: plain HTTP/h2c (the local default, loopback only)
    # The RPCs, their access and HTTP bindings: the descriptor set ./fit gen wrote (the same
    # file Envoy loads as `descriptor`).
    contract: Contract = field(default_factory=Contract.load)
    extra: dict[str, Any] = field(default_factory=dict)
    # Billing (premium): its default local address unless given.
    billing: Endpoints = field(default_factory=lambda: Endpoints([("127.0.0.1", 50071)]))
    # The realtime service (event streams, group sessions): every instance.
    realtime: Endpoints = field(default_factory=lambda: Endpoints([("127.0.0.1", 50081)]))
    streams: StreamLimits = field(default_factory=StreamLimits)
