"""The committed compose Envoy config, and `envoy --mode validate` on both renderings."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import fitedge
from devtools import certs
from devtools.paths import DESCRIPTOR_SET, ROOT, VENV_BIN

COMPOSE_CONFIG = ROOT / "envoy" / "envoy.compose.yaml"
COMPOSE_DESCRIPTOR = "/etc/envoy/fitco.binpb"
COMPOSE_JWKS = "/run/secrets/jwks.json"


COMPOSE_RUNTIME = "/var/lib/envoy/runtime"
# The edge's certificate: compose file secrets and the Kubernetes Secret `fitco-tls` are both
# mounted here (`./fit secrets` makes a development one).
COMPOSE_TLS_DIR = "/run/secrets"
HTTPS_PORT = 8443
HTTP_PORT = 8080  # redirects to HTTPS


def compose_params(
    descriptor: str = COMPOSE_DESCRIPTOR,
    jwks: str = COMPOSE_JWKS,
    runtime: str = COMPOSE_RUNTIME,
    tls_dir: str = COMPOSE_TLS_DIR,
) -> fitedge.EnvoyParams:
    """Envoy in docker compose and Kubernetes: HTTPS (JSON and gRPC) on 8443, 8080 redirects;
    services by DNS name (every coach replica is an A record)."""
    anywhere = "0.0.0.0"  # noqa: S104 - the edge listens on the container's interface
    return fitedge.EnvoyParams(
        listen=(anywhere, HTTPS_PORT),
        tls=fitedge.Tls(
            f"{tls_dir}/tls.crt",
            f"{tls_dir}/tls.key",
            redirect=(anywhere, HTTP_PORT),
            https_port=HTTPS_PORT,
        ),
        admin=("127.0.0.1", 9901),
        monolith=fitedge.Endpoints([("monolith", 50051)], dns=True),
        coach=fitedge.Endpoints([("coach", 50061)], dns=True),
        billing=fitedge.Endpoints([("billing", 50071)], dns=True),
        realtime=fitedge.Endpoints([("realtime", 50081)], dns=True),
        descriptor=descriptor,
        jwks_file=jwks,
        runtime_root=f"{runtime}/current",
        access_log="/dev/stdout",
    )


def local_params(work: Path) -> fitedge.EnvoyParams:
    """A local rendering, as `./fit run` makes it (throw-away key, loopback ports)."""
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return fitedge.EnvoyParams(
        listen=("127.0.0.1", 8080),
        admin=("127.0.0.1", 9901),
        monolith=fitedge.Endpoints([("127.0.0.1", 50051)]),
        coach=fitedge.Endpoints([("127.0.0.1", 50061), ("127.0.0.1", 50062)]),
        billing=fitedge.Endpoints([("127.0.0.1", 50071)]),
        realtime=fitedge.Endpoints([("127.0.0.1", 50081), ("127.0.0.1", 50082)]),
        descriptor=str(DESCRIPTOR_SET),
        jwks=fitedge.jwks_from_public_key(pem),
        runtime_root=str(work / "runtime" / "current"),
        access_log=str(work / "access.log"),
    )


def validate(config: Path) -> bool:
    result = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        check=False,
    )
    ok = result.returncode == 0
    print(f"envoy --mode validate {config.name}: {'OK' if ok else 'FAILED'}")
    if not ok:
        print(result.stdout[-3000:], result.stderr[-3000:])
    return ok


def run(check: bool) -> int:
    rendered = fitedge.dump(fitedge.render(compose_params()))
    if check:
        if not COMPOSE_CONFIG.exists() or COMPOSE_CONFIG.read_text() != rendered:
            print(f"{COMPOSE_CONFIG.relative_to(ROOT)} is out of date (run ./fit envoy)")
            return 1
    else:
        COMPOSE_CONFIG.write_text(rendered)
        print(f"wrote {COMPOSE_CONFIG.relative_to(ROOT)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # The compose config, with only its mounted files pointed at local copies.
        fitedge.write_runtime(work / "runtime", fitedge.Split(100, 0))
        jwks = work / "jwks.json"
        jwks.write_text(json.dumps(local_params(work).jwks))
        compose = work / "envoy.compose.yaml"
        runtime = str(work / "runtime")
        tls = certs.generate(work / "tls")
        params = compose_params(str(DESCRIPTOR_SET), str(jwks), runtime, str(tls.cert.parent))
        compose.write_text(fitedge.dump(fitedge.render(params)))
        local = work / "envoy.local.yaml"
        local.write_text(fitedge.dump(fitedge.render(local_params(work))))
        ok = validate(compose) and validate(local)
    return 0 if ok else 1
