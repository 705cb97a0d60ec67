"""Regenerate gen/ from proto/: Python stubs, mypy stubs, Envoy's descriptor set and the OpenAPI.

Generated code is never edited by hand; `./fit gen --check` (run in CI) fails when gen/ is not
what proto/ produces.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools import tools
from devtools.openapi import complete as complete_openapi
from devtools.paths import (
    GEN_DESCRIPTORS,
    GEN_OPENAPI,
    GEN_PYTHON,
    PROTO,
    ROOT,
    THIRD_PARTY,
    VENV_BIN,
)

EXTRA_DESCRIPTORS = ["google/rpc/status.proto", "google/rpc/error_details.proto"]
# Vendored from grpc-gateway at the plugin's pinned version (devtools/tools.py): the field
# options the OpenAPI and fitcore.validation read. No PyPI package ships them for our protobuf,
# so their Python stubs are generated with ours (package `protoc_gen_openapiv2`).
OPTION_PROTOS = [
    "protoc-gen-openapiv2/options/annotations.proto",
    "protoc-gen-openapiv2/options/openapiv2.proto",
]
PYTHON_PACKAGES = ["fitco", "protoc_gen_openapiv2"]


def proto_files() -> list[Path]:
    return sorted(PROTO.rglob("*.proto"))


def generate(out_root: Path) -> None:
    """Generate everything into out_root (laid out like gen/)."""
    py_out = out_root / "python"
    desc_out = out_root / "descriptors"
    py_out.mkdir(parents=True, exist_ok=True)
    desc_out.mkdir(parents=True, exist_ok=True)
    files = [str(p.relative_to(PROTO)) for p in proto_files()]
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    protoc = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"-I{THIRD_PARTY}"]
    python = [
        f"--python_out={py_out}",
        f"--grpc_python_out={py_out}",
        f"--mypy_out={py_out}",
        f"--mypy_grpc_out={py_out}",
    ]
    subprocess.run(  # noqa: S603
        [*protoc, *python, *files, *OPTION_PROTOS], check=True, cwd=PROTO, env=env
    )
    # Envoy's descriptor set also carries google.rpc error details, so the transcoder can print
    # the `details` of error statuses (field violations) as JSON.
    descriptors = [
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={desc_out / 'fitco.binpb'}",
    ]
    subprocess.run(  # noqa: S603
        [*protoc, *descriptors, *files, *EXTRA_DESCRIPTORS], check=True, cwd=PROTO, env=env
    )
    # OpenAPI (Swagger 2.0) from the HTTP bindings: /v1 and the legacy paths, snake_case.
    openapi_out = out_root / "openapi"
    openapi_out.mkdir(parents=True, exist_ok=True)
    plugin = tools.ensure("protoc-gen-openapiv2")
    openapi = [
        f"--plugin=protoc-gen-openapiv2={plugin}",
        f"--openapiv2_out={openapi_out}",
        "--openapiv2_opt=allow_merge=true,merge_file_name=fitco,output_format=yaml,"
        "json_names_for_fields=false,disable_service_tags=false,enums_as_ints=false",
        # Go import paths are required by the plugin but meaningless for us.
        *(f"--openapiv2_opt=M{f}={Path(f).parent}" for f in files),
    ]
    subprocess.run([*protoc, *openapi, *files], check=True, cwd=PROTO, env=env)  # noqa: S603
    # What the plugin leaves out (parameter limits, zero bounds, HttpBody shapes), from the
    # same field options.
    complete_openapi(openapi_out / "fitco.swagger.yaml", desc_out / "fitco.binpb")
    # Packages mirror the proto tree, so generated imports (`from fitco.catalog.v1 import ...`)
    # work as they are. Regular packages (with __init__.py) keep mypy and tools simple.
    for package in PYTHON_PACKAGES:
        root = py_out / package
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
        (root / "py.typed").touch()


def _diff(a: Path, b: Path) -> list[str]:
    problems: list[str] = []
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    problems += [f"only in proto output: {a / n}" for n in cmp.left_only]
    problems += [f"stale in gen/: {b / n}" for n in cmp.right_only]
    for name in cmp.common_files:
        if (a / name).read_bytes() != (b / name).read_bytes():
            problems.append(f"differs: {b / name}")
    for sub in cmp.common_dirs:
        problems += _diff(a / sub, b / sub)
    return problems


def run(check: bool) -> int:
    if not check:
        shutil.rmtree(GEN_PYTHON, ignore_errors=True)
        shutil.rmtree(GEN_DESCRIPTORS, ignore_errors=True)
        shutil.rmtree(GEN_OPENAPI, ignore_errors=True)
        generate(GEN_PYTHON.parent)
        print(f"generated {GEN_PYTHON.relative_to(ROOT)} and {GEN_DESCRIPTORS.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        problems = _diff(Path(tmp) / "python", GEN_PYTHON)
        problems += _diff(Path(tmp) / "descriptors", GEN_DESCRIPTORS)
        problems += _diff(Path(tmp) / "openapi", GEN_OPENAPI)
    if problems:
        print("gen/ has drifted from proto/ (run ./fit gen):", *problems, sep="\n  ")
        return 1
    print("gen/ matches proto/")
    return 0
