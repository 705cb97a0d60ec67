"""Envoy configuration: one source renders the local config and the compose config.

Only addresses, ports and file paths differ between the two. Also the runtime layer that holds
the WOD traffic split (persisted on disk, changed live through the admin API).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ROUTING_PREFIX = "routing.wod"
LEGACY_CLUSTER = "legacy"  # the monolith's GetWod
COACH_CLUSTER = "coach"  # aggregate: coach instances first, then the monolith as fallback
COACH_HOSTS = "coach_instances"
FALLBACK_CLUSTER = "legacy_fallback"
REFLECTION_CLUSTER = "reflection"

USER = "fitco.user.v1.UserService"
CATALOG = "fitco.catalog.v1.CatalogService"
HISTORY = "fitco.history.v1.HistoryService"
COACH = "fitco.coach.v1.CoachService"
SYSTEM = "fitco.system.v1.SystemService"
LEGACY = "fitco.legacy.v1.LegacyService"
SERVICES = [USER, CATALOG, HISTORY, COACH, SYSTEM, LEGACY]
PUBLIC_PREFIXES = [
    f"/{USER}/RegisterUser",
    f"/{USER}/Login",
    f"/{USER}/IssueToken",
    f"/{USER}/BootstrapAdmin",
    f"/{CATALOG}/",
    f"/{SYSTEM}/",
    f"/{LEGACY}/ListExercises",
    f"/{LEGACY}/GetExercise",
]
# Legacy paths that answered 201 Created; the transcoder can only say 200.
CREATED_PATHS = ["/users", "/bootstrap/admin"]
# The auth family: each call costs a slow password hash (or guards one), so each client IP
# gets a small bucket of them (JSON and legacy paths are transcoded to these gRPC paths).
AUTH_METHODS = [
    f"/{USER}/Login",
    f"/{USER}/IssueToken",
    f"/{USER}/RegisterUser",
    f"/{USER}/BootstrapAdmin",
]
# Expensive per user: the first WOD of a day is generated, read from history and recorded.
EXPENSIVE_USER_METHODS = [f"/{COACH}/GetWod"]
JWT_METADATA = "jwt"  # the verified token's claims, in jwt_authn's dynamic metadata


# -- rate limits ------------------------------------------------------------------------------

_BUCKET = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*(s|m|h)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, None: 1}


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `tokens` requests, refilled every `seconds` (burst = tokens)."""

    tokens: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Bucket:
        """'20/60s' (or '20/1m'): 20 requests per minute, in bursts of up to 20."""
        m = _BUCKET.match(text)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ValueError(f"a rate limit is N/PERIOD, e.g. 20/60s or 300/1s, not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)) * _UNIT[m.group(3)])

    @property
    def retry_after(self) -> int:
        """Seconds until the bucket holds a token again, rounded up."""
        return max(1, -(-self.seconds // self.tokens))

    def envoy(self) -> dict[str, Any]:
        return {
            "max_tokens": self.tokens,
            "tokens_per_fill": self.tokens,
            "fill_interval": f"{self.seconds}s",
        }

    def __str__(self) -> str:
        return f"{self.tokens}/{self.seconds}s"


@dataclass(frozen=True)
class RateLimits:
    """Edge rate limits. FITCO_RATE_LIMITS: `on` (default), `off` (no per-IP limits: load
    tests from one machine), `none` (no limits at all: single-user micro-benchmarks only)."""

    per_ip: bool = True
    per_user: bool = True
    auth: Bucket = Bucket(20, 60)  # per client IP: login, /oauth/token, register, bootstrap
    general: Bucket = Bucket(100, 1)  # per client IP: every request
    expensive: Bucket = Bucket(60, 60)  # per user: GetWod

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimits:
        mode = (env.get("FITCO_RATE_LIMITS") or "on").strip().lower()
        if mode not in ("on", "off", "none"):
            raise ValueError("FITCO_RATE_LIMITS must be on, off or none")
        d = cls()
        return cls(
            per_ip=mode == "on",
            per_user=mode != "none",
            auth=Bucket.parse(env.get("FITCO_RATE_LIMIT_AUTH") or str(d.auth)),
            general=Bucket.parse(env.get("FITCO_RATE_LIMIT_GENERAL") or str(d.general)),
            expensive=Bucket.parse(env.get("FITCO_RATE_LIMIT_EXPENSIVE") or str(d.expensive)),
        )


@dataclass
class Endpoints:
    hosts: list[tuple[str, int]]
    dns: bool = False  # STRICT_DNS (compose/k8s: every A record is a host) instead of STATIC


@dataclass
class EnvoyParams:
    listen: tuple[str, int]
    admin: tuple[str, int]
    monolith: Endpoints
    coach: Endpoints
    descriptor: str
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
    extra: dict[str, Any] = field(default_factory=dict)


def jwks_from_public_key(pem: bytes, kid: str = "fitco-1") -> dict[str, Any]:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("expected an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": kid}]
    }


def _addr(host: str, port: int) -> dict[str, Any]:
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


def _limits(max_retries: int = 3) -> dict[str, Any]:
    return {
        "thresholds": [
            {
                "priority": "DEFAULT",
                "max_connections": 1024,
                "max_pending_requests": 1024,
                "max_requests": 4096,
                "max_retries": max_retries,
            }
        ]
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
                {"lb_endpoints": [{"endpoint": {"address": _addr(h, p)}} for h, p in eps.hosts]}
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
        _cluster("monolith", params.monolith, "", params),
        *reflection,
        _cluster(LEGACY_CLUSTER, params.monolith, COACH, params),
        # Last resort for the coach's share: no outlier detection here (a one-host cluster
        # ejected after two slow requests would fail every request).
        _cluster(FALLBACK_CLUSTER, params.monolith, COACH, params),
        _cluster(
            COACH_HOSTS,
            params.coach,
            COACH,
            params,
            outlier_detection={
                "consecutive_5xx": 3,
                "consecutive_gateway_failure": 2,
                "enforcing_consecutive_gateway_failure": 100,
                "interval": "1s",
                "base_ejection_time": _seconds(params.ejection_seconds),
                "max_ejection_time": "60s",
                "max_ejection_percent": 100,
                "successful_active_health_check_uneject_host": False,
            },
            # With every coach unhealthy, send nothing to it (no panic routing).
            common_lb_config={"healthy_panic_threshold": {"value": 0}},
        ),
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


def _retry(
    retry_on: str, num: int, per_try: str | None = None, fallback: bool = False
) -> dict[str, Any]:
    policy: dict[str, Any] = {"retry_on": retry_on, "num_retries": num}
    if per_try:
        policy["per_try_timeout"] = per_try
    if fallback:
        policy["retry_priority"] = {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        }
        policy["retry_host_predicate"] = [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ]
        policy["host_selection_retry_max_attempts"] = 5
    return policy


def routes(params: EnvoyParams) -> list[dict[str, Any]]:
    reflection: list[dict[str, Any]] = []
    if params.edge_reflection_streams > 0:
        reflection.append(
            {
                "name": "reflection",
                "match": {"prefix": "/grpc.reflection."},
                "route": {
                    "cluster": REFLECTION_CLUSTER,
                    "timeout": "0s",
                    "idle_timeout": "15s",
                    "max_stream_duration": {"max_stream_duration": "60s"},
                },
            }
        )
    return [
        {
            "name": "wod",
            "match": {"path": f"/{COACH}/GetWod"},
            "route": {
                "weighted_clusters": {
                    "runtime_key_prefix": ROUTING_PREFIX,
                    "clusters": [
                        {"name": LEGACY_CLUSTER, "weight": 100},
                        {"name": COACH_CLUSTER, "weight": 0},
                    ],
                },
                "timeout": "10s",
                # GetWod is safe to replay: the first WOD recorded for the day wins, so a retry
                # on the other implementation returns the same WOD. A coach that hangs is left
                # after the per-try timeout (its answer takes milliseconds when healthy).
                "retry_policy": _retry(
                    "unavailable,cancelled,connect-failure,refused-stream,reset",
                    3,
                    per_try="3s",
                    fallback=True,
                ),
            },
        },
        {
            "name": "api",
            "match": {"prefix": "/fitco."},
            "route": {
                "cluster": "monolith",
                "timeout": "15s",
                # Only failures where the request surely never reached the service.
                "retry_policy": _retry("connect-failure,refused-stream", 1),
            },
        },
        {
            "name": "health",
            "match": {"path": "/grpc.health.v1.Health/Check"},
            "route": {"cluster": "monolith", "timeout": "5s"},
        },
        *reflection,
    ]


LUA_CREATED = """
local created = {}
%s
function envoy_on_request(handle)
  local path = handle:headers():get(":path") or ""
  path = string.gsub(path, "?.*$", "")
  path = string.gsub(path, "/$", "")
  if handle:headers():get(":method") == "POST" and created[path] then
    handle:streamInfo():dynamicMetadata():set("fitco.legacy", "created", "yes")
  end
end
function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("fitco.legacy")
  if meta and meta["created"] == "yes" and handle:headers():get(":status") == "200" then
    handle:headers():replace(":status", "201")
  end
end
""".replace("%s", "\n".join(f'created["{p}"] = true' for p in CREATED_PATHS))


def _exact_paths(paths: list[str]) -> dict[str, Any]:
    return {"safe_regex": {"regex": "^(" + "|".join(re.escape(p) for p in paths) + ")$"}}


def _rate_limit(
    name: str, bucket: Bucket, actions: list[dict[str, Any]], entries: list[dict[str, str]]
) -> dict[str, Any]:
    """A local rate limit filter with one bucket per distinct descriptor value (client IP or
    user id: wildcard entries), answering 429 / RESOURCE_EXHAUSTED with Retry-After."""
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": f"envoy.filters.http.local_ratelimit.{name}",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": f"rl_{name}",
            # The filter-wide bucket is not the limit (the descriptors are): never reached.
            "token_bucket": {
                "max_tokens": 1000000,
                "tokens_per_fill": 1000000,
                "fill_interval": "1s",
            },
            "always_consume_default_token_bucket": False,
            "filter_enabled": always | {"runtime_key": f"ratelimit.{name}.enabled"},
            "filter_enforced": always | {"runtime_key": f"ratelimit.{name}.enforced"},
            "max_dynamic_descriptors": 20000,
            "rate_limited_as_resource_exhausted": True,
            "response_headers_to_add": [
                {
                    "header": {"key": "retry-after", "value": str(bucket.retry_after)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
            "rate_limits": [{"actions": actions}],
            "descriptors": [{"entries": entries, "token_bucket": bucket.envoy()}],
        },
    }


def rate_limit_filters(limits: RateLimits) -> dict[str, list[dict[str, Any]]]:
    """The rate limit filters by their place in the chain: `edge` first of all (every
    request, per client IP), `auth` after the transcoder (gRPC paths of the auth family, per
    client IP), `user` after jwt_authn (expensive RPCs, per verified user id)."""
    out: dict[str, list[dict[str, Any]]] = {"edge": [], "auth": [], "user": []}
    if limits.per_ip:
        out["edge"].append(
            _rate_limit(
                "per_ip",
                limits.general,
                [{"remote_address": {}}],
                [{"key": "remote_address"}],
            )
        )
        out["auth"].append(
            _rate_limit(
                "auth_per_ip",
                limits.auth,
                [
                    {
                        "header_value_match": {
                            "descriptor_key": "family",
                            "descriptor_value": "auth",
                            "headers": [
                                {"name": ":path", "string_match": _exact_paths(AUTH_METHODS)}
                            ],
                        }
                    },
                    {"remote_address": {}},
                ],
                [{"key": "family", "value": "auth"}, {"key": "remote_address"}],
            )
        )
    if limits.per_user:
        out["user"].append(
            _rate_limit(
                "expensive_per_user",
                limits.expensive,
                [
                    {
                        "header_value_match": {
                            "descriptor_key": "family",
                            "descriptor_value": "expensive",
                            "headers": [
                                {
                                    "name": ":path",
                                    "string_match": _exact_paths(EXPENSIVE_USER_METHODS),
                                }
                            ],
                        }
                    },
                    {
                        "metadata": {
                            "descriptor_key": "user",
                            "metadata_key": {
                                "key": "envoy.filters.http.jwt_authn",
                                "path": [{"key": JWT_METADATA}, {"key": "sub"}],
                            },
                            "source": "DYNAMIC",
                        }
                    },
                ],
                [{"key": "family", "value": "expensive"}, {"key": "user"}],
            )
        )
    return out


def http_filters(params: EnvoyParams) -> list[dict[str, Any]]:
    jwks: dict[str, Any]
    if params.jwks is not None:
        jwks = {"inline_string": json.dumps(params.jwks)}
    else:
        assert params.jwks_file, "a JWKS (inline or file) is required"
        jwks = {"filename": params.jwks_file}
    rules: list[dict[str, Any]] = [{"match": {"prefix": p}} for p in PUBLIC_PREFIXES]
    rules.append({"match": {"prefix": "/fitco."}, "requires": {"provider_name": "fitco"}})
    limits = rate_limit_filters(params.limits)
    return [
        *limits["edge"],
        {
            # Before the transcoder: it sees the legacy path on the way in and the
            # transcoded HTTP answer on the way out.
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": LUA_CREATED},
            },
        },
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                "proto_descriptor": params.descriptor,
                "services": SERVICES,
                "convert_grpc_status": True,
                "max_request_body_size": 1048576,
                "max_response_body_size": 4194304,
                "print_options": {
                    "add_whitespace": False,
                    "always_print_primitive_fields": True,
                    "always_print_enums_as_ints": False,
                    "preserve_proto_field_names": True,
                },
                "request_validation_options": {
                    "reject_unknown_method": True,
                    "reject_unknown_query_parameters": True,
                },
            },
        },
        *limits["auth"],
        {
            # After the transcoder: rules are written for gRPC paths and must also hold for
            # transcoded JSON requests.
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    "fitco": {
                        "issuer": params.issuer,
                        "audiences": [params.audience],
                        "local_jwks": jwks,
                        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                        "forward": True,
                        "require_expiration": True,
                        "clock_skew_seconds": 10,
                        # The verified claims, for the per-user limit and the access log.
                        "payload_in_metadata": JWT_METADATA,
                    }
                },
                "rules": rules,
            },
        },
        *limits["user"],
        {
            "name": "envoy.filters.http.grpc_stats",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
                "stats_for_all_methods": True,
                "enable_upstream_stats": True,
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            },
        },
    ]


