"""Envoy's upstream clusters: the monolith, the legacy WOD, the coach instances and the
aggregate that falls back from the coach to the legacy WOD (adr/02), reflection capped (adr/04),
billing, and the realtime instances twice (adr/10): once for unary RPCs, once for streams, so
that thousands of open streams never fill the circuit breaker unary RPCs go through.
"""

from __future__ import annotations

from typing import Any

from fitco.billing.v1 import billing_pb2
from fitco.coach.v1 import coach_pb2
from fitco.events.v1 import events_pb2

from fitcore.access import service_names
from fitedge.params import Endpoints, EnvoyParams

MONOLITH_CLUSTER = "monolith"
LEGACY_CLUSTER = "legacy"  # the monolith's GetWod
COACH_CLUSTER = "coach"  # aggregate: coach instances first, then the monolith as fallback
COACH_HOSTS = "coach_instances"
FALLBACK_CLUSTER = "legacy_fallback"
REFLECTION_CLUSTER = "reflection"
BILLING_CLUSTER = "billing"
# The service both WOD implementations serve (strangler fig): its RPCs are split between the
# legacy implementation in the monolith and the coach, whose clusters health-check it.
(SPLIT_SERVICE,) = service_names(coach_pb2)
# Billing reports its service NOT_SERVING while its database is unreachable or not migrated.
(BILLING_SERVICE,) = service_names(billing_pb2)
REALTIME_CLUSTER = "realtime"  # the realtime service's streams (WatchEvents, Connect)
REALTIME_UNARY = "realtime_unary"  # its unary RPCs (groups over REST)
# The realtime service reports its event service NOT_SERVING while it is not connected to the
# bus (NATS): no stream is sent to an instance that cannot deliver.
(REALTIME_SERVICE,) = service_names(events_pb2)


def address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _http2() -> dict[str, Any]:
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {
                "http2_protocol_options": {
                    "connection_keepalive": {"interval": "30s", "timeout": "5s"}
                }
            },
        }
    }


def _health_check(service: str, interval: float) -> list[dict[str, Any]]:
    return [
        {
            "timeout": "1s",
            "interval": _seconds(interval),
            "no_traffic_interval": _seconds(interval),
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {"service_name": service},
        }
    ]


def _limits(max_retries: int = 3, max_requests: int = 4096) -> dict[str, Any]:
    return {
        "thresholds": [
            {
                "priority": "DEFAULT",
                "max_connections": 1024,
                "max_pending_requests": 1024,
                "max_requests": max_requests,
                "max_retries": max_retries,
            }
        ]
    }


def _outlier_detection(params: EnvoyParams) -> dict[str, Any]:
    """Hosts of a cluster of interchangeable instances that fail (connection failures,
    resets, UNAVAILABLE) are ejected until a health check and the ejection time say otherwise."""
    return {
        "consecutive_5xx": 3,
        "consecutive_gateway_failure": 2,
        "enforcing_consecutive_gateway_failure": 100,
        "interval": "1s",
        "base_ejection_time": _seconds(params.ejection_seconds),
        "max_ejection_time": "60s",
        "max_ejection_percent": 100,
        "successful_active_health_check_uneject_host": False,
    }


def _cluster(
    name: str, eps: Endpoints, health_service: str, params: EnvoyParams, **extra: Any
) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS" if eps.dns else "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": _http2(),
        "health_checks": _health_check(health_service, params.health_interval),
        "circuit_breakers": _limits(),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": address(h, p)}} for h, p in eps.hosts]}
            ],
        },
    }
    if eps.dns:
        cluster["dns_lookup_family"] = "V4_ONLY"
        cluster["dns_refresh_rate"] = "5s"
        cluster["respect_dns_ttl"] = True
    cluster.update(extra)
    return cluster


def clusters(params: EnvoyParams) -> list[dict[str, Any]]:
    reflection: list[dict[str, Any]] = []
    if params.edge_reflection_streams > 0:
        # Its own cluster so a circuit breaker caps the streams that reach the monolith:
        # beyond the cap Envoy answers 503 at once instead of holding a worker there.
        cap = _limits()
        cap["thresholds"][0].update(
            max_requests=params.edge_reflection_streams,
            max_pending_requests=params.edge_reflection_streams,
        )
        reflection.append(
            _cluster(REFLECTION_CLUSTER, params.monolith, "", params, circuit_breakers=cap)
        )
    return [
        _cluster(MONOLITH_CLUSTER, params.monolith, "", params),
        *reflection,
        _cluster(BILLING_CLUSTER, params.billing, BILLING_SERVICE, params),
        _cluster(LEGACY_CLUSTER, params.monolith, SPLIT_SERVICE, params),
        # Last resort for the coach's share: no outlier detection here (a one-host cluster
        # ejected after two slow requests would fail every request).
        _cluster(FALLBACK_CLUSTER, params.monolith, SPLIT_SERVICE, params),
        _cluster(
            COACH_HOSTS,
            params.coach,
            SPLIT_SERVICE,
            params,
            outlier_detection=_outlier_detection(params),
            # With every coach unhealthy, send nothing to it (no panic routing).
            common_lb_config={"healthy_panic_threshold": {"value": 0}},
        ),
        *realtime_clusters(params),
        {
            "name": COACH_CLUSTER,
            "connect_timeout": "1s",
            "lb_policy": "CLUSTER_PROVIDED",
            "cluster_type": {
                "name": "envoy.clusters.aggregate",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                    "clusters": [COACH_HOSTS, FALLBACK_CLUSTER],
                },
            },
            # Retries are counted on the aggregate: when the coach dies, every in-flight request
            # retries at once.
            "circuit_breakers": _limits(max_retries=10000),
        },
    ]


def realtime_clusters(params: EnvoyParams) -> list[dict[str, Any]]:
    """The realtime instances, for unary RPCs and, with a breaker sized for the streams the
    edge holds open (StreamLimits.max_open), for streams: a stream that is refused or cut is
    the client's to reopen (it resumes from its last event id), so nothing queues for it."""
    return [
        _cluster(
            REALTIME_UNARY,
            params.realtime,
            REALTIME_SERVICE,
            params,
            outlier_detection=_outlier_detection(params),
        ),
        _cluster(
            REALTIME_CLUSTER,
            params.realtime,
            REALTIME_SERVICE,
            params,
            outlier_detection=_outlier_detection(params),
            circuit_breakers=_limits(max_requests=params.streams.max_open),
            # With the stream routes' hash on the user: a user's streams meet on one
            # instance, wherever they come from (another instance if that one goes away).
            lb_policy="MAGLEV",
        ),
    ]
