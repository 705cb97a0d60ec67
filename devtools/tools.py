"""External tools, built from source through the Go module proxy at pinned versions into
.tools/bin (`./fit tools [name ...]`). Commands that need one say how to get it when missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from devtools.paths import ROOT

BIN = ROOT / ".tools" / "bin"

# name -> Go package@version
TOOLS: dict[str, str] = {
    "protoc-gen-openapiv2": (
        "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@v2.32.0"
    ),
    "kustomize": "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1",
    "grpcurl": "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3",
    "k6": "go.k6.io/k6@v1.8.1",
    "ghz": "github.com/bojand/ghz/cmd/ghz@v0.120.0",
}


class MissingTool(RuntimeError):
    pass


def path(name: str) -> Path:
    return BIN / name


def require(name: str) -> Path:
    tool = path(name)
    if not tool.exists():
        raise MissingTool(f"{name} is not installed: run ./fit tools {name} (builds {TOOLS[name]})")
    return tool


def ensure(name: str) -> Path:
    """The tool, built first if it is missing (needs Go)."""
    if not path(name).exists() and install([name]) != 0:
        raise MissingTool(f"could not build {name} ({TOOLS[name]})")
    return require(name)


def install(names: list[str]) -> int:
    go = shutil.which("go")
    if go is None:
        print("tools: Go is required (https://go.dev/dl or the distribution's golang package)")
        return 1
    BIN.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names or list(TOOLS):
        if name not in TOOLS:
            print(f"tools: unknown tool {name}; known: {', '.join(TOOLS)}")
            return 2
        stamp = BIN / f".{name}.version"
        if path(name).exists() and stamp.exists() and stamp.read_text() == TOOLS[name]:
            print(f"tools: {name} up to date ({TOOLS[name]})")
            continue
        print(f"tools: go install {TOOLS[name]}", flush=True)
        env = dict(os.environ, GOBIN=str(BIN), CGO_ENABLED="0", GOFLAGS="-trimpath")
        result = subprocess.run([go, "install", TOOLS[name]], env=env, check=False)  # noqa: S603
        if result.returncode == 0:
            stamp.write_text(TOOLS[name])
        failed |= result.returncode != 0
    return int(failed)