ACCESS_LOG_FORMAT = {
    "ts": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS(SNAKE_STRING)%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "route": "%ROUTE_NAME%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "ms": "%DURATION%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    # Who asked: the client address and the verified user id (never the token or a password).
    "client_ip": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "user_id": f"%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:{JWT_METADATA}:sub)%",
}


def connection_manager(params: EnvoyParams) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "request_timeout": "30s",
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "60s",
        "max_request_headers_kb": 60,
        "common_http_protocol_options": {
            "idle_timeout": "300s",
            "headers_with_underscores_action": "REJECT_REQUEST",
            "max_headers_count": 100,
        },
        "http2_protocol_options": {"max_concurrent_streams": 256},
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": params.access_log,
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ],
        "local_reply_config": {
            "mappers": [
                {
                    # jwt_authn answers 403 for a token with the wrong audience; for clients
                    # an invalid token is a 401 whatever is wrong with it. (Only Envoy's own
                    # replies pass through here; a service's PERMISSION_DENIED stays 403.)
                    "filter": {
                        "status_code_filter": {
                            "comparison": {
                                "op": "EQ",
                                "value": {"default_value": 403, "runtime_key": "edge.jwt_403"},
                            }
                        }
                    },
                    "status_code": 401,
                },
                {
                    "filter": {
                        "status_code_filter": {
                            "comparison": {
                                "op": "EQ",
                                "value": {"default_value": 429, "runtime_key": "edge.rl_429"},
                            }
                        }
                    },
                    "body": {
                        "inline_string": "too many requests: slow down and retry after the "
                        "number of seconds in the Retry-After header"
                    },
                },
            ],
            "body_format": {
                "json_format": {
                    "code": "%RESPONSE_CODE%",
                    "message": "%LOCAL_REPLY_BODY%",
                    "details": "%RESPONSE_CODE_DETAILS%",
                    "request_id": "%REQ(X-REQUEST-ID)%",
                },
                "content_type": "application/json",
            },
        },
        "route_config": {
            "name": "fitco",
            "virtual_hosts": [{"name": "fitco", "domains": ["*"], "routes": routes(params)}],
        },
        "http_filters": http_filters(params),
    }


