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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools import envoy
from devtools.paths import DESCRIPTOR_SET, ROOT, VAR, VENV_BIN
from fitcore.config import Env
from fitcore.keys import ensure_dev_keys

PYTHON = str(VENV_BIN / "python")


COACH_SERVICE = "fitco.coach.v1.CoachService"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
    coach_port: int = 50061  # instance i listens on coach_port + i
    coach_instances: int = 2
    envoy_port: int = 8080
    envoy_admin_port: int = 9901
    envoy_concurrency: int = 2
    metrics_port: int = 9464  # monolith; coach i on metrics_port + 1 + i; 0 = no metrics
    health_interval: float = 2.0
    ejection_seconds: float = 10.0
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None

    @classmethod
    def from_env(cls) -> MeshConfig:
        e = os.environ
        return cls(
            data_dir=Path(e.get("FITCO_DATA_DIR", str(VAR))),
            host=e.get("FITCO_HOST", "127.0.0.1"),
            monolith_port=int(e.get("FITCO_MONOLITH_PORT", "50051")),
            coach_port=int(e.get("FITCO_COACH_PORT", "50061")),
            coach_instances=int(e.get("FITCO_COACH_INSTANCES", "2")),
            envoy_port=int(e.get("FITCO_ENVOY_PORT", "8080")),
            envoy_admin_port=int(e.get("FITCO_ENVOY_ADMIN_PORT", "9901")),
            envoy_concurrency=int(e.get("FITCO_ENVOY_CONCURRENCY", "2")),
            metrics_port=int(e.get("FITCO_METRICS_PORT", "9464")),
            database_url=e.get("DATABASE_URL"),
        )

    @property
    def monolith_target(self) -> str:
        return f"{self.host}:{self.monolith_port}"

    def coach_target(self, index: int) -> str:
        return f"{self.host}:{self.coach_port + index}"

    @property
    def envoy_url(self) -> str:
        return f"http://{self.host}:{self.envoy_port}"

    @property
    def envoy_target(self) -> str:
        return f"{self.host}:{self.envoy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_admin_port}"

    @property
    def envoy_dir(self) -> Path:
        return self.data_dir / "envoy"

    @property
    def runtime_dir(self) -> Path:
        return self.envoy_dir / "runtime"


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

    def monolith_spec(self) -> ProcSpec:
        target = self.config.monolith_target
        env = self.base_env() | {
            "FITCO_MONOLITH_ADDR": target,
            "FITCO_MONOLITH_METRICS_PORT": str(self.config.metrics_port),
        }
        return ProcSpec(
            "monolith", [PYTHON, "-m", "monolith", "serve"], env, lambda: grpc_healthy(target)
        )

    def coach_spec(self, index: int) -> ProcSpec:
        target = self.config.coach_target(index)
        env = self.base_env() | {
            "FITCO_COACH_ADDR": target,
            "FITCO_MONOLITH_TARGET": self.config.monolith_target,
            "FITCO_COACH_METRICS_PORT": str(
                self.config.metrics_port + 1 + index if self.config.metrics_port else 0
            ),
        }
        return ProcSpec(
            f"coach-{index}",
            [PYTHON, "-m", "coach"],
            env,
            lambda: grpc_healthy(target, COACH_SERVICE),
        )

    def envoy_config(self) -> Path:
        c = self.config
        pem = (c.data_dir / "keys" / "jwt_public.pem").read_bytes()
        env = self.base_env()
        if envoy.read_runtime(c.runtime_dir) is None:
            envoy.write_runtime(c.runtime_dir, envoy.Split(100, 0))
        params = envoy.EnvoyParams(
            listen=(c.host, c.envoy_port),
            admin=("127.0.0.1", c.envoy_admin_port),
            monolith=envoy.Endpoints([(c.host, c.monolith_port)]),
            coach=envoy.Endpoints([(c.host, c.coach_port + i) for i in range(c.coach_instances)]),
            descriptor=str(DESCRIPTOR_SET),
            jwks=envoy.jwks_from_public_key(pem),
            runtime_root=str(c.runtime_dir / "current"),
            health_interval=c.health_interval,
            ejection_seconds=c.ejection_seconds,
            access_log=str(c.envoy_dir / "access.log"),
            # FITCO_RATE_LIMITS=off for load tests from one machine (see README).
            limits=envoy.RateLimits.from_env(env),
            edge_reflection_streams=int(env.get("FITCO_EDGE_REFLECTION_STREAMS", "2")),
        )
        path = c.envoy_dir / "envoy.yaml"
        path.write_text(envoy.dump(envoy.render(params)))
        return path

    def envoy_spec(self) -> ProcSpec:
        c = self.config
        config = self.envoy_config()
        argv = [
            str(VENV_BIN / "envoy"),
            "-c",
            str(config),
            "--concurrency",
            str(c.envoy_concurrency),
            "--disable-hot-restart",
            "--log-level",
            os.environ.get("FITCO_ENVOY_LOG_LEVEL", "warn"),
            "--drain-time-s",
            "2",
        ]
        return ProcSpec("envoy", argv, self.base_env(), lambda: http_ok(f"{c.admin_url}/ready"))

    def specs(self) -> list[ProcSpec]:
        return [
            self.monolith_spec(),
            *(self.coach_spec(i) for i in range(self.config.coach_instances)),
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
        self.config.envoy_dir.mkdir(parents=True, exist_ok=True)
        ensure_dev_keys(Env(self.base_env()))
        self.migrate()
        for spec in self.specs():
            self.start_proc(spec)
        self.start_proc(self.envoy_spec())

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.spec.name == name)

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
    split = envoy.live_split(c.admin_url) or envoy.read_runtime(c.runtime_dir)
    coaches = ", ".join(c.coach_target(i) for i in range(c.coach_instances))
    return "\n".join(
        [
            "",
            "The Fit Company is running:",
            f"  API (JSON + gRPC)  {c.envoy_url}    via Envoy",
            f"  Envoy admin        {c.admin_url}  (metrics: /stats/prometheus)",
            f"  service metrics    http://127.0.0.1:{c.metrics_port}/metrics (monolith), "
            f"+1.. (coaches)"
            if c.metrics_port
            else "  service metrics    off (FITCO_METRICS_PORT=0)",
            f"  monolith gRPC      {c.monolith_target}",
            f"  coach gRPC         {coaches}",
            f"  WOD split          legacy {split.legacy if split else '?'} / "
            f"coach {split.coach if split else '?'}  (change: ./fit shift wod --coach 10)",
            f"  data directory     {c.data_dir}  (SQLite unless DATABASE_URL is set)",
            f"  bootstrap key      {c.data_dir / 'keys' / 'bootstrap.key'}",
            "",
            "Try it:",
            f"  curl {c.envoy_url}/health",
            f"  curl {c.envoy_url}/fitness/exercises/1",
            f"  grpcurl -plaintext {c.envoy_target} list",
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
