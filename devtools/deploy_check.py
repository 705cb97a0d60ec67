"""Offline validation of the deployment files (`./fit check` runs it).

- docker-compose.yml against the compose-spec JSON schema (check-jsonschema's vendored copy);
- the Kubernetes overlay built with kustomize and validated with kubernetes-validate (strict,
  against the Kubernetes API schemas it ships);
- the compose-rendered Envoy config is validated by `./fit envoy --check`.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from devtools import secrets, tools
from devtools.paths import ROOT, VENV_BIN

K8S_OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "local"
K8S_VERSION = "1.33"


def build_k8s() -> str:
    kustomize = tools.ensure("kustomize")
    # The local overlay's secretGenerator reads var/secrets; generate() only adds what is
    # missing (a secret added since the last run), it never replaces a file.
    secrets.generate()
    return subprocess.run(  # noqa: S603
        [str(kustomize), "build", "--load-restrictor", "LoadRestrictionsNone", str(K8S_OVERLAY)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _run(*cmd: str) -> bool:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    ok = result.returncode == 0
    if not ok:
        print(result.stdout[-4000:], result.stderr[-4000:])
    return ok


def run() -> int:
    ok = _run(
        str(VENV_BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
    )
    print(f"docker-compose.yml against the compose spec: {'OK' if ok else 'FAILED'}")
    with tempfile.TemporaryDirectory() as tmp:
        manifests = Path(tmp) / "k8s.yaml"
        manifests.write_text(build_k8s())
        k8s_ok = _run(
            str(VENV_BIN / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "-k",
            K8S_VERSION,
            str(manifests),
        )
    print(
        f"kustomize build {K8S_OVERLAY.relative_to(ROOT)} | kubernetes-validate --strict "
        f"(k8s {K8S_VERSION}): {'OK' if k8s_ok else 'FAILED'}"
    )
    return 0 if ok and k8s_ok else 1