def render(params: EnvoyParams) -> dict[str, Any]:
    return {
        "node": {"id": "fitco-edge", "cluster": "fitco-edge"},
        "admin": {"address": _addr(*params.admin)},
        "layered_runtime": {
            "layers": [
                {
                    "name": "disk",
                    "disk_layer": {"symlink_root": params.runtime_root, "subdirectory": "envoy"},
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "edge",
                    "address": _addr(*params.listen),
                    "per_connection_buffer_limit_bytes": 1048576,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": connection_manager(params),
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters(params),
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 10000,
                    },
                }
            ]
        },
    }


def dump(config: dict[str, Any]) -> str:
    header = "# Generated by `./fit envoy` from devtools/envoy.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=120)


# -- the WOD split (runtime) ------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    legacy: int
    coach: int

    @classmethod
    def coach_percent(cls, percent: int) -> Split:
        if not 0 <= percent <= 100:
            raise ValueError("the coach share is a percentage, 0 to 100")
        return cls(100 - percent, percent)

    def keys(self) -> dict[str, int]:
        return {
            f"{ROUTING_PREFIX}.{LEGACY_CLUSTER}": self.legacy,
            f"{ROUTING_PREFIX}.{COACH_CLUSTER}": self.coach,
        }


def write_runtime(runtime_dir: Path, split: Split) -> Path:
    """Persist the split as a new disk-layer snapshot and swap `current` to it atomically."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    snapshot = runtime_dir / f"v{time.time_ns()}"
    for key, value in split.keys().items():
        path = snapshot / "envoy" / Path(*key.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    tmp = runtime_dir / f".current-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(snapshot.name)
    os.replace(tmp, runtime_dir / "current")
    for old in runtime_dir.glob("v*"):
        if old != snapshot and old.is_dir():
            for f in sorted(old.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            old.rmdir()
    return snapshot


def read_runtime(runtime_dir: Path) -> Split | None:
    base = runtime_dir / "current" / "envoy" / Path(*ROUTING_PREFIX.split("."))
    try:
        return Split(
            int((base / LEGACY_CLUSTER).read_text()), int((base / COACH_CLUSTER).read_text())
        )
    except (FileNotFoundError, ValueError):
        return None


def apply_live(admin_url: str, split: Split) -> bool:
    """Change the running Envoy's split in one admin call (no restart). False if not running."""
    query = urllib.parse.urlencode(split.keys())
    req = urllib.request.Request(f"{admin_url}/runtime_modify?{query}", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - loopback admin URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def live_split(admin_url: str) -> Split | None:
    try:
        url = f"{admin_url}/runtime"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback admin URL
            entries = json.load(resp)["entries"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return None
    keys = Split(0, 0).keys()
    values = [entries.get(k, {}).get("final_value") for k in keys]
    if None in values:
        return None
    return Split(int(values[0]), int(values[1]))
