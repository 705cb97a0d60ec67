"""The edge: Envoy's configuration, rendered from one source for every deployment (`./fit run`
locally, docker compose and Kubernetes from `envoy/envoy.compose.yaml`, written by `./fit
envoy`). Only addresses, ports and mounted file paths differ between renderings.

Routes, jwt_authn rules, the transcoder's services and the 405 table all come from the contract
(fitedge.contract: the descriptor set and its access options), never from a list here: a new
RPC is routed (or, when INTERNAL, not) with the access its .proto declares.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fitco.billing.v1 import billing_pb2
from fitco.coach.v1 import coach_pb2
from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2
from fitco.nutrition.v1 import nutrition_pb2
from fitco.user.v1 import user_pb2

from fitcore.access import Access
from fitcore.service_auth import SERVICE_TOKEN_HEADER
from fitedge.clusters import (
    BILLING_CLUSTER,
    COACH_CLUSTER,
    COACH_HOSTS,
    LEGACY_CLUSTER,
    MONOLITH_CLUSTER,
    REALTIME_CLUSTER,
    REALTIME_UNARY,
    REFLECTION_CLUSTER,
    address,
    clusters,
)
from fitedge.contract import EdgeRpc
from fitedge.limits import JWT_METADATA, rate_limit_filters
from fitedge.params import EnvoyParams, Tls
from fitedge.runtime import ROUTING_PREFIX
from fitedge.sse import lua_sse, sse_routes, sse_rpcs

# Legacy paths that answered 201 Created; the transcoder can only say 200.
CREATED_PATHS = ["/users", "/bootstrap/admin"]
JWT_PROVIDER = "fitco"
# The verified token's subject (the user id), set by jwt_authn for routing; never the client's.
USER_HEADER = "x-fitco-user"


# A signed-in RPC of the accounts service that also checks a password (two hashes).
_PASSWORD_CHECKING = ("ChangePassword",)


def auth_paths(params: EnvoyParams) -> list[str]:
    """The auth family: the public RPCs of the accounts service (login, the OAuth token,
    registration, bootstrap) and the signed-in ones that check a password. Each costs a slow
    password hash or guards one, so each client IP gets a small bucket of them (JSON and legacy
    paths are transcoded to these gRPC paths)."""
    return [
        rpc.path
        for rpc in params.contract.of_services(user_pb2)
        if rpc.access is Access.PUBLIC or rpc.name in _PASSWORD_CHECKING
    ]


def split_paths(params: EnvoyParams) -> list[str]:
    """The RPCs both WOD implementations serve (the coach's service): split by weight between
    the legacy implementation and the coach, and expensive per user (the first WOD of a day
    is generated, read from history and recorded)."""
    return [rpc.path for rpc in params.contract.of_services(coach_pb2)]


def coach_only_paths(params: EnvoyParams) -> list[str]:
    """The RPCs only the coach serves (stateless, no legacy implementation): routed to the
    coach instances, never split with nor falling back to the monolith."""
    return [rpc.path for rpc in params.contract.of_services(nutrition_pb2)]


def billing_paths(params: EnvoyParams) -> list[str]:
    """The RPCs billing serves (plans, checkout, subscriptions, the provider's webhooks)."""
    return [rpc.path for rpc in params.contract.of_services(billing_pb2)]


def checkout_paths(params: EnvoyParams) -> list[str]:
    """Purchases: each one charges a card at the payment provider (own per-user bucket)."""
    return [
        rpc.path for rpc in params.contract.of_services(billing_pb2) if rpc.method == "Checkout"
    ]


def realtime_paths(params: EnvoyParams) -> list[str]:
    """The RPCs the realtime service serves (event streams, groups and their live sessions)."""
    return [rpc.path for rpc in params.contract.of_services(events_pb2, groups_pb2)]


def stream_paths(params: EnvoyParams) -> list[str]:
    """Every streaming RPC routed at the edge (each open stream is held for a long time)."""
    return [rpc.path for rpc in params.contract.routable if rpc.streaming]


def _is_read(rpc: EdgeRpc) -> bool:
    """Bound to GET only: safe to replay (the contract's HTTP verbs say which RPCs change
    nothing)."""
    return bool(rpc.bindings) and all(b.verb == "GET" for b in rpc.bindings)


def _billing_route(rpc: EdgeRpc) -> dict[str, Any]:
    """Reads (GET bindings) are replayed on a failure; writes never are (beyond the virtual
    host's connect-failure / refused-stream, where the request never reached billing): a
    checkout replayed without its client knowing could charge twice if its Idempotency-Key
    were missing, a refund or a cancel is the admin's or user's to retry. Checkout and refunds
    wait for the payment provider (its client's timeout is 10 s)."""
    if _is_read(rpc):
        return {
            "cluster": BILLING_CLUSTER,
            "timeout": "10s",
            "retry_policy": _retry(
                "unavailable,cancelled,connect-failure,refused-stream,reset", 2, per_try="4s"
            ),
        }
    return {"cluster": BILLING_CLUSTER, "timeout": "15s"}


def _realtime_route(rpc: EdgeRpc, params: EnvoyParams) -> dict[str, Any]:
    """Streams (adr/10) have no route timeout (a watcher stays for up to an hour, a group
    session as long as it lasts) but an idle timeout above what keeps them alive: WatchEvents'
    heartbeat, Connect's own idle limit. They are never retried, not even where the vhost
    would (a refused stream is the client's to reopen, resuming from its last id), so the
    route's policy replaces the vhost's with none. Unary RPCs (groups over REST) are retried
    like the others: reads on any failure on another instance, writes only where the request
    never reached one; a group created with a WOD to follow waits for the coach."""
    if rpc.streaming:
        idle = (
            params.streams.session_idle_seconds
            if rpc.client_streaming
            else params.streams.watch_idle_seconds
        )
        return {
            "cluster": REALTIME_CLUSTER,
            "timeout": "0s",
            "idle_timeout": f"{idle}s",
            "retry_policy": {"num_retries": 0},
            # All of a user's streams on one instance (consistent hashing on the verified
            # user): the contract's "5 streams per user" is that instance's count.
            "hash_policy": [{"header": {"header_name": USER_HEADER}}],
        }
    if _is_read(rpc):
        return {
            "cluster": REALTIME_UNARY,
            "timeout": "10s",
            "retry_policy": _retry(
                "unavailable,cancelled,connect-failure,refused-stream,reset",
                2,
                per_try="4s",
                other_host=True,
            ),
        }
    return {"cluster": REALTIME_UNARY, "timeout": "15s"}


def jwks_from_public_key(pem: bytes, kid: str = "fitco-1") -> dict[str, Any]:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("expected an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": kid}]
    }


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _previous_hosts() -> dict[str, Any]:
    """A fresh dict each time: a shared one would be dumped as a YAML anchor and alias."""
    return {
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
        },
    }


