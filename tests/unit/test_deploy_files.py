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
    assert {"build", "runtime", "monolith", "coach", "billing", "realtime", "sandbox"} <= set(
        stages
    )
    runtime = stages["runtime"]
    assert any(i["instruction"] == "USER" and i["value"].split(":")[0] == "10001" for i in runtime)
    assert any("COPY --from=build" in i["content"] for i in runtime)
    for target in ("monolith", "coach", "billing", "realtime", "sandbox"):
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


INIT_SCRIPT = ROOT / "deploy" / "postgres" / "init-service-databases.sh"
INIT_MOUNT = (
    "./deploy/postgres/init-service-databases.sh:/docker-entrypoint-initdb.d/10-services.sh:ro"
)


def test_billing_in_compose_has_its_own_database_migration_and_provider() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    billing, sandbox = services["billing"], services["sandbox"]
    # Its own database and role on the same PostgreSQL server, made by the init script.
    url = billing["environment"]["BILLING_DATABASE_URL"]
    assert url.endswith("@postgres:5432/billing")
    assert url != services["monolith"]["environment"]["DATABASE_URL"]
    assert INIT_MOUNT in services["postgres"]["volumes"]
    assert INIT_SCRIPT.exists()
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
    text = INIT_SCRIPT.read_text()
    assert "PASSWORD '" not in text.upper()  # the passwords are read from the mounted files


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


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def _dockerfile_env(target: str) -> dict[str, str]:
    """The ENV of a Dockerfile target (`ENV A=1 B=2` is one instruction)."""
    out: dict[str, str] = {}
    for instr in _stages()[target]:
        if instr["instruction"] == "ENV":
            out |= dict(pair.split("=", 1) for pair in instr["value"].split())
    return out


def test_nats_in_compose_keeps_jetstream_on_a_volume_and_stays_private() -> None:
    compose = _compose()
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:2.11")
    command = nats["command"]
    assert "-js" in command
    store = command[command.index("-sd") + 1]
    volumes = {v.split(":")[1]: v.split(":")[0] for v in nats["volumes"]}
    assert volumes[store] in compose["volumes"]  # a named volume: the log survives restarts
    assert "ports" not in nats
    assert nats["healthcheck"]["test"][0] == "CMD"
    assert "/healthz" in " ".join(nats["healthcheck"]["test"])


def test_producers_and_realtime_share_one_bus_in_compose() -> None:
    services = _compose()["services"]
    urls = {
        name: services[name]["environment"]["FITCO_NATS_URL"]
        for name in ("monolith", "billing", "realtime")
    }
    assert set(urls.values()) == {"nats://nats:4222"}, urls
    assert "4222" in services["nats"]["expose"]
    realtime = services["realtime"]
    assert realtime["depends_on"]["nats"]["condition"] == "service_healthy"
    for producer in ("monolith", "billing"):
        assert "nats" in services[producer]["depends_on"], producer


def test_realtime_in_compose_two_replicas_own_database_identity_and_the_edge() -> None:
    compose = _compose()
    services = compose["services"]
    realtime = services["realtime"]
    env = realtime["environment"]
    assert realtime["build"]["target"] == "realtime"
    assert realtime["deploy"]["replicas"] == 2
    assert "ports" not in realtime  # behind the edge only
    # Its own database and role, made by the same init script as billing's.
    url = env["REALTIME_DATABASE_URL"]
    assert url.endswith("@postgres:5432/realtime")
    assert env["FITCO_REALTIME_DATABASE_PASSWORD_FILE"] == "/run/secrets/realtime_db_password"
    assert "realtime_db_password" in services["postgres"]["secrets"]
    assert "realtime" in INIT_SCRIPT.read_text()
    migrate = services["migrate-realtime"]
    assert (migrate["build"]["target"], migrate["command"]) == ("realtime", ["migrate"])
    assert realtime["depends_on"]["migrate-realtime"]["condition"] == (
        "service_completed_successfully"
    )
    # CheckToken with its own identity, which the monolith trusts.
    assert env["FITCO_SERVICE_PRIVATE_KEY_FILE"] == "/run/secrets/service_realtime_private_key"
    assert [s for s in realtime["secrets"] if "private" in str(s)] == [
        "service_realtime_private_key"
    ]
    monolith = services["monolith"]
    trusted = {s["target"]: s["source"] for s in monolith["secrets"] if isinstance(s, dict)}
    keys_dir = monolith["environment"]["FITCO_SERVICE_KEYS_DIR"]
    assert trusted[f"{keys_dir}/realtime.pem"] == "service_realtime_public_key"
    assert env["FITCO_MONOLITH_TARGET"] == "monolith:50051"
    assert env["FITCO_COACH_TARGET"] == "coach:50061"
    assert services["envoy"]["depends_on"]["realtime"]["condition"] == "service_healthy"
    for secret in ("realtime_db_password", "service_realtime_private_key"):
        assert compose["secrets"][secret]["file"].startswith("./var/secrets/")


