"""The real mesh for end-to-end tests: NATS with JetStream, the sandbox payment provider,
billing, the monolith, two coaches, two realtime instances and Envoy, on free loopback ports.

Every process is started by the same supervisor `./fit run` uses (supervisord, restarting what
dies), and stopped (and checked to be gone, supervisord included) at the end of the module.
"""

from __future__ import annotations

import os
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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

    def sandbox(self) -> JsonClient:
        """A client of the sandbox payment provider (tokens, confirmations)."""
        return JsonClient(self.host, self.mesh.config.sandbox_port)


def e2e_config(data: Path, clock: TestClock, database_url: str, **env: str) -> MeshConfig:
    """A mesh on free loopback ports with short health, ejection and breaker timings. Billing
    and the realtime service keep their own SQLite files in `data` whatever the monolith's
    database (nothing to drop); billing looks for due renewals every second (the tests move
    the clock)."""
    return MeshConfig(
        data_dir=data,
        monolith_port=free_port(),
        coach_port=free_port_run(2),  # coach i listens on coach_port + i
        coach_instances=2,
        envoy_port=free_port(),
        envoy_admin_port=free_port(),
        envoy_concurrency=1,
        metrics_port=0,
        billing_port=free_port(),
        sandbox_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        realtime_port=free_port_run(2),  # realtime i listens on realtime_port + i
        realtime_instances=2,
        billing_database_url=f"sqlite:///{data / 'billing.db'}",
        realtime_database_url=f"sqlite:///{data / 'realtime.db'}",
        health_interval=0.5,
        ejection_seconds=3.0,
        database_url=database_url,
        log_dir=data / "logs",
        extra_env={
            "FITCO_TEST_CLOCK_FILE": str(clock.path),
            "FITCO_LOG_LEVEL": "INFO",
            "FITCO_COACH_READINESS_INTERVAL": "0.5",
            "FITCO_MONOLITH_READINESS_INTERVAL": "0.5",
            "FITCO_BREAKER_OPEN_SECONDS": "2",
            "FITCO_COACH_GRACE_SECONDS": "2",
            "FITCO_MONOLITH_GRACE_SECONDS": "2",
            "FITCO_BILLING_READINESS_INTERVAL": "0.5",
            "FITCO_BILLING_GRACE_SECONDS": "2",
            "FITCO_BILLING_RENEWAL_INTERVAL_SECONDS": "1",
            "REALTIME_READINESS_INTERVAL": "0.5",
            "REALTIME_GRACE_SECONDS": "2",
            # The load tests drive a few users hard from one address: no edge rate limits
            # (tests/e2e/test_edge_limits.py runs its own Envoy with small ones).
            "FITCO_RATE_LIMITS": "none",
            **env,
        },
    )


@contextmanager
def running_mesh(config: MeshConfig, clock: TestClock) -> Iterator[RunningMesh]:
    """Start the mesh under supervisord; at the end stop it and check that no process of it
    (supervisord, or any program it runs) survived."""
    m = Mesh(config)
    pids: dict[str, int] = {}
    try:
        m.start()
        pids = m.pids()
        yield RunningMesh(m, clock)
    finally:
        if m.supervisord is not None:
            with suppress(OSError, xmlrpc.client.Error):
                pids |= m.pids()  # the programs' current pids, after any restarts
        m.stop()
        assert not pids or "supervisord" in pids, pids
        for name, pid in pids.items():
            assert _gone(pid), f"{name} (pid {pid}) survived the mesh"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    data: Path = tmp_path_factory.mktemp("mesh")
    clock = TestClock(data / "clock-offset")
    with running_mesh(e2e_config(data, clock, f"sqlite:///{data / 'fitco.db'}"), clock) as m:
        yield m


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