def _retry(
    retry_on: str,
    num: int,
    per_try: str | None = None,
    fallback: bool = False,
    other_host: bool = False,
) -> dict[str, Any]:
    """`fallback`: retries move on to the aggregate's next priority (coach → legacy) and to
    another host; `other_host`: to another host of the same cluster."""
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
    if fallback or other_host:
        policy["retry_host_predicate"] = [_previous_hosts()]
        policy["host_selection_retry_max_attempts"] = 5
    return policy


def _split_retry(rpc: EdgeRpc) -> dict[str, Any]:
    """Retries of a split RPC. Read-only ones (bound to GET only: GetWod) are safe to replay:
    the first WOD recorded for the day wins, so a retry on the other implementation returns the
    same WOD, and a coach that hangs is left after the per-try timeout. Others (RegenerateWod,
    which spends one of the day's regenerations) are retried only when the request never
    reached an implementation, so an answer lost on the way back is never paid twice."""
    if rpc.bindings and all(b.verb == "GET" for b in rpc.bindings):
        return _retry(
            "unavailable,cancelled,connect-failure,refused-stream,reset",
            3,
            per_try="3s",
            fallback=True,
        )
    return _retry("connect-failure,refused-stream", 3, fallback=True)


def routes(params: EnvoyParams) -> list[dict[str, Any]]:
    """One route per RPC routable at the edge, on its exact gRPC path (transcoded JSON is
    routed by the same path); INTERNAL RPCs have none (404 / UNIMPLEMENTED at the edge).
    Besides: health Check and, bounded, server reflection (adr/04)."""
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
    split = split_paths(params)
    coach_only = coach_only_paths(params)
    billing = billing_paths(params)
    realtime = realtime_paths(params)
    api: list[dict[str, Any]] = []
    for rpc in params.contract.routable:
        if rpc.path in billing:
            api.append(
                {"name": rpc.name, "match": {"path": rpc.path}, "route": _billing_route(rpc)}
            )
        elif rpc.path in realtime:
            api.append(
                {
                    "name": rpc.name,
                    "match": {"path": rpc.path},
                    "route": _realtime_route(rpc, params),
                }
            )
        elif rpc.path in split:
            api.append(
                {
                    "name": rpc.name,
                    "match": {"path": rpc.path},
                    "route": {
                        "weighted_clusters": {
                            "runtime_key_prefix": ROUTING_PREFIX,
                            "clusters": [
                                {"name": LEGACY_CLUSTER, "weight": 100},
                                {"name": COACH_CLUSTER, "weight": 0},
                            ],
                        },
                        "timeout": "10s",
                        "retry_policy": _split_retry(rpc),
                    },
                }
            )
        elif rpc.path in coach_only:
            api.append(
                {
                    "name": rpc.name,
                    "match": {"path": rpc.path},
                    "route": {
                        "cluster": COACH_HOSTS,
                        # The coach's reads of the monolith run concurrently, each with its own
                        # deadline (FITCO_COACH_DEADLINE_SECONDS, 2 s).
                        "timeout": "10s",
                        # Reads only, safe to replay: a coach that is down, drained or reset
                        # mid-answer is retried on another coach instance.
                        "retry_policy": _retry(
                            "unavailable,cancelled,connect-failure,refused-stream,reset",
                            2,
                            per_try="4s",
                            other_host=True,
                        ),
                    },
                }
            )
        else:
            api.append(
                {
                    "name": rpc.name,
                    "match": {"path": rpc.path},
                    "route": {"cluster": MONOLITH_CLUSTER, "timeout": "15s"},
                }
            )
    actions = {r["match"]["path"]: r["route"] for r in api}
    return [
        # First: they match REST paths only for clients accepting text/event-stream.
        *sse_routes(params, actions, transcoder_config(params)),
        *api,
        {
            "name": "health",
            "match": {"path": "/grpc.health.v1.Health/Check"},
            "route": {"cluster": MONOLITH_CLUSTER, "timeout": "5s"},
        },
        *reflection,
    ]