def test_realtime_port_is_one_fact_across_image_compose_kubernetes_and_edge() -> None:
    """The image listens where compose exposes it, Kubernetes probes it and the edge's
    cluster sends streams (the compose/Kubernetes rendering of the Envoy config)."""
    image_env = _dockerfile_env("realtime")
    port = int(image_env["REALTIME_ADDR"].rsplit(":", 1)[1])
    assert image_env["REALTIME_METRICS_HOST"] == "0.0.0.0"  # scraped from the network
    assert str(port) in _compose()["services"]["realtime"]["expose"]
    docs = _k8s_docs(ROOT / "deploy" / "k8s" / "base")
    container = _pod(docs[("Deployment", "realtime")])["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["grpc"]["port"] == port
    config = yaml.safe_load((ROOT / "envoy" / "envoy.compose.yaml").read_text())
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for name in ("realtime", "realtime_unary"):
        endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        assert endpoint["endpoint"]["address"]["socket_address"] == {
            "address": "realtime",
            "port_value": port,
        }


def test_kubernetes_realtime_nats_and_their_secrets() -> None:
    base = ROOT / "deploy" / "k8s" / "base"
    local = ROOT / "deploy" / "k8s" / "overlays" / "local"
    docs = _k8s_docs(base, local)
    realtime = _pod(docs[("Deployment", "realtime")])
    container = realtime["containers"][0]
    assert docs[("Deployment", "realtime")]["spec"]["replicas"] == 2
    assert container["readinessProbe"]["grpc"]["service"] == "fitco.events.v1.EventService"
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert realtime["securityContext"]["runAsNonRoot"] is True
    assert docs[("Service", "realtime")]["spec"]["clusterIP"] == "None"  # Envoy: STRICT_DNS
    hpa = docs[("HorizontalPodAutoscaler", "realtime")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "realtime" and hpa["minReplicas"] >= 2
    job = _pod(docs[("Job", "fitco-realtime-migrate")])["containers"][0]
    assert job["image"] == "fitco/realtime" and job["args"] == ["migrate"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REALTIME_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "fitco-realtime-database"
    )
    # NATS: a StatefulSet keeping JetStream's store on its claim, reached by its Service.
    nats = docs[("StatefulSet", "nats")]
    nats_container = _pod(nats)["containers"][0]
    args = nats_container["args"]
    assert "-js" in args
    mounts = {m["name"]: m["mountPath"] for m in nats_container["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in nats["spec"]["volumeClaimTemplates"]]
    assert args[args.index("-sd") + 1] == mounts[claims[0]]
    assert nats_container["securityContext"]["readOnlyRootFilesystem"] is True
    client_port = next(p["port"] for p in docs[("Service", "nats")]["spec"]["ports"])
    for name in ("monolith", "billing", "realtime"):
        pod_env = {
            e["name"]: e.get("value")
            for e in _pod(docs[("Deployment", name)])["containers"][0]["env"]
        }
        assert pod_env["FITCO_NATS_URL"] == f"nats://nats:{client_port}", name
    # Secrets: the realtime service's database and identity; the monolith trusts it.
    overlay = yaml.safe_load((local / "kustomization.yaml").read_text())
    generated = {g["name"]: g for g in overlay["secretGenerator"]}
    assert {"fitco-realtime-database", "fitco-realtime-identity"} <= set(generated)
    trusted = [f.split("=")[0] for f in generated["fitco-service-keys"]["files"]]
    assert "realtime.pem" in trusted
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in realtime["volumes"]}
    assert "fitco-realtime-identity" in volumes.values()
    assert "fitco-service-keys" not in volumes.values()  # it trusts no caller
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert {"nats.yaml", "realtime.yaml"} <= set(kustomization["resources"])
