"""The real mesh for end-to-end tests: monolith, two coaches and Envoy, on free loopback ports.

Every process is started by the same supervisor `./fit run` uses, and stopped (and checked to
be gone) at the end of the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.mesh import Mesh, MeshConfig
from devtools.ports import free_port, free_port_run
from tests.e2e.harness import EnvoyAdmin, JsonClient, TestClock

pytestmark = pytest.mark.e2e


class RunningMesh:
    def __init__(self, mesh: Mesh, clock: TestClock) -> None:
        self.mesh = mesh
        self.clock = clock
        self.admin = EnvoyAdmin(mesh.config.admin_url)

    @property
    def host(self) -> str:
        return self.mesh.config.host

    @property
    def port(self) -> int:
        return self.mesh.config.envoy_port

    def client(self) -> JsonClient:
        return JsonClient(self.host, self.port)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    data: Path = tmp_path_factory.mktemp("mesh")
    clock = TestClock(data / "clock-offset")
    config = MeshConfig(
        data_dir=data,
        monolith_port=free_port(),
        coach_port=free_port_run(2),  # coach i listens on coach_port + i
        coach_instances=2,
        envoy_port=free_port(),
        envoy_admin_port=free_port(),
        envoy_concurrency=1,
        metrics_port=0,
        health_interval=0.5,
        ejection_seconds=3.0,
        database_url=f"sqlite:///{data / 'fitco.db'}",
        log_dir=data / "logs",
        extra_env={
            "FITCO_TEST_CLOCK_FILE": str(clock.path),
            # Every test client is 127.0.0.1 and a few users drive loops of WODs: the limits
            # themselves are tested by test_edge_limits.py on an Envoy of their own.
            "FITCO_RATE_LIMIT_AUTH": "100000/60s",
            "FITCO_RATE_LIMIT_GENERAL": "100000/1s",
            "FITCO_RATE_LIMIT_EXPENSIVE": "100000/60s",
            "FITCO_LOG_LEVEL": "INFO",
            "FITCO_COACH_READINESS_INTERVAL": "0.5",
            "FITCO_MONOLITH_READINESS_INTERVAL": "0.5",
            "FITCO_BREAKER_OPEN_SECONDS": "2",
            "FITCO_COACH_GRACE_SECONDS": "2",
            "FITCO_MONOLITH_GRACE_SECONDS": "2",
        },
    )
    m = Mesh(config)
    try:
        m.start()
        yield RunningMesh(m, clock)
    finally:
        pids = [p.popen.pid for p in m.procs]
        m.stop()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"process {pid} survived"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