LUA_CREATED = """local created = {}
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


# Before the transcoder, for JSON clients: a known REST path asked with a method it does not
# accept is 405 with `Allow` (the methods of its google.api.http bindings that are routed at
# the edge), not the transcoder's 404; a binding of an RPC not routed at the edge (INTERNAL) is
# 404 as if unknown. Native gRPC requests are not looked at.
LUA_METHODS = """local paths = {
%s
}
function envoy_on_request(handle)
  local headers = handle:headers()
  local ctype = headers:get("content-type") or ""
  if string.sub(ctype, 1, 16) == "application/grpc" then
    return
  end
  -- A token in the URL ends up in logs and browser histories: refused outright (401), even
  -- where the path needs no token (jwt_authn reads only the Authorization header anyway).
  local query = string.match(headers:get(":path") or "", "%?(.*)$")
  if query and string.find("&" .. string.lower(query), "&access_token=", 1, true) then
    handle:respond({[":status"] = "401", ["www-authenticate"] = "Bearer"},
      "a token in the URL is never accepted: send it in the Authorization header")
    return
  end
  local method = headers:get(":method") or ""
  local path = string.gsub(headers:get(":path") or "", "%?.*$", "")
  local allowed, hidden, matched = {}, false, false
  for _, p in ipairs(paths) do
    if string.match(path, p[1]) then
      if p[2][method] then
        return
      end
      matched = true
      hidden = hidden or p[3][method] ~= nil
      for verb, _ in pairs(p[2]) do
        allowed[verb] = true
      end
    end
  end
  if not matched then
    return
  end
  if hidden or next(allowed) == nil then
    handle:respond({[":status"] = "404"}, "not found")
    return
  end
  local verbs = {}
  for verb, _ in pairs(allowed) do
    table.insert(verbs, verb)
  end
  table.sort(verbs)
  local allow = table.concat(verbs, ", ")
  handle:respond({[":status"] = "405", ["allow"] = allow},
    "method " .. method .. " not allowed here; allowed: " .. allow)
