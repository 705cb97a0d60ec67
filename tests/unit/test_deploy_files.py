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
    assert services["envoy"]["ports"] == ["8080:8080"]
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
