"""Run the whole system locally: migrations, then every process, health-checked, stopped
cleanly on Ctrl-C or SIGTERM. `./fit run` uses it; the end-to-end tests use it too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.paths import ROOT, VAR, VENV_BIN

PYTHON = str(VENV_BIN / "python")


def grpc_healthy(target: str, service: str = "") -> bool:
    try:
        with grpc.insecure_channel(target) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


@dataclass
class ProcSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthy: Callable[[], bool]
    log_path: Path | None = None


@dataclass
class Proc:
    spec: ProcSpec
    popen: subprocess.Popen[bytes]
    log: object = None


@dataclass
class MeshConfig:
    data_dir: Path = VAR
    host: str = "127.0.0.1"
    monolith_port: int = 50051
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None

    @classmethod
    def from_env(cls) -> MeshConfig:
        return cls(
            data_dir=Path(os.environ.get("FITCO_DATA_DIR", str(VAR))),
            host=os.environ.get("FITCO_HOST", "127.0.0.1"),
            monolith_port=int(os.environ.get("FITCO_MONOLITH_PORT", "50051")),
            database_url=os.environ.get("DATABASE_URL"),
        )

    @property
    def monolith_target(self) -> str:
        return f"{self.host}:{self.monolith_port}"


class Mesh:
    """Starts processes in order, waits for each to be healthy, stops them in reverse."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        self.procs: list[Proc] = []

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "FITCO_DATA_DIR": str(self.config.data_dir),
                "FITCO_LOG_FORMAT": env.get("FITCO_LOG_FORMAT", "text"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.config.database_url:
            env["DATABASE_URL"] = self.config.database_url
        env.update(self.config.extra_env)
        return env

    def migrate(self) -> None:
        subprocess.run(  # noqa: S603
            [PYTHON, "-m", "monolith", "migrate"], cwd=ROOT, env=self.base_env(), check=True
        )

    def specs(self) -> list[ProcSpec]:
        target = self.config.monolith_target
        env = self.base_env() | {"FITCO_MONOLITH_ADDR": target}
        return [
            ProcSpec(
                "monolith",
                [PYTHON, "-m", "monolith", "serve"],
                env,
                lambda: grpc_healthy(target),
            )
        ]

    def start_proc(self, spec: ProcSpec, timeout: float = 60.0) -> Proc:
        log = None
        stdout: int | object | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.config.log_dir / f"{spec.name}.log").open("ab")
            stdout = log
        popen = subprocess.Popen(  # noqa: S603
            spec.argv,
            cwd=ROOT,
            env=spec.env,
            stdout=stdout,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT if log else None,
        )
        proc = Proc(spec, popen, log)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {popen.returncode} during start-up")
            if spec.healthy():
                return proc
            time.sleep(0.1)
        raise RuntimeError(f"{spec.name} was not healthy within {timeout:.0f}s")

    def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.migrate()
        for spec in self.specs():
            self.start_proc(spec)

    def stop_proc(self, proc: Proc, timeout: float = 15.0) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if proc.log is not None:
            proc.log.close()  # type: ignore[attr-defined]
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop_proc(proc)

    def exited(self) -> Proc | None:
        return next((p for p in self.procs if p.popen.poll() is not None), None)


def banner(mesh: Mesh) -> str:
    c = mesh.config
    return "\n".join(
        [
            "",
            "The Fit Company is running:",
            f"  monolith gRPC   {c.monolith_target}  (reflection on: grpcurl -plaintext "
            f"{c.monolith_target} list)",
            f"  data directory  {c.data_dir}  (SQLite unless DATABASE_URL is set)",
            f"  bootstrap key   {c.data_dir / 'keys' / 'bootstrap.key'}",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def run(_args: argparse.Namespace) -> int:
    mesh = Mesh(MeshConfig.from_env())
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        mesh.start()
        print(banner(mesh), flush=True)
        while not stop.wait(0.5):
            dead = mesh.exited()
            if dead is not None:
                print(
                    f"{dead.spec.name} exited ({dead.popen.returncode}); stopping", file=sys.stderr
                )
                code = 1
                break
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("stopping ...", flush=True)
        mesh.stop()
    return code
