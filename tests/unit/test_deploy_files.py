"""Deployment files: what a reviewer would check by hand, checked on every run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

from devtools import envoy_files

ROOT = Path(__file__).resolve().parents[2]


def _stages() -> dict[str, list[dict[str, Any]]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    stages: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            current = instr["value"].split()[-1]
            stages[current] = []
        stages.setdefault(current, []).append(instr)
    return stages


def test_images_are_multi_stage_non_root_exec_form_with_grpc_healthchecks() -> None:
    stages = _stages()
    assert {"build", "runtime", "monolith", "coach", "billing", "sandbox"} <= set(stages)
    runtime = stages["runtime"]
    assert any(i["instruction"] == "USER" and i["value"].split(":")[0] == "10001" for i in runtime)
    assert any("COPY --from=build" in i["content"] for i in runtime)
    for target in ("monolith", "coach", "billing", "sandbox"):
        instr = {i["instruction"]: i["value"] for i in stages[target]}
        assert json.loads(instr["ENTRYPOINT"])[:2] == ["python", "-m"]  # exec form
        assert "fitcore.healthcheck" in instr["HEALTHCHECK"]
        assert "USER" not in instr  # inherits the unprivileged user of `runtime`
    text = (ROOT / "Dockerfile").read_text()
    for secret_word in ("PRIVATE KEY", "BOOTSTRAP_KEY=", "PASSWORD="):
        assert secret_word not in text


def test_compose_wiring() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "ports" not in services["coach"]  # scalable: no fixed host port
    assert services["migrate"]["command"] == ["migrate"]
    deps = services["monolith"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD"
    assert services["envoy"]["image"].startswith("envoyproxy/envoy:")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["envoy"]["volumes"]}
    assert mounts[envoy_files.COMPOSE_DESCRIPTOR] == "./gen/descriptors/fitco.binpb"
    assert mounts["/etc/envoy/envoy.yaml"] == "./envoy/envoy.compose.yaml"
    assert envoy_files.COMPOSE_RUNTIME in mounts
    # Only the edge is published: HTTPS and the HTTP port that redirects to it. Every other
    # port (gRPC, Prometheus metrics, PostgreSQL) stays on the compose network.
    assert services["envoy"]["ports"] == ["8443:8443", "8080:8080"]
    # ... and, on the host's loopback only, the sandbox payment provider (clients tokenise
    # test cards there, as they would at a real provider's).
    assert services["sandbox"]["ports"] == ["127.0.0.1:8090:8090"]
    assert [n for n, svc in services.items() if "ports" in svc] == ["sandbox", "envoy"]
    tls = {s["target"]: s["source"] for s in services["envoy"]["secrets"] if isinstance(s, dict)}
    assert compose["secrets"][tls["tls.crt"]]["file"] == "./var/secrets/tls.crt"
    assert compose["secrets"][tls["tls.key"]]["file"] == "./var/secrets/tls.key"
    for name, svc in services.items():
        env = svc.get("environment", {})
        assert not any("PRIVATE_KEY=" in str(v) for v in env.values()), name
    secret_files = {s["file"] for s in compose["secrets"].values()}
    assert all(f.startswith("./var/secrets/") for f in secret_files)  # generated, ignored by git


def test_kubernetes_probes_and_headless_coach() -> None:
    base = ROOT / "deploy" / "k8s" / "base"
    docs = [
        d
        for f in base.glob("*.yaml")
        if f.name != "kustomization.yaml"
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    by_kind = {(d["kind"], d["metadata"].get("name")): d for d in docs}
    coach_svc = by_kind[("Service", "coach")]
    assert coach_svc["spec"]["clusterIP"] == "None"
    for name, port in (("monolith", 50051), ("coach", 50061)):
        container = by_kind[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert (
        by_kind[("HorizontalPodAutoscaler", "coach")]["spec"]["scaleTargetRef"]["name"] == "coach"
    )


def test_service_identity_secrets_by_reference() -> None:
    """The coach holds its own identity key; the monolith holds only its public key, in the
    directory of services it trusts for INTERNAL RPCs (adr/05)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    monolith, coach = services["monolith"], services["coach"]
    keys_dir = monolith["environment"]["FITCO_SERVICE_KEYS_DIR"]
    mounted = {s["target"]: s["source"] for s in monolith["secrets"] if isinstance(s, dict)}
    assert mounted[f"{keys_dir}/coach.pem"] == "service_coach_public_key"
    assert "service_coach_private_key" not in str(monolith["secrets"])
    assert "service_coach_private_key" in coach["secrets"]
    assert coach["environment"]["FITCO_SERVICE_PRIVATE_KEY_FILE"] == (
        "/run/secrets/service_coach_private_key"
    )
    base = ROOT / "deploy" / "k8s" / "base"
    pods = {
        name: next(
            d
            for d in yaml.safe_load_all((base / f"{name}.yaml").read_text())
            if d["kind"] == "Deployment"
        )["spec"]["template"]["spec"]
        for name in ("monolith", "coach")
    }

    def secret_mounts(pod: dict[str, Any]) -> dict[str, str]:
        volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}
        mounts = pod["containers"][0]["volumeMounts"]
        return {m["mountPath"]: volumes[m["name"]] for m in mounts if volumes[m["name"]]}

    def env(pod: dict[str, Any]) -> dict[str, str]:
        return {e["name"]: e.get("value", "") for e in pod["containers"][0]["env"]}

    monolith_env = env(pods["monolith"])
    assert secret_mounts(pods["monolith"])[monolith_env["FITCO_SERVICE_KEYS_DIR"]] == (
        "fitco-service-keys"
    )
    coach_key = env(pods["coach"])["FITCO_SERVICE_PRIVATE_KEY_FILE"]
    assert secret_mounts(pods["coach"])[str(Path(coach_key).parent)] == "fitco-coach-identity"
    assert "fitco-coach-identity" not in secret_mounts(pods["monolith"]).values()


