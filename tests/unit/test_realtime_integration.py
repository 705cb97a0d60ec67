"""The realtime service and NATS in the mesh and at the edge, without starting anything: the
programs `./fit run` supervises and their wiring, and the routes, timeouts, retries, limits and
clusters Envoy gets for EventService and GroupService (all derived from the contract).
(tests/e2e/test_edge_streams.py runs the edge in front of the real service.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2

import fitedge
from devtools import envoy_files
from devtools.mesh import REALTIME_SERVICE, Mesh, MeshConfig
from fitcore.config import Env
from fitcore.keys import ensure_dev_keys
from fitedge.config import http_filters, jwt_rules, routes, transcoder_config
from realtime.events.watch import WatchSettings
from realtime.groups.limits import GroupLimits

PG = "postgresql+psycopg2://fitco@db.example:5432/fitco"
WATCH = "/fitco.events.v1.EventService/WatchEvents"
CONNECT = "/fitco.groups.v1.GroupService/Connect"


def _mesh(tmp_path: Path, **overrides: Any) -> Mesh:
    config = MeshConfig.on_free_ports(tmp_path, **overrides)
    ensure_dev_keys(Env({"FITCO_DATA_DIR": str(tmp_path)}))
    return Mesh(config)


def test_nats_starts_first_and_keeps_its_store_in_the_data_directory(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path)
    specs = mesh.specs()
    c = mesh.config
    nats = specs[0]
    assert nats.name == "nats"
    assert nats.priority < min(s.priority for s in specs[1:])  # supervisord starts it first
    argv = nats.argv
    assert argv[0].endswith("nats-server") and "-js" in argv
    assert argv[argv.index("-sd") + 1] == str(c.data_dir / "nats")
    assert argv[argv.index("-p") + 1] == str(c.nats_port)
    # Monitoring only on loopback, whatever the clients' address.
    conf = Path(argv[argv.index("-c") + 1]).read_text()
    assert conf.strip() == f'http: "127.0.0.1:{c.nats_monitor_port}"'
    assert "[program:nats]" in mesh.supervisor_conf(specs)


def test_every_producer_and_realtime_instance_uses_the_meshs_nats(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path)
    specs = {s.name: s for s in mesh.specs()}
    url = mesh.config.nats_url
    assert url == f"nats://127.0.0.1:{mesh.config.nats_port}"
    for name in ("monolith", "billing", "realtime-0", "realtime-1"):
        assert specs[name].env["FITCO_NATS_URL"] == url, name


def test_two_realtime_instances_with_one_database_of_their_own(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path, coach_instances=2)
    c = mesh.config
    specs = {s.name: s for s in mesh.specs()}
    names = [n for n in specs if n.startswith("realtime")]
    assert names == ["realtime-0", "realtime-1"]
    envs = [specs[n].env for n in names]
    assert [e["REALTIME_ADDR"] for e in envs] == [c.realtime_target(0), c.realtime_target(1)]
    assert {e["REALTIME_DATABASE_URL"] for e in envs} == {c.realtime_db_url()}
    assert c.realtime_db_url() == f"sqlite:///{tmp_path / 'realtime.db'}"
    for spec in (specs[n] for n in names):
        assert spec.argv[-3:] == ["-m", "realtime", "serve"]
        assert spec.env["FITCO_MONOLITH_TARGET"] == c.monolith_target
        # Both coaches, round robin, for the WOD a group follows.
        assert spec.env["FITCO_COACH_TARGET"] == (f"ipv4:{c.coach_target(0)},{c.coach_target(1)}")
        # After the services they call, before the edge.
        assert specs["monolith"].priority < spec.priority < specs["envoy"].priority


def test_the_realtime_database_follows_the_monoliths_like_billings(tmp_path: Path) -> None:
    on_pg = MeshConfig(data_dir=tmp_path, database_url=PG)
    assert on_pg.realtime_db_url() == "postgresql+psycopg2://fitco@db.example:5432/fitco_realtime"
    assert on_pg.realtime_db_url() != on_pg.billing_db_url()
    chosen = MeshConfig(data_dir=tmp_path, database_url=PG, realtime_database_url="sqlite://")
    assert chosen.realtime_db_url() == "sqlite://"
    assert MeshConfig(data_dir=tmp_path).realtime_db_url().endswith("/realtime.db")


def test_ports_and_metrics_follow_the_others(tmp_path: Path) -> None:
    c = MeshConfig(data_dir=tmp_path)
    assert (c.realtime_port, c.nats_port) == (50081, 4222)
    assert [c.realtime_metrics(i) for i in (0, 1)] == [c.billing_metrics + 1, c.billing_metrics + 2]
    assert MeshConfig(data_dir=tmp_path, metrics_port=0).realtime_metrics(0) == 0
    throwaway = MeshConfig.on_free_ports(tmp_path)
    ports = {
        throwaway.nats_port,
        throwaway.nats_monitor_port,
        throwaway.realtime_port,
        throwaway.realtime_port + 1,
        throwaway.monolith_port,
        throwaway.billing_port,
    }
    assert len(ports) == 6
    one_host = MeshConfig(data_dir=tmp_path, host="localhost")
    assert one_host.coach_targets == one_host.coach_target(0)  # ipv4: needs an address


def test_the_health_check_is_the_event_service() -> None:
    assert REALTIME_SERVICE == "fitco.events.v1.EventService"


# -- the edge ------------------------------------------------------------------------------


def _params() -> fitedge.EnvoyParams:
    return envoy_files.compose_params()


def _routes() -> dict[str, dict[str, Any]]:
    return {r["match"]["path"]: r["route"] for r in routes(_params()) if "path" in r["match"]}


def test_every_realtime_rpc_goes_to_the_realtime_instances() -> None:
    params = _params()
    by_path = _routes()
    paths = [rpc.path for rpc in params.contract.of_services(events_pb2, groups_pb2)]
    assert WATCH in paths and CONNECT in paths
    for path in paths:
        cluster = by_path[path]["cluster"]
        expected = fitedge.REALTIME_CLUSTER if path in (WATCH, CONNECT) else fitedge.REALTIME_UNARY
        assert cluster == expected, path


def test_streams_have_no_route_timeout_an_idle_timeout_above_their_keepalive_and_no_retry() -> None:
    by_path = _routes()
    watch, connect = by_path[WATCH], by_path[CONNECT]
    for route in (watch, connect):
        assert route["timeout"] == "0s"
        # The route's policy replaces the virtual host's (which retries connect failures).
        assert route["retry_policy"] == {"num_retries": 0}
    idle = {p: int(r["idle_timeout"].rstrip("s")) for p, r in ((WATCH, watch), (CONNECT, connect))}
    # Several heartbeats fit in the watch's idle timeout; the group's own idle limit (its
    # reason, IDLE, reaches the member) fires before the edge's.
    assert idle[WATCH] >= 3 * WatchSettings().heartbeat_seconds
    assert idle[CONNECT] > GroupLimits().idle_seconds


def test_a_users_streams_go_to_one_instance_by_the_verified_user() -> None:
    """The per-user stream cap is a realtime instance's count: Envoy must send all of a user's
    streams to one instance, keyed by the user jwt_authn verified (not by a client header)."""
    config = fitedge.render(_params())
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert clusters[fitedge.REALTIME_CLUSTER]["lb_policy"] == "MAGLEV"
    by_path = _routes()
    for path in (WATCH, CONNECT):
        assert by_path[path]["hash_policy"] == [{"header": {"header_name": "x-fitco-user"}}]
    (jwt,) = re.findall(r"'claim_to_headers': (\[[^\]]*\])", str(config))
    assert jwt == "[{'header_name': 'x-fitco-user', 'claim_name': 'sub'}]"


def test_group_reads_are_retried_on_another_instance_writes_only_when_never_sent() -> None:
    by_path = _routes()
    svc = "/fitco.groups.v1.GroupService"
    for name in ("ListGroups", "GetGroup", "ListGroupMessages"):
        policy = by_path[f"{svc}/{name}"]["retry_policy"]
        assert "reset" in policy["retry_on"] and "unavailable" in policy["retry_on"], name
        assert policy["retry_host_predicate"][0]["name"].endswith("previous_hosts")
    for name in ("CreateGroup", "JoinGroup", "LeaveGroup"):
        assert "retry_policy" not in by_path[f"{svc}/{name}"], name  # the vhost's only


def test_every_realtime_rpc_needs_a_token() -> None:
    rules = {r["match"]["path"]: "requires" in r for r in jwt_rules(_params())}
    contract = _params().contract
    for rpc in contract.of_services(events_pb2, groups_pb2):
        assert rules[rpc.path] is True, rpc.path


def test_streams_have_a_circuit_breaker_of_their_own_sized_for_thousands() -> None:
    params = _params()
    clusters = {c["name"]: c for c in fitedge.render(params)["static_resources"]["clusters"]}
    streams, unary = clusters[fitedge.REALTIME_CLUSTER], clusters[fitedge.REALTIME_UNARY]
    assert streams["circuit_breakers"]["thresholds"][0]["max_requests"] == params.streams.max_open
    assert params.streams.max_open >= 2000
    # Unary group RPCs keep the usual breaker: open streams never fill it.
    assert unary["circuit_breakers"]["thresholds"][0]["max_requests"] < params.streams.max_open
    for cluster in (streams, unary):
        assert cluster["type"] == "STRICT_DNS"  # compose / Kubernetes: every replica
        check = cluster["health_checks"][0]["grpc_health_check"]
        assert check["service_name"] == REALTIME_SERVICE
        assert cluster["outlier_detection"]["consecutive_gateway_failure"] == 2
        assert "http2_protocol_options" in str(cluster["typed_extension_protocol_options"])
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        assert address["address"]["socket_address"] == {"address": "realtime", "port_value": 50081}


def test_the_edge_holds_thousands_of_http1_watchers() -> None:
    config = fitedge.render(_params())
    monitors = config["overload_manager"]["resource_monitors"]
    (downstream,) = [m for m in monitors if "downstream_max_connections" in m["name"]]
    assert downstream["typed_config"]["max_active_downstream_connections"] >= 2000


def test_server_streams_print_one_json_object_per_line_or_sse() -> None:
    params = _params()
    options = transcoder_config(params)["print_options"]
    assert options["stream_newline_delimited"] is True
    (sse,) = [r for r in routes(params) if r["name"].endswith("(SSE)")]
    assert sse["match"]["safe_regex"]["regex"] == "^/v1/events:watch$"
    assert sse["match"]["headers"][0]["string_match"] == {"contains": "text/event-stream"}
    per_route = sse["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
    assert per_route["print_options"]["stream_sse_style_delimited"] is True
    assert per_route["print_options"]["stream_newline_delimited"] is False
    assert sse["route"] == _routes()[WATCH]
    # Before the transcoder: Last-Event-ID becomes after_event_id on the way in.
    names = [f["name"] for f in http_filters(params)]
    assert names.index("envoy.filters.http.lua.sse") < names.index(
        "envoy.filters.http.grpc_json_transcoder"
    )


def test_opening_streams_has_a_bucket_per_user() -> None:
    params = _params()
    filters = {f["name"]: f["typed_config"] for f in http_filters(params)}
    streams = filters["envoy.filters.http.local_ratelimit.streams_per_user"]
    assert streams["descriptors"][0]["token_bucket"]["max_tokens"] == params.limits.streams.tokens
    (matcher,) = streams["rate_limits"][0]["actions"][0]["header_value_match"]["headers"]
    regex = re.compile(matcher["string_match"]["safe_regex"]["regex"])
    assert [p for p in _routes() if regex.fullmatch(p)] == [WATCH, CONNECT]
    names = list(filters)
    assert names.index("envoy.filters.http.jwt_authn") < names.index(
        "envoy.filters.http.local_ratelimit.streams_per_user"
    )
    limits = fitedge.RateLimits.from_env({"FITCO_RATE_LIMIT_STREAMS": "5/1m"})
    assert limits.streams == fitedge.Bucket(5, 60)
    params.limits = fitedge.RateLimits.from_env({"FITCO_RATE_LIMITS": "none"})
    assert not any("streams" in f["name"] for f in http_filters(params))
