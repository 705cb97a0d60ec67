"""Deployment files: what a reviewer would check by hand, checked on every run."""

from __future__ import annotations

import json
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
    assert {"build", "runtime", "monolith", "coach"} <= set(stages)
    runtime = stages["runtime"]
    assert any(i["instruction"] == "USER" and i["value"].split(":")[0] == "10001" for i in runtime)
    assert any("COPY --from=build" in i["content"] for i in runtime)
    for target in ("monolith", "coach"):
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
    assert [n for n, svc in services.items() if "ports" in svc] == ["envoy"]
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
