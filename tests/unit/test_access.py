"""One access table, in the contracts: every RPC declares its access; the services' policies and
the edge's routes and JWT rules are derived from it; anything undeclared is refused."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import fitco
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.access.v1 import access_pb2
from google.protobuf import descriptor_pb2

import fitedge
from billing.app import POLICY as BILLING_POLICY
from coach.app import POLICY as COACH_POLICY
from fitcore.access import Access, AccessTable
from fitcore.auth import TokenSettings, TokenVerifier
from fitcore.errors import PermissionDenied
from fitcore.interceptor import AccessPolicy, ServerInterceptor
from fitedge.config import jwt_rules, local_reply_config, routes
from fitedge.contract import DEFAULT_DESCRIPTOR_SET, Binding, Contract
from monolith.app import POLICY as MONOLITH_POLICY
from realtime.app import POLICY as REALTIME_POLICY

RECORD_WOD = "/fitco.history.v1.HistoryService/RecordWod"


def _generated_modules() -> list[ModuleType]:
    """Every generated `*_pb2` module (not only the ones a service imports)."""
    return [
        importlib.import_module(m.name)
        for m in pkgutil.walk_packages(fitco.__path__, "fitco.")
        if m.name.endswith("_pb2")
    ]


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(DEFAULT_DESCRIPTOR_SET.read_bytes())


def test_every_rpc_of_every_service_declares_its_access() -> None:
    from_modules = AccessTable.of_modules(*_generated_modules())
    from_set = AccessTable.of_file_set(_descriptor_set())
    assert len(from_modules) > 30
    assert from_modules.unannotated() == [], "add option (fitco.access.v1.access) to these RPCs"
    assert from_set.unannotated() == [], "run ./fit gen"
    # Envoy's descriptor set and the generated stubs say the same.
    assert {r.path: r.access for r in from_set} == {r.path: r.access for r in from_modules}


def test_the_table_says_what_the_contracts_say() -> None:
    table = AccessTable.of_file_set(_descriptor_set())
    assert table.access("/fitco.user.v1.UserService/Login") is Access.PUBLIC
    assert table.access("/fitco.user.v1.UserService/BootstrapAdmin") is Access.PUBLIC
    assert table.access("/fitco.catalog.v1.CatalogService/GetCatalog") is Access.PUBLIC
    assert table.access("/fitco.system.v1.SystemService/GetHealth") is Access.PUBLIC
    assert table.access("/fitco.legacy.v1.LegacyService/GetExercise") is Access.PUBLIC
    assert table.access("/fitco.user.v1.UserService/CreateUser") is Access.ADMIN
    assert table.access("/fitco.user.v1.UserService/ListUsers") is Access.ADMIN
    assert table.access("/fitco.legacy.v1.LegacyService/ListUsers") is Access.ADMIN
    assert table.access("/fitco.coach.v1.CoachService/GetWod") is Access.USER
    assert table.access("/fitco.history.v1.HistoryService/GetServedWod") is Access.USER
    assert table.access(RECORD_WOD) is Access.INTERNAL
    # Unknown methods and services: nobody may call them.
    assert table.access("/fitco.user.v1.UserService/DropTables") is Access.UNSPECIFIED
    assert table.access("/evil.v1.Service/Anything") is Access.UNSPECIFIED


def test_the_services_policies_are_the_table() -> None:
    table = AccessTable.of_file_set(_descriptor_set())
    served = {
        *MONOLITH_POLICY.table.services,
        *COACH_POLICY.table.services,
        *BILLING_POLICY.table.services,
        *REALTIME_POLICY.table.services,
    }
    assert served == set(table.services)  # every service is served, by its descriptors
    assert BILLING_POLICY.table.services == ["fitco.billing.v1.BillingService"]
    assert REALTIME_POLICY.table.services == [
        "fitco.events.v1.EventService",
        "fitco.groups.v1.GroupService",
    ]
    for policy in (MONOLITH_POLICY, COACH_POLICY, BILLING_POLICY, REALTIME_POLICY):
        for rpc in policy.table:
            assert policy.for_method(rpc.path) is table.access(rpc.path) is rpc.access
    assert COACH_POLICY.table.services == [
        "fitco.coach.v1.CoachService",
        "fitco.nutrition.v1.NutritionService",
    ]
    assert MONOLITH_POLICY.for_method("/grpc.health.v1.Health/Check") is Access.PUBLIC
    assert MONOLITH_POLICY.for_method("/fitco.user.v1.UserService/Nope") is Access.UNSPECIFIED
    assert COACH_POLICY.for_method(RECORD_WOD) is Access.UNSPECIFIED  # not the coach's


def _interceptor(policy: AccessPolicy) -> ServerInterceptor:
    public = Ed25519PrivateKey.generate().public_key()
    return ServerInterceptor(policy, TokenVerifier(public, TokenSettings("fitco", "fitco-api")))


def test_unannotated_and_unknown_rpcs_are_refused_fail_closed() -> None:
    contract = _synthetic_contract()
    table = AccessTable.of_file_set(_synthetic_set())
    assert table.unannotated() == ["/fitco.test.v1.TestService/Forgotten"]
    interceptor = _interceptor(AccessPolicy(table))
    with pytest.raises(PermissionDenied):
        interceptor._authenticate({}, table.access("/fitco.test.v1.TestService/Forgotten"))
    # INTERNAL without a service identity, whatever user token comes with it.
    with pytest.raises(PermissionDenied):
        interceptor._authenticate({"authorization": "Bearer x"}, Access.INTERNAL)
    # The edge routes only the annotated, routable one.
    assert [r.path for r in contract.routable] == ["/fitco.test.v1.TestService/Declared"]


def _synthetic_set() -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    f = fds.file.add(name="fitco/test/v1/test.proto", package="fitco.test.v1")
    svc = f.service.add(name="TestService")
    empty = ".google.protobuf.Empty"
    svc.method.add(name="Forgotten", input_type=empty, output_type=empty)
    declared = svc.method.add(name="Declared", input_type=empty, output_type=empty)
    declared.options.Extensions[access_pb2.access] = access_pb2.ACCESS_USER
    internal = svc.method.add(name="Hidden", input_type=empty, output_type=empty)
    internal.options.Extensions[access_pb2.access] = access_pb2.ACCESS_INTERNAL
    return fds


def _synthetic_contract() -> Contract:
    return Contract.of_file_set(_synthetic_set())


# -- the edge ------------------------------------------------------------------------------


def _params(contract: Contract | None = None) -> fitedge.EnvoyParams:
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    params = fitedge.EnvoyParams(
        listen=("127.0.0.1", 8080),
        admin=("127.0.0.1", 9901),
        monolith=fitedge.Endpoints([("127.0.0.1", 50051)]),
        coach=fitedge.Endpoints([("127.0.0.1", 50061)]),
        descriptor=str(DEFAULT_DESCRIPTOR_SET),
        jwks=fitedge.jwks_from_public_key(pem),
    )
    if contract is not None:
        params.contract = contract
    return params


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_edge_routes_exact_paths_of_routable_rpcs_only() -> None:
    params = _params()
    table = AccessTable.of_file_set(_descriptor_set())
    config = fitedge.render(params)
    prefixes = [v for k, v in _walk(config) if k == "prefix" and str(v).startswith("/")]
    assert prefixes == ["/grpc.reflection."]  # only the bounded reflection route (adr/04)
    # (The SSE routes match REST paths, only to choose the transcoder's output: fitedge.sse.)
    matched = [r["match"].get("path") for r in routes(params) if "safe_regex" not in r["match"]]
    routable = table.paths(Access.PUBLIC, Access.USER, Access.ADMIN)
    assert matched == [*routable, "/grpc.health.v1.Health/Check", None]
    assert RECORD_WOD not in matched
    for path in table.paths(Access.INTERNAL):
        assert path not in matched and path not in str(jwt_rules(params))
    wod = next(r for r in routes(params) if r["match"].get("path", "").endswith("/GetWod"))
    assert "weighted_clusters" in wod["route"]


def test_jwt_rules_per_exact_path() -> None:
    params = _params()
    table = AccessTable.of_file_set(_descriptor_set())
    rules = {r["match"]["path"]: "requires" in r for r in jwt_rules(params)}
    assert set(rules) == set(table.paths(Access.PUBLIC, Access.USER, Access.ADMIN))
    for path, required in rules.items():
        assert required == (table.access(path) is not Access.PUBLIC), path


def test_the_transcoder_serves_the_services_of_the_contract() -> None:
    config = fitedge.render(_params())
    services = next(
        v["services"] for k, v in _walk(config) if k == "typed_config" and "services" in v
    )
    assert services == AccessTable.of_file_set(_descriptor_set()).services


def test_a_new_rpc_gets_the_routing_its_proto_declares() -> None:
    params = _params(_synthetic_contract())
    assert [r["match"].get("path") for r in routes(params)][:-2] == [
        "/fitco.test.v1.TestService/Declared"
    ]
    assert jwt_rules(params) == [
        {
            "match": {"path": "/fitco.test.v1.TestService/Declared"},
            "requires": {"provider_name": "fitco"},
        }
    ]


def test_rest_paths_and_their_methods_for_405() -> None:
    table = {p: (routed, hidden) for p, routed, hidden in Contract.load().allowed_methods()}
    assert table["^/v1/profile$"] == (["GET", "PATCH"], [])
    assert table["^/v1/muscle%-groups$"] == (["GET"], [])
    assert table["^/fitness/exercises/[^/]+$"] == (["GET"], [])
    assert table["^/users$"] == (["GET", "POST"], [])
    # RecordWod's binding is known but not routed: 404 there, never 405 with an Allow.
    assert table["^/v1/history/wods$"] == ([], ["POST"])
    assert Binding("GET", "/v1/a-b/{id}/c.d").lua_pattern() == "^/v1/a%-b/[^/]+/c%.d$"
    with pytest.raises(ValueError, match="unsupported"):
        Binding("GET", "/v1/{name=things/*}").lua_pattern()


def test_local_replies_are_plain_for_native_grpc_clients() -> None:
    mappers = local_reply_config()["mappers"]
    plain = {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}}
    grpc_first = [m for m in mappers if m.get("body_format_override") == plain]
    assert grpc_first
    assert mappers[: len(grpc_first)] == grpc_first  # they must win over the JSON ones
    json = mappers[len(grpc_first) :]
    # Every rewrite (403 -> 401, the 429 sentence, generic 5xx texts) applies to both kinds of
    # client.
    assert sum("status_code" in m for m in mappers) == 2
    assert sum("body" in m for m in grpc_first) == sum("body" in m for m in json) == 5
    # Envoy's own 5xx replies never tell JSON clients about upstream resets.
    upstream = [m for m in json if "body_format_override" in m]
    assert len(upstream) == 3
    for m in upstream:
        assert m["body_format_override"]["json_format"]["details"] == "upstream"
        assert "upstream" not in m["body"]["inline_string"]


def test_the_compose_config_is_rendered_from_this_contract() -> None:
    text = (Path(__file__).resolve().parents[2] / "envoy" / "envoy.compose.yaml").read_text()
    assert "prefix: /fitco" not in text
    assert RECORD_WOD not in text
    # A client's copy of a service token is dropped at the edge.
    config = fitedge.render(_params())
    route_config = next(v for k, v in _walk(config) if k == "route_config")
    assert route_config["request_headers_to_remove"] == ["x-fitco-service-token"]