def test_edge_config_serves_tls_and_only_redirects_plain_http() -> None:
    config = yaml.safe_load((ROOT / "envoy" / "envoy.compose.yaml").read_text())
    listeners = {lst["name"]: lst for lst in config["static_resources"]["listeners"]}
    edge = listeners["edge"]
    assert edge["address"]["socket_address"]["port_value"] == envoy_files.HTTPS_PORT
    tls = edge["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2", "http/1.1"]
    assert tls["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_2"
    assert tls["tls_certificates"][0]["certificate_chain"]["filename"] == "/run/secrets/tls.crt"
    plain = listeners["edge_http_redirect"]
    hcm = plain["filter_chains"][0]["filters"][0]["typed_config"]
    routes = [r for vh in hcm["route_config"]["virtual_hosts"] for r in vh["routes"]]
    assert all("redirect" in r and r["redirect"]["https_redirect"] for r in routes)
    k8s = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "base" / "envoy.yaml").read_text()))
    pod = next(d for d in k8s if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    sources = next(v for v in pod["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    assert {src["secret"]["name"] for src in sources} == {"fitco-jwt", "fitco-tls"}


# Variables that carry a secret: only ever their *_FILE variant (a mounted secret) in files.
_SECRET_VARS = re.compile(r"(PASSWORD|SECRET|API_KEY|PRIVATE_KEY|BOOTSTRAP_KEY)$")


def _k8s_docs(*dirs: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (d["kind"], d["metadata"]["name"]): d
        for base in dirs
        for f in base.glob("*.yaml")
        if f.name != "kustomization.yaml"
        for d in yaml.safe_load_all(f.read_text())
        if d
    }


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = doc["spec"]["template"]["spec"]
    return pod


def test_billing_in_compose_has_its_own_database_migration_and_provider() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    billing, sandbox = services["billing"], services["sandbox"]
    # Its own database and role on the same PostgreSQL server, made by the init script.
    url = billing["environment"]["BILLING_DATABASE_URL"]
    assert url.endswith("@postgres:5432/billing")
    assert url != services["monolith"]["environment"]["DATABASE_URL"]
    init = "./deploy/postgres/init-billing.sh:/docker-entrypoint-initdb.d/10-billing.sh:ro"
    assert init in services["postgres"]["volumes"]
    assert (ROOT / "deploy" / "postgres" / "init-billing.sh").exists()
    assert "billing_db_password" in services["postgres"]["secrets"]
    # A one-shot migration of billing's schema before billing starts.
    assert services["migrate-billing"]["command"] == ["migrate"]
    assert services["migrate-billing"]["build"]["target"] == "billing"
    assert billing["depends_on"]["migrate-billing"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["envoy"]["depends_on"]["billing"]["condition"] == "service_healthy"
    # Billing and the sandbox share the webhook secret and the API key, as mounted files.
    for svc in (billing, sandbox):
        env = svc["environment"]
        for var, secret in (
            ("FITCO_WEBHOOK_SECRET_FILE", "webhook_secret"),
            ("FITCO_PROVIDER_API_KEY_FILE", "provider_api_key"),
        ):
            assert env[var] == f"/run/secrets/{secret}"
            assert secret in svc["secrets"]
    assert sandbox["environment"]["FITCO_SANDBOX_WEBHOOK_URL"].endswith("/v1/billing/webhooks")
    assert billing["environment"]["FITCO_PROVIDER_URL"] == "http://sandbox:8090"
    # Entitlements: the coach and the monolith ask billing; billing trusts both identities.
    for name in ("coach", "monolith"):
        assert services[name]["environment"]["FITCO_BILLING_TARGET"] == "billing:50071"
    keys_dir = billing["environment"]["FITCO_SERVICE_KEYS_DIR"]
    mounted = {s["target"]: s["source"] for s in billing["secrets"] if isinstance(s, dict)}
    assert mounted[f"{keys_dir}/coach.pem"] == "service_coach_public_key"
    assert mounted[f"{keys_dir}/monolith.pem"] == "service_monolith_public_key"
    monolith = services["monolith"]
    assert monolith["environment"]["FITCO_SERVICE_PRIVATE_KEY_FILE"] == (
        "/run/secrets/service_monolith_private_key"
    )
    assert "service_monolith_private_key" in monolith["secrets"]
    # Billing asks the monolith about revoked tokens with its own identity, which the
    # monolith trusts; it holds no other service's private key.
    assert billing["environment"]["FITCO_SERVICE_PRIVATE_KEY_FILE"] == (
        "/run/secrets/service_billing_private_key"
    )
    assert [s for s in billing["secrets"] if "private" in str(s)] == ["service_billing_private_key"]
    trusted = {s["target"]: s["source"] for s in monolith["secrets"] if isinstance(s, dict)}
    monolith_keys = monolith["environment"]["FITCO_SERVICE_KEYS_DIR"]
    assert trusted[f"{monolith_keys}/billing.pem"] == "service_billing_public_key"


def test_no_secret_values_in_deployment_files() -> None:
    """Secrets travel by reference (a mounted file, a Secret) only: no variable that holds a
    secret has a value in compose or Kubernetes, and every compose secret is a generated file."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, svc in compose["services"].items():
        for var in svc.get("environment", {}):
            assert not _SECRET_VARS.search(var), f"{name}: {var} must be a *_FILE"
    assert all(s["file"].startswith("./var/secrets/") for s in compose["secrets"].values())
    docs = _k8s_docs(
        ROOT / "deploy" / "k8s" / "base", ROOT / "deploy" / "k8s" / "overlays" / "local"
    )
    for (kind, name), doc in docs.items():
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in _pod(doc)["containers"]:
            for e in container.get("env", []):
                assert not _SECRET_VARS.search(e["name"]), f"{name}: {e['name']} must be a file"
                if "value" not in e:
                    assert "secretKeyRef" in e["valueFrom"], (name, e)
    assert not [k for k in docs if k[0] == "Secret"]  # Secrets come from the generator only
    text = (ROOT / "deploy" / "postgres" / "init-billing.sh").read_text()
    assert "PASSWORD '" not in text.upper()  # the password is read from the mounted file


def test_kubernetes_billing_and_sandbox() -> None:
    base = ROOT / "deploy" / "k8s" / "base"
    local = ROOT / "deploy" / "k8s" / "overlays" / "local"
    docs = _k8s_docs(base, local)
    billing = _pod(docs[("Deployment", "billing")])
    container = billing["containers"][0]
    assert container["readinessProbe"]["grpc"] == {
        "port": 50071,
        "service": "fitco.billing.v1.BillingService",
    }
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert billing["securityContext"]["runAsNonRoot"] is True
    assert docs[("Service", "billing")]["spec"]["clusterIP"] == "None"  # Envoy: STRICT_DNS
    env = {e["name"]: e for e in container["env"]}
    assert env["BILLING_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "fitco-billing-database"
    )
    job = _pod(docs[("Job", "fitco-billing-migrate")])["containers"][0]
    assert job["image"] == "fitco/billing" and job["args"] == ["migrate"]
    # The sandbox is a development stand-in: in the local overlay only, never in the base.
    assert ("Deployment", "sandbox") not in _k8s_docs(base)
    sandbox = _pod(docs[("Deployment", "sandbox")])
    assert sandbox["securityContext"]["runAsNonRoot"] is True
    probe = sandbox["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health"
    overlay = yaml.safe_load((local / "kustomization.yaml").read_text())
    generated = {g["name"] for g in overlay["secretGenerator"]}
    assert {"fitco-billing-database", "fitco-billing-provider", "fitco-billing-callers"} <= (
        generated
    )
    callers = next(g for g in overlay["secretGenerator"] if g["name"] == "fitco-billing-callers")
    assert sorted(f.split("=")[0] for f in callers["files"]) == ["coach.pem", "monolith.pem"]
    monolith = _pod(docs[("Deployment", "monolith")])
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in monolith["volumes"]}
    assert "fitco-monolith-identity" in volumes.values()
    assert "fitco-billing-provider" not in volumes.values()
