"""Billing in the mesh and at the edge, without starting anything: the programs `./fit run`
supervises and their wiring, billing's database, and the routes, JWT rules, limits and cluster
Envoy gets for BillingService (all derived from the contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fitco.billing.v1 import billing_pb2

import fitedge
from devtools import envoy_files
from devtools.mesh import BILLING_SERVICE, Mesh, MeshConfig, webhook_path
from fitcore.config import Env
from fitcore.keys import ensure_dev_keys
from fitedge.config import checkout_paths, http_filters, jwt_rules, routes

PG = "postgresql+psycopg2://fitco@db.example:5432/fitco"


def _mesh(tmp_path: Path, **overrides: Any) -> Mesh:
    config = MeshConfig.on_free_ports(tmp_path, **overrides)
    ensure_dev_keys(Env({"FITCO_DATA_DIR": str(tmp_path)}))
    return Mesh(config)


def test_billing_gets_a_database_of_its_own(tmp_path: Path) -> None:
    local = MeshConfig(data_dir=tmp_path)
    assert local.billing_db_url() == f"sqlite:///{tmp_path / 'billing.db'}"
    # Next to the monolith's PostgreSQL database, never in it.
    on_pg = MeshConfig(data_dir=tmp_path, database_url=PG)
    assert on_pg.billing_db_url() == "postgresql+psycopg2://fitco@db.example:5432/fitco_billing"
    chosen = MeshConfig(data_dir=tmp_path, database_url=PG, billing_database_url="sqlite://")
    assert chosen.billing_db_url() == "sqlite://"
    # Throw-away meshes keep billing in their throw-away directory whatever the monolith uses.
    throwaway = MeshConfig.on_free_ports(tmp_path, database_url=PG)
    assert throwaway.billing_db_url().startswith(f"sqlite:///{tmp_path}")
    assert len({throwaway.billing_port, throwaway.sandbox_port, throwaway.monolith_port}) == 3


def test_the_mesh_runs_billing_and_the_sandbox_wired_together(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path, billing_metrics_port=9999)
    specs = {s.name: s for s in mesh.specs()}
    c = mesh.config
    # Providers start first (after the event bus, which every producer connects to).
    assert list(specs)[:4] == ["nats", "sandbox", "billing", "monolith"]
    billing, sandbox = specs["billing"], specs["sandbox"]
    assert billing.argv[-3:] == ["-m", "billing", "serve"]
    assert sandbox.argv[-3:] == ["-m", "sandboxpay", "serve"]
    assert billing.env["FITCO_BILLING_ADDR"] == c.billing_target
    assert billing.env["FITCO_BILLING_METRICS_PORT"] == "9999"
    assert billing.env["BILLING_DATABASE_URL"] == c.billing_db_url()
    assert billing.env["FITCO_PROVIDER_URL"] == c.sandbox_url
    assert billing.env["FITCO_MONOLITH_TARGET"] == c.monolith_target
    assert sandbox.env["FITCO_SANDBOX_ADDRESS"] == f"{c.host}:{c.sandbox_port}"
    # Webhooks go through the edge, to the path the contract binds ReceiveWebhook to.
    assert webhook_path() == "/v1/billing/webhooks"
    assert sandbox.env["FITCO_SANDBOX_WEBHOOK_URL"] == f"{c.envoy_url}/v1/billing/webhooks"
    for name in ("monolith", "coach-0"):
        assert specs[name].env["FITCO_BILLING_TARGET"] == c.billing_target
    conf = mesh.supervisor_conf(list(specs.values()))
    assert "[program:billing]" in conf and "[program:sandbox]" in conf


def test_metrics_ports_follow_the_coaches_unless_off(tmp_path: Path) -> None:
    assert MeshConfig(data_dir=tmp_path).billing_metrics == 9464 + 1 + 2
    assert MeshConfig(data_dir=tmp_path, metrics_port=0).billing_metrics == 0
    assert (
        MeshConfig(data_dir=tmp_path, metrics_port=0, billing_metrics_port=7).billing_metrics == 7
    )


def _params() -> fitedge.EnvoyParams:
    return envoy_files.compose_params()


def test_every_billing_rpc_at_the_edge_goes_to_billing() -> None:
    params = _params()
    paths = [rpc.path for rpc in params.contract.of_services(billing_pb2)]
    assert "/fitco.billing.v1.BillingService/GetEntitlements" not in paths  # INTERNAL
    by_path = {r["match"].get("path"): r["route"] for r in routes(params)}
    for path in paths:
        assert by_path[path]["cluster"] == fitedge.BILLING_CLUSTER, path
    # Reads are replayed on failure; nothing that charges, refunds or cancels is.
    read = by_path["/fitco.billing.v1.BillingService/GetSubscription"]
    assert "reset" in read["retry_policy"]["retry_on"]
    for name in ("Checkout", "RefundPayment", "CancelSubscription", "ReceiveWebhook"):
        route = by_path[f"/fitco.billing.v1.BillingService/{name}"]
        assert "retry_policy" not in route and route["timeout"] == "15s", name
    assert checkout_paths(params) == ["/fitco.billing.v1.BillingService/Checkout"]


def test_webhooks_and_plans_need_no_token_the_rest_does() -> None:
    rules = {r["match"]["path"]: "requires" in r for r in jwt_rules(_params())}
    svc = "/fitco.billing.v1.BillingService"
    assert rules[f"{svc}/ReceiveWebhook"] is False
    assert rules[f"{svc}/ListPlans"] is False
    for name in ("Checkout", "GetSubscription", "CancelSubscription", "ListSubscriptions"):
        assert rules[f"{svc}/{name}"] is True


def test_checkout_has_its_own_small_bucket_per_user() -> None:
    filters = {f["name"]: f["typed_config"] for f in http_filters(_params())}
    checkout = filters["envoy.filters.http.local_ratelimit.checkout_per_user"]
    assert checkout["descriptors"][0]["token_bucket"]["max_tokens"] == 10
    assert "Checkout" in str(checkout["rate_limits"])
    names = list(filters)
    assert names.index("envoy.filters.http.jwt_authn") < names.index(
        "envoy.filters.http.local_ratelimit.checkout_per_user"
    )
    none = fitedge.RateLimits.from_env({"FITCO_RATE_LIMITS": "none"})
    params = _params()
    params.limits = none
    assert not any("checkout" in f["name"] for f in http_filters(params))


def test_billing_cluster_is_health_checked_on_its_service() -> None:
    clusters = {c["name"]: c for c in fitedge.render(_params())["static_resources"]["clusters"]}
    billing = clusters[fitedge.BILLING_CLUSTER]
    assert billing["health_checks"][0]["grpc_health_check"]["service_name"] == BILLING_SERVICE
    assert billing["type"] == "STRICT_DNS"  # compose / Kubernetes: every pod
    address = billing["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"] == {"address": "billing", "port_value": 50071}