end
"""


def _lua_set(verbs: list[str]) -> str:
    return "{" + ", ".join(f"{v} = true" for v in verbs) + "}"


def lua_methods(params: EnvoyParams) -> str:
    rows = [
        f'  {{"{pattern}", {_lua_set(routed)}, {_lua_set(hidden)}}},'
        for pattern, routed, hidden in params.contract.allowed_methods()
    ]
    return LUA_METHODS.replace("%s", "\n".join(rows))


def _lua(name: str, source: str) -> dict[str, Any]:
    return {
        "name": f"envoy.filters.http.lua.{name}",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": source},
        },
    }


def transcoder_config(params: EnvoyParams) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        "proto_descriptor": params.descriptor,
        "services": params.contract.services,
        "convert_grpc_status": True,
        "max_request_body_size": 1048576,
        "max_response_body_size": 4194304,
        "print_options": {
            "add_whitespace": False,
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": True,
            # Server streams (WatchEvents) as one JSON object per line, each sent as it comes
            # (`curl -N`), not one array closed when the stream ends (SSE: fitedge.sse).
            "stream_newline_delimited": True,
        },
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
        },
    }


def jwt_rules(params: EnvoyParams) -> list[dict[str, Any]]:
    """Per exact gRPC path: PUBLIC needs no token, USER and ADMIN a valid one (the role is
    the services' to check). Anything else matches no rule and no route (404)."""
    rules: list[dict[str, Any]] = []
    for rpc in params.contract.routable:
        rule: dict[str, Any] = {"match": {"path": rpc.path}}
        if rpc.access.needs_user_token:
            rule["requires"] = {"provider_name": JWT_PROVIDER}
        rules.append(rule)
    return rules


def http_filters(params: EnvoyParams) -> list[dict[str, Any]]:
    jwks: dict[str, Any]
    if params.jwks is not None:
        jwks = {"inline_string": json.dumps(params.jwks)}
    else:
        assert params.jwks_file, "a JWKS (inline or file) is required"
        jwks = {"filename": params.jwks_file}
    limits = rate_limit_filters(
        params.limits,
        auth_paths(params),
        split_paths(params) + coach_only_paths(params),
        checkout_paths(params),
        stream_paths(params),
    )
    return [
        *limits["edge"],
        # Before the transcoder: they see the REST path and method on the way in (and the
        # transcoded HTTP answer on the way out).
        _lua("methods", lua_methods(params)),
        _lua("created", LUA_CREATED),
        # Before the transcoder too: Last-Event-ID to the resume parameter, `id:` lines out.
        *([_lua("sse", lua_sse(params))] if sse_rpcs(params) else []),
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": transcoder_config(params),
        },
        *limits["auth"],
        {
            # After the transcoder: rules are written for gRPC paths and must also hold for
            # transcoded JSON requests.
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    JWT_PROVIDER: {
                        "issuer": params.issuer,
                        "audiences": [params.audience],
                        "local_jwks": jwks,
                        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                        "forward": True,
                        "require_expiration": True,
                        "clock_skew_seconds": 10,
                        # The verified claims, for the per-user limit and the access log.
                        "payload_in_metadata": JWT_METADATA,
                        # The verified user, for routing a user's streams to one realtime
                        # instance (its per-user cap is then the user's).
                        "claim_to_headers": [{"header_name": USER_HEADER, "claim_name": "sub"}],
                    }
                },
                "rules": jwt_rules(params),
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


# Envoy's own replies (no route, jwt_authn, rate limits, the 405 table, ...), shaped for the
# client that asked. A native gRPC client gets the status as grpc-status and a plain sentence
# as grpc-message; everyone else the API's JSON error body. Native gRPC is told apart by its
# content type on a request the transcoder did not rewrite: a transcoded JSON request also
# carries application/grpc by then, but the transcoder keeps its original path in
# x-envoy-original-path.
_NATIVE_GRPC: dict[str, Any] = {
    "and_filter": {
        "filters": [
            {
                "header_filter": {
                    "header": {
                        "name": "content-type",
                        "string_match": {"prefix": "application/grpc"},
                    }
                }
            },
            {
                "header_filter": {
                    "header": {
                        "name": "x-envoy-original-path",
                        "present_match": True,
                        "invert_match": True,
                    }
                }
            },
        ]
    }
}
_PLAIN = {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}}
_UNAVAILABLE = "the service is temporarily unavailable; retry shortly"
_TIMEOUT = "the service did not answer in time; retry shortly"
_TOO_MANY = (
    "too many requests: slow down and retry after the number of seconds in the Retry-After header"
)


def _status_is(code: int, runtime_key: str) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": runtime_key},
            }
        }
    }


