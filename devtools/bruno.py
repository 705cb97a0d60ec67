"""`./fit bruno`: run the Bruno collection (bruno/fitco) against a fresh local mesh.

Starts its own mesh on free loopback ports with a throw-away data directory (so the admin
bootstrap in the collection runs on an empty database), installs the pinned Bruno CLI from
npm (bruno/package-lock.json), runs every request with its assertions, and stops the mesh.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from devtools.mesh import Mesh, MeshConfig
from devtools.paths import ROOT

BRUNO = ROOT / "bruno"
# The sandbox payment provider of `./fit run` (for --base-url runs against it).
DEFAULT_SANDBOX_URL = MeshConfig().sandbox_url


def ensure_cli() -> Path:
    bru = BRUNO / "node_modules" / ".bin" / "bru"
    if not bru.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm (Node.js 18+) is needed for the Bruno CLI")
        subprocess.run(  # noqa: S603
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BRUNO, check=True
        )
    return bru


def run(base_url: str | None = None, bootstrap_key: str | None = None) -> int:
    bru = ensure_cli()
    if base_url:
        return _run_collection(bru, base_url, bootstrap_key or "", DEFAULT_SANDBOX_URL)
    with tempfile.TemporaryDirectory(prefix="fitco-bruno-") as tmp:
        data = Path(tmp)
        config = MeshConfig.on_free_ports(data)
        mesh = Mesh(config)
        try:
            mesh.start()
            key = (data / "keys" / "bootstrap.key").read_text().strip()
            return _run_collection(bru, config.envoy_url, key, config.sandbox_url)
        finally:
            mesh.stop()


def _run_collection(bru: Path, base_url: str, bootstrap_key: str, sandbox_url: str) -> int:
    cmd = [
        str(bru),
        "run",
        "-r",
        "--env",
        "local",
        "--env-var",
        f"baseUrl={base_url}",
        "--env-var",
        f"bootstrapKey={bootstrap_key}",
        # The premium requests tokenise test cards at the sandbox payment provider.
        "--env-var",
        f"sandboxUrl={sandbox_url}",
        "--bail",
    ]
    print(f"bruno: running the collection against {base_url}", flush=True)
    return subprocess.run(cmd, cwd=BRUNO / "fitco", check=False).returncode  # noqa: S603