def local_reply_config() -> dict[str, Any]:
    # The first mapper that matches applies: the gRPC variants come first.
    # (filter, rewrite, upstream failure: its `details` would describe our upstreams)
    rewrites: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
        # jwt_authn answers 403 for a token with the wrong audience; for clients an invalid
        # token is a 401 whatever is wrong with it. (Only Envoy's own replies pass through
        # here; a service's PERMISSION_DENIED stays 403.)
        (_status_is(403, "edge.jwt_403"), {"status_code": 401}, False),
        (_status_is(429, "edge.rl_429"), {"body": {"inline_string": _TOO_MANY}}, False),
        # No route: an unknown method, or one not routed at the edge (INTERNAL).
        (
            {"response_flag_filter": {"flags": ["NR"]}},
            {"body": {"inline_string": "not found"}},
            False,
        ),
        # Envoy's own 5xx texts describe upstream resets and transport failures: for our logs
        # (the access log's `details`), never for clients.
        (_status_is(502, "edge.upstream_502"), {"body": {"inline_string": _UNAVAILABLE}}, True),
        (_status_is(503, "edge.upstream_503"), {"body": {"inline_string": _UNAVAILABLE}}, True),
        (_status_is(504, "edge.upstream_504"), {"body": {"inline_string": _TIMEOUT}}, True),
    ]
    grpc = [
        {
            "filter": {"and_filter": {"filters": [_NATIVE_GRPC, f]}},
            **r,
            "body_format_override": _PLAIN,
        }
        for f, r, _ in rewrites
    ]
    grpc.append({"filter": _NATIVE_GRPC, "body_format_override": _PLAIN})
    json = [
        {"filter": f, **r, **({"body_format_override": _json_body("upstream")} if up else {})}
        for f, r, up in rewrites
    ]
    return {"mappers": [*grpc, *json], "body_format": _json_body("%RESPONSE_CODE_DETAILS%")}


def _json_body(details: str) -> dict[str, Any]:
    return {
        "json_format": {
            "code": "%RESPONSE_CODE%",
            "message": "%LOCAL_REPLY_BODY%",
            "details": details,
            "request_id": "%REQ(X-REQUEST-ID)%",
        },
        "content_type": "application/json",
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
        "local_reply_config": local_reply_config(),
        "route_config": {
            "name": "fitco",
            # A service identity never enters through the edge (INTERNAL RPCs are not routed
            # here anyway; this keeps a client's copy away from every service).
            "request_headers_to_remove": [SERVICE_TOKEN_HEADER],
            # Browsers that reached us over TLS keep using it (only sent on the TLS edge).
            "response_headers_to_add": [
                {
                    "header": {"key": "strict-transport-security", "value": "max-age=31536000"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ]
            if params.tls is not None
            else [],
            "virtual_hosts": [
                {
                    "name": "fitco",
                    "domains": ["*"],
                    "routes": routes(params),
                    # Only failures where the request surely never reached the service (the
                    # WOD routes have their own policy).
                    "retry_policy": _retry("connect-failure,refused-stream", 1),
                }
            ],
        },
        "http_filters": http_filters(params),
    }


def _tls_socket(tls: Tls) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                # h2 for gRPC and HTTP/2 JSON clients, http/1.1 for curl and old clients.
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": tls.cert_file},
                        "private_key": {"filename": tls.key_file},
                    }
                ],
            },
        },
    }


def _redirect_listener(tls: Tls, listen: tuple[str, int]) -> dict[str, Any]:
    """Plain HTTP that only redirects to HTTPS: no route reaches a service."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "edge_http",
        "codec_type": "AUTO",
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "10s",
        "route_config": {
            "name": "to_https",
            "virtual_hosts": [
                {
                    "name": "to_https",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "redirect": {
                                "https_redirect": True,
                                "port_redirect": tls.https_port,
                                "response_code": "PERMANENT_REDIRECT",  # 308: keeps the method
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "name": "edge_http_redirect",
        "address": address(*listen),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def listeners(params: EnvoyParams) -> list[dict[str, Any]]:
    chain: dict[str, Any] = {
        "filters": [
            {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": connection_manager(params),
            }
        ]
    }
    if params.tls is not None:
        chain["transport_socket"] = _tls_socket(params.tls)
    edge = {
        "name": "edge",
        "address": address(*params.listen),
        "per_connection_buffer_limit_bytes": 1048576,
        "filter_chains": [chain],
    }
    if params.tls is not None and params.tls.redirect is not None:
        return [edge, _redirect_listener(params.tls, params.tls.redirect)]
    return [edge]


def render(params: EnvoyParams) -> dict[str, Any]:
    return {
        "node": {"id": "fitco-edge", "cluster": "fitco-edge"},
        "admin": {"address": address(*params.admin)},
        "layered_runtime": {
            "layers": [
                {
                    "name": "disk",
                    "disk_layer": {"symlink_root": params.runtime_root, "subdirectory": "envoy"},
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {"listeners": listeners(params), "clusters": clusters(params)},
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


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the Lua sources) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(config: dict[str, Any]) -> str:
    header = "# Generated by `./fit envoy` from envoy/fitedge. Do not edit by hand.\n"
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=120)
