"""Run the whole system locally under supervisord: migrations, then every process (NATS with
JetStream, the sandbox payment provider, billing, monolith, coaches, the realtime instances,
Envoy) as a supervisord program that is restarted when it dies, health-checked, and stopped
cleanly (SIGTERM, then SIGKILL to its process group) on Ctrl-C or SIGTERM.

`./fit run` uses it; the end-to-end tests, `./fit bruno` and the benchmarks start the same
supervisor, so a test that kills a process exercises the real restart. Why supervisord and not
a hand-written loop or circus: adr/04-availability.md, "Supervisor".
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from fitco.billing.v1 import billing_pb2
from fitco.coach.v1 import coach_pb2
from fitco.events.v1 import events_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url
from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

import fitedge
from billing import dev_secrets
from devtools import certs, postgres
from devtools.paths import DESCRIPTOR_SET, ROOT, VAR, VENV_BIN
from devtools.ports import free_port, free_port_run
from fitcore.access import service_names
from fitcore.config import Env
from fitcore.db import default_sqlite_url
from fitcore.keys import ensure_dev_keys

PYTHON = str(VENV_BIN / "python")


# The service a coach reports ready for (its health check), from the contract.
(COACH_SERVICE,) = service_names(coach_pb2)
(BILLING_SERVICE,) = service_names(billing_pb2)
# A realtime instance serves its events once it is connected to the bus.
(REALTIME_SERVICE,) = service_names(events_pb2)


def webhook_path() -> str:
    """Where providers post their events: the REST path of BillingService.ReceiveWebhook in
    the contract (the sandbox posts to it through Envoy, as a real provider would)."""
    (rpc,) = (
        r for r in fitedge.Contract.load().of_services(billing_pb2) if r.method == "ReceiveWebhook"
    )
    return rpc.bindings[0].template


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def nats_ready(host: str, port: int) -> bool:
    """A NATS server greets every client with an INFO line."""
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            return conn.recv(5) == b"INFO "
    except OSError:
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
    """One supervisord program: its command line, its whole environment, when it is healthy,
    and its place in the start order (lower priority starts first and stops last)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    healthy: Callable[[], bool]
    priority: int = 500


@dataclass(frozen=True)
class Supervision:
    """The restart and stop policy of every program (one place, rendered into supervisord.conf).

    A process that dies after `startsecs` is restarted at once; one that dies sooner is retried
    after 1 s, 2 s, 3 s ... (supervisord's back-off) and given up (FATAL) after `startretries`
    attempts in a row: a crash loop that long is a bug to read in the log, not to hide.
    """

    startsecs: int = 1
    startretries: int = 10
    # SIGTERM, then SIGKILL after stopwaitsecs: above the services' default grace (10 s).
    stopwaitsecs: int = 15


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
    # TLS at the edge (./fit run --tls or FITCO_TLS=on): HTTPS on envoy_tls_port with a
    # development certificate (var/keys/tls), and envoy_port only redirects to it.
    tls: bool = False
    envoy_tls_port: int = 8443
    metrics_port: int = 9464  # monolith; coach i on metrics_port + 1 + i; 0 = no metrics
    billing_port: int = 50071
    # None: after the coaches' (metrics_port + 1 + coach_instances), 0 when metrics are off.
    billing_metrics_port: int | None = None
    sandbox_port: int = 8090  # the sandbox payment provider (HTTP)
    # NATS with JetStream (adr/10), its store in data_dir/nats; monitoring on 127.0.0.1 only
    # (0 = none).
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    realtime_port: int = 50081  # instance i listens on realtime_port + i
    realtime_instances: int = 2
    # None: after billing's (billing_metrics + 1 + i), 0 when metrics are off.
    realtime_metrics_port: int | None = None
    health_interval: float = 2.0
    ejection_seconds: float = 10.0
    database_url: str | None = None
    # Billing's own database (never the monolith's): see billing_db_url.
    billing_database_url: str | None = None
    # The realtime service's own database (groups): see realtime_db_url.
    realtime_database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # None: every program's output goes to the terminal (./fit run); else one file each here.
    log_dir: Path | None = None
    supervision: Supervision = field(default_factory=Supervision)

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
            tls=e.get("FITCO_TLS", "off").strip().lower() in ("1", "on", "true", "yes"),
            envoy_tls_port=int(e.get("FITCO_ENVOY_TLS_PORT", "8443")),
            metrics_port=int(e.get("FITCO_METRICS_PORT", "9464")),
            billing_port=int(e.get("FITCO_BILLING_PORT", "50071")),
            sandbox_port=int(e.get("FITCO_SANDBOX_PORT", "8090")),
            nats_port=int(e.get("FITCO_NATS_PORT", "4222")),
            nats_monitor_port=int(e.get("FITCO_NATS_MONITOR_PORT", "8222")),
            realtime_port=int(e.get("FITCO_REALTIME_PORT", "50081")),
            realtime_instances=int(e.get("FITCO_REALTIME_INSTANCES", "2")),
            database_url=e.get("DATABASE_URL"),
            billing_database_url=e.get("BILLING_DATABASE_URL")
            or e.get("FITCO_BILLING_DATABASE_URL"),
            realtime_database_url=e.get("REALTIME_DATABASE_URL"),
        )

    @classmethod
    def on_free_ports(
        cls, data_dir: Path, coach_instances: int = 1, **overrides: Any
    ) -> MeshConfig:
        """A throw-away mesh on free loopback ports (Bruno, benchmarks, fuzzing): metrics off,
        billing and the realtime service on SQLite files in data_dir (thrown away with it,
        whatever the monolith's database), every program's log in data_dir/logs; `overrides`
        are any other fields."""
        fields: dict[str, Any] = {
            "data_dir": data_dir,
            "monolith_port": free_port(),
            "coach_port": free_port_run(coach_instances),  # coach i on coach_port + i
            "coach_instances": coach_instances,
            "envoy_port": free_port(),
            "envoy_admin_port": free_port(),
            "metrics_port": 0,
            "billing_port": free_port(),
            "sandbox_port": free_port(),
            "nats_port": free_port(),
            "nats_monitor_port": free_port(),
            "realtime_port": free_port_run(2),  # realtime i on realtime_port + i
            "billing_database_url": default_sqlite_url(data_dir, "billing.db"),
            "realtime_database_url": default_sqlite_url(data_dir, "realtime.db"),
            "log_dir": data_dir / "logs",
        }
        return cls(**(fields | overrides))

    @property
    def monolith_target(self) -> str:
        return f"{self.host}:{self.monolith_port}"

    def coach_target(self, index: int) -> str:
        return f"{self.host}:{self.coach_port + index}"

    @property
    def billing_target(self) -> str:
        return f"{self.host}:{self.billing_port}"

    @property
    def coach_targets(self) -> str:
        """Every coach as one gRPC target (the realtime service's client spreads its calls
        over them, round robin): `ipv4:h:p1,h:p2` when the host is an IPv4 address."""
        if self.coach_instances == 1 or not _is_ipv4(self.host):
            return self.coach_target(0)
        return "ipv4:" + ",".join(self.coach_target(i) for i in range(self.coach_instances))

    @property
    def nats_url(self) -> str:
        return f"nats://{self.host}:{self.nats_port}"

    @property
    def nats_dir(self) -> Path:
        """JetStream's store (the event log): kept across restarts, like the databases."""
        return self.data_dir / "nats"

    def realtime_target(self, index: int) -> str:
        return f"{self.host}:{self.realtime_port + index}"

    def realtime_metrics(self, index: int) -> int:
        """Realtime instance i's metrics port (0: none)."""
        if self.realtime_metrics_port is not None:
            return self.realtime_metrics_port + index if self.realtime_metrics_port else 0
        return self.billing_metrics + 1 + index if self.billing_metrics else 0

    def realtime_db_url(self) -> str:
        """The realtime service's database (groups), like billing's: realtime_database_url
        when set; else `<monolith's>_realtime` next to a PostgreSQL monolith database; else a
        SQLite file of its own in the data directory (shared by the local instances)."""
        if self.realtime_database_url:
            return self.realtime_database_url
        if self.database_url and postgres.is_postgres(self.database_url):
            return postgres.sibling_database(self.database_url, "realtime")
        return default_sqlite_url(self.data_dir, "realtime.db")

    @property
    def billing_metrics(self) -> int:
        """Billing's metrics port (0: none)."""
        if self.billing_metrics_port is not None:
            return self.billing_metrics_port
        return self.metrics_port + 1 + self.coach_instances if self.metrics_port else 0

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    @property
    def webhook_url(self) -> str:
        """The sandbox delivers its webhooks to billing through the edge, as a provider would."""
        return self.envoy_url + webhook_path()

    def billing_db_url(self) -> str:
        """Billing's database: billing_database_url when set; else, when the monolith runs on
        PostgreSQL, a database of its own on the same server (`<monolith's>_billing`, created
        by Mesh.migrate); else a SQLite file of its own in the data directory."""
        if self.billing_database_url:
            return self.billing_database_url
        if self.database_url and postgres.is_postgres(self.database_url):
            return postgres.sibling_database(self.database_url, "billing")
        return default_sqlite_url(self.data_dir, "billing.db")

    @property
    def envoy_url(self) -> str:
        if self.tls:
            return f"https://{self.host}:{self.envoy_tls_port}"
        return f"http://{self.host}:{self.envoy_port}"

    @property
    def envoy_target(self) -> str:
        return f"{self.host}:{self.envoy_tls_port if self.tls else self.envoy_port}"

    @property
    def tls_dir(self) -> Path:
        """The development CA and certificate of the TLS edge (kept across restarts)."""
        return self.data_dir / "keys" / "tls"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_admin_port}"

    @property
    def envoy_dir(self) -> Path:
        return self.data_dir / "envoy"

    @property
    def runtime_dir(self) -> Path:
        return self.envoy_dir / "runtime"

    @property
    def supervisor_dir(self) -> Path:
        """supervisord.conf, its log, pid file and (when the path is short enough) its socket."""
        return self.data_dir / "supervisor"


class Mesh:
    """The mesh under supervisord: `start()` migrates, renders supervisord.conf from the
    programs' specs, starts supervisord and waits until every program is healthy; `stop()`
    stops supervisord, which stops every program (reverse priority) and leaves none behind.

    In between, supervisord restarts any program that dies. Tests drive faults with `kill()`
    (a signal straight to the process: the supervisor notices and restarts it),
    `stop_program()` / `start_program()` (supervisord's XML-RPC: a stopped program stays down)
    and `wait_healthy()`.
    """

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        self.programs: list[ProcSpec] = []
        self.supervisord: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None  # a short private directory, when var/ is too deep
        # Per start, in the 0600 config only: the socket's 0700 mode keeps other users out,
        # the password keeps out anything that did not read the config.
        self._rpc_password = secrets.token_urlsafe(24)

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "FITCO_DATA_DIR": str(self.config.data_dir),
                "FITCO_LOG_FORMAT": env.get("FITCO_LOG_FORMAT", "text"),
                "PYTHONUNBUFFERED": "1",
                # The mesh's own NATS: the producers' outbox relays and the realtime service.
                "FITCO_NATS_URL": self.config.nats_url,
            }
        )
        if self.config.database_url:
            env["DATABASE_URL"] = self.config.database_url
        env.update(self.config.extra_env)
        return env

    def migrate(self) -> None:
        """The monolith's schema, then billing's and the realtime service's (each in its own
        database, created first when it is a PostgreSQL database next to the monolith's)."""
        subprocess.run(  # noqa: S603
            [PYTHON, "-m", "monolith", "migrate"], cwd=ROOT, env=self.base_env(), check=True
        )
        c = self.config
        for service, url, chosen, env in (
            ("billing", c.billing_db_url(), c.billing_database_url, self.billing_env()),
            ("realtime", c.realtime_db_url(), c.realtime_database_url, self.realtime_env(0)),
        ):
            derived = not chosen and c.database_url and postgres.is_postgres(url)
            if derived and postgres.create_database_if_missing(url, via=self._monolith_db_url()):
                print(f"mesh: created {service}'s database {make_url(url).database}", flush=True)
            subprocess.run(  # noqa: S603
                [PYTHON, "-m", service, "migrate"], cwd=ROOT, env=env, check=True
            )

    def _monolith_db_url(self) -> str:
        """DATABASE_URL with the password of FITCO_DATABASE_PASSWORD_FILE, when one is set."""
        url = self.config.database_url or ""
        password_file = self.base_env().get("FITCO_DATABASE_PASSWORD_FILE")
        if password_file:
            password = Path(password_file).read_text().strip()
            url = make_url(url).set(password=password).render_as_string(hide_password=False)
        return url

    def billing_env(self) -> dict[str, str]:
        """Billing's environment (its migration and its server): its own database, the
        provider's URL; the webhook secret and the provider's API key are generated into
        data_dir/keys for local runs (billing.dev_secrets, see start()) unless set."""
        c = self.config
        env = self.base_env() | {
            "FITCO_BILLING_ADDR": c.billing_target,
            "FITCO_BILLING_METRICS_PORT": str(c.billing_metrics),
            "BILLING_DATABASE_URL": c.billing_db_url(),
            "FITCO_PROVIDER_URL": c.sandbox_url,
            # Revoked user tokens: billing asks the monolith (CheckToken).
            "FITCO_MONOLITH_TARGET": c.monolith_target,
        }
        shared_password = env.get("FITCO_DATABASE_PASSWORD_FILE")
        if not c.billing_database_url and c.database_url and shared_password:
            # Its database sits next to the monolith's: the same role, the same password.
            env.setdefault("FITCO_BILLING_DATABASE_PASSWORD_FILE", shared_password)
        return env

    def realtime_env(self, index: int) -> dict[str, str]:
        """Realtime instance i's environment (its migration uses instance 0's): its address,
        its own database (next to a PostgreSQL monolith's with the same role, like billing's),
        the monolith for revoked tokens, the coaches for the WOD a group follows."""
        c = self.config
        env = self.base_env() | {
            "REALTIME_ADDR": c.realtime_target(index),
            "REALTIME_METRICS_PORT": str(c.realtime_metrics(index)),
            "REALTIME_DATABASE_URL": c.realtime_db_url(),
            "FITCO_MONOLITH_TARGET": c.monolith_target,
            "FITCO_COACH_TARGET": c.coach_targets,
        }
        shared_password = env.get("FITCO_DATABASE_PASSWORD_FILE")
        if not c.realtime_database_url and c.database_url and shared_password:
            env.setdefault("FITCO_REALTIME_DATABASE_PASSWORD_FILE", shared_password)
        return env

    def realtime_spec(self, index: int) -> ProcSpec:
        target = self.config.realtime_target(index)
        return ProcSpec(
            f"realtime-{index}",
            [PYTHON, "-m", "realtime", "serve"],
            self.realtime_env(index),
            lambda: grpc_healthy(target, REALTIME_SERVICE),
            priority=250,
        )

    def nats_spec(self) -> ProcSpec:
        """NATS with JetStream, first of all (the services connect to it as they start; they
        keep working without it, but events would wait in the outboxes)."""
        c = self.config
        c.nats_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(VENV_BIN / "nats-server"), "-js", "-sd", str(c.nats_dir)]
        argv += ["-a", c.host, "-p", str(c.nats_port)]
        if c.nats_monitor_port:
            # The monitoring endpoint (/varz, /jsz, /healthz) is on loopback only, whatever
            # the client address: it has no authentication.
            conf = c.nats_dir / "monitoring.conf"
            conf.write_text(f'http: "127.0.0.1:{c.nats_monitor_port}"\n')
            argv += ["-c", str(conf)]
        return ProcSpec(
            "nats",
            argv,
            self.base_env(),
            (lambda: http_ok(f"http://127.0.0.1:{c.nats_monitor_port}/healthz"))
            if c.nats_monitor_port
            else (lambda: nats_ready(c.host, c.nats_port)),
            priority=10,
        )

    def billing_spec(self) -> ProcSpec:
        target = self.config.billing_target
        return ProcSpec(
            "billing",
            [PYTHON, "-m", "billing", "serve"],
            self.billing_env(),
            lambda: grpc_healthy(target, BILLING_SERVICE),
            priority=80,
        )

    def sandbox_spec(self) -> ProcSpec:
        c = self.config
        env = self.base_env() | {
            "FITCO_SANDBOX_ADDRESS": f"{c.host}:{c.sandbox_port}",
            "FITCO_SANDBOX_WEBHOOK_URL": c.webhook_url,
        }
        if c.tls:  # it posts to the HTTPS edge, whose certificate the development CA signed
            env["SSL_CERT_FILE"] = str(c.tls_dir / "ca.crt")
        return ProcSpec(
            "sandbox",
            [PYTHON, "-m", "sandboxpay", "serve"],
            env,
            lambda: http_ok(f"{c.sandbox_url}/health"),
            priority=50,
        )

    def monolith_spec(self) -> ProcSpec:
        target = self.config.monolith_target
        env = self.base_env() | {
            "FITCO_MONOLITH_ADDR": target,
            "FITCO_MONOLITH_METRICS_PORT": str(self.config.metrics_port),
            # Entitlements (premium) come from billing.
            "FITCO_BILLING_TARGET": self.config.billing_target,
        }
        return ProcSpec(
            "monolith",
            [PYTHON, "-m", "monolith", "serve"],
            env,
            lambda: grpc_healthy(target),
            priority=100,
        )

    def coach_spec(self, index: int) -> ProcSpec:
        target = self.config.coach_target(index)
        env = self.base_env() | {
            "FITCO_COACH_ADDR": target,
            "FITCO_MONOLITH_TARGET": self.config.monolith_target,
            "FITCO_BILLING_TARGET": self.config.billing_target,
            "FITCO_COACH_METRICS_PORT": str(
                self.config.metrics_port + 1 + index if self.config.metrics_port else 0
            ),
        }
        return ProcSpec(
            f"coach-{index}",
            [PYTHON, "-m", "coach"],
            env,
            lambda: grpc_healthy(target, COACH_SERVICE),
            priority=200,
        )

    def envoy_config(self) -> Path:
        c = self.config
        pem = (c.data_dir / "keys" / "jwt_public.pem").read_bytes()
        env = self.base_env()
        if fitedge.read_runtime(c.runtime_dir) is None:
            fitedge.write_runtime(c.runtime_dir, fitedge.Split(100, 0))
        tls = None
        if c.tls:
            files = certs.ensure(c.tls_dir)
            tls = fitedge.Tls(
                str(files.cert),
                str(files.key),
                redirect=(c.host, c.envoy_port),
                https_port=c.envoy_tls_port,
            )
        params = fitedge.EnvoyParams(
            listen=(c.host, c.envoy_tls_port if c.tls else c.envoy_port),
            tls=tls,
            admin=("127.0.0.1", c.envoy_admin_port),
            monolith=fitedge.Endpoints([(c.host, c.monolith_port)]),
            coach=fitedge.Endpoints([(c.host, c.coach_port + i) for i in range(c.coach_instances)]),
            billing=fitedge.Endpoints([(c.host, c.billing_port)]),
            realtime=fitedge.Endpoints(
                [(c.host, c.realtime_port + i) for i in range(c.realtime_instances)]
            ),
            descriptor=str(DESCRIPTOR_SET),
            jwks=fitedge.jwks_from_public_key(pem),
            runtime_root=str(c.runtime_dir / "current"),
            health_interval=c.health_interval,
            ejection_seconds=c.ejection_seconds,
            access_log=str(c.envoy_dir / "access.log"),
            # FITCO_RATE_LIMITS=off for load tests from one machine (see README).
            limits=fitedge.RateLimits.from_env(env),
            edge_reflection_streams=int(env.get("FITCO_EDGE_REFLECTION_STREAMS", "2")),
        )
        path = c.envoy_dir / "envoy.yaml"
        path.write_text(fitedge.dump(fitedge.render(params)))
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
        return ProcSpec(
            "envoy",
            argv,
            self.base_env(),
            lambda: http_ok(f"{c.admin_url}/ready"),
            priority=300,
        )

    def specs(self) -> list[ProcSpec]:
        """Every program in start order (rendering Envoy's spec writes its config)."""
        return [
            self.nats_spec(),
            self.sandbox_spec(),
            self.billing_spec(),
            self.monolith_spec(),
            *(self.coach_spec(i) for i in range(self.config.coach_instances)),
            *(self.realtime_spec(i) for i in range(self.config.realtime_instances)),
            self.envoy_spec(),
        ]

    # -- supervisord ------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.config.supervisor_dir.absolute() / "supervisord.conf"

    @property
    def socket_path(self) -> Path:
        """The XML-RPC socket: in the data directory unless that path is too long for one."""
        sock = self.config.supervisor_dir.absolute() / "supervisor.sock"
        if len(str(sock)) <= _MAX_SOCKET_PATH:
            return sock
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="fitco-sv-"))  # mode 0700
        return self._socket_dir / "supervisor.sock"

    def supervisor_conf(self, programs: list[ProcSpec]) -> str:
        """supervisord.conf for these programs. Each program gets supervisord's environment
        (this mesh's base_env) plus, in `environment=`, what its spec sets differently, so it
        sees exactly the environment its spec describes (and supervisord's SUPERVISOR_*)."""
        c, policy = self.config, self.config.supervision
        here = c.supervisor_dir.absolute()
        logs = c.log_dir.absolute() if c.log_dir is not None else None
        base = self.base_env()
        supervisord = {
            "nodaemon": "true",
            # In the foreground supervisord also logs to stdout: the terminal of ./fit run,
            # not the tests' output (they read log_dir/supervisord.log).
            "silent": "false" if logs is None else "true",
            "logfile": str((logs or here) / "supervisord.log"),
            "logfile_maxbytes": "10MB",
            "logfile_backups": "2",
            "loglevel": "info",
            "pidfile": str(here / "supervisord.pid"),
            "childlogdir": str(here),
            "identifier": "fitco-mesh",
        }
        if os.getuid() == 0:
            supervisord["user"] = "root"  # says so, instead of a CRIT line about not dropping it
        sections: list[tuple[str, dict[str, str]]] = [
            (
                "unix_http_server",
                {
                    "file": str(self.socket_path),
                    "chmod": "0700",
                    "username": _RPC_USER,
                    "password": self._rpc_password,
                },
            ),
            ("supervisord", supervisord),
            (
                "rpcinterface:supervisor",
                {
                    "supervisor.rpcinterface_factory": (
                        "supervisor.rpcinterface:make_main_rpcinterface"
                    )
                },
            ),
            (
                "supervisorctl",
                {
                    "serverurl": f"unix://{self.socket_path}",
                    "username": _RPC_USER,
                    "password": self._rpc_password,
                },
            ),
        ]
        for spec in programs:
            dropped = base.keys() - spec.env.keys()
            if dropped:
                raise ValueError(f"{spec.name}: a program cannot unset {sorted(dropped)}")
            own = {k: v for k, v in spec.env.items() if base.get(k) != v}
            program = {
                "command": shlex.join(spec.argv),
                "directory": str(ROOT),
                "priority": str(spec.priority),
                "autostart": "true",
                "autorestart": "true",
                "startsecs": str(policy.startsecs),
                "startretries": str(policy.startretries),
                "stopsignal": "TERM",
                "stopwaitsecs": str(policy.stopwaitsecs),
                "stopasgroup": "true",
                "killasgroup": "true",
                "redirect_stderr": "true",
                "stdout_logfile": "/dev/stdout" if logs is None else str(logs / f"{spec.name}.log"),
                "stdout_logfile_maxbytes": "0",
            }
            if own:
                program["environment"] = _environment(own)
            sections.append((f"program:{spec.name}", program))
        lines = ["; Rendered by devtools/mesh.py on every start of the mesh: edit that, not this."]
        for name, values in sections:
            lines += ["", f"[{name}]", *(f"{k}={_ini(v)}" for k, v in values.items())]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 60.0) -> None:
        """Migrate, start supervisord with every program, wait until each one is healthy."""
        c = self.config
        if self.supervisord is not None:
            raise RuntimeError("the mesh is already started")
        for d in (c.data_dir, c.envoy_dir, *([c.log_dir] if c.log_dir else [])):
            d.mkdir(parents=True, exist_ok=True)
        c.supervisor_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        c.supervisor_dir.chmod(0o700)
        env = Env(self.base_env())
        ensure_dev_keys(env)
        # The secrets billing and the sandbox share, generated once before either starts
        # (unless configured): both then read the same files.
        dev_secrets.provider_api_key(env)
        dev_secrets.webhook_secret(env)
        self.migrate()
        self.programs = self.specs()
        self.config_path.unlink(missing_ok=True)
        self.config_path.touch(mode=0o600)
        self.config_path.write_text(self.supervisor_conf(self.programs))
        out = None if c.log_dir is None else (c.log_dir / "supervisord.out").open("ab")
        try:
            self.supervisord = subprocess.Popen(  # noqa: S603 - our own command line
                [
                    PYTHON,
                    "-c",
                    _DIE_WITH_PARENT,
                    str(os.getpid()),
                    str(VENV_BIN / "supervisord"),
                    "--nodaemon",
                    "--configuration",
                    str(self.config_path),
                ],
                cwd=ROOT,
                env=self.base_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                # Its own session: Ctrl-C in the terminal reaches ./fit run, which stops it.
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        try:
            deadline = time.monotonic() + timeout
            for spec in self.programs:
                remaining = max(1.0, deadline - time.monotonic())
                self.wait_healthy(spec.name, remaining, first_start=True)
        except BaseException:
            self.stop()
            raise

    def call(self, method: str, *args: Any) -> Any:
        """One call of supervisord's XML-RPC interface (`supervisor.<method>`) over its unix
        socket, on a connection of its own (so any thread may call)."""
        transport = SupervisorTransport(_RPC_USER, self._rpc_password, f"unix://{self.socket_path}")
        with xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def program(self, name: str) -> ProcSpec:
        for spec in self.programs:
            if spec.name == name:
                return spec
        raise KeyError(f"no program {name!r} (have {[p.name for p in self.programs]})")

    def info(self, name: str) -> dict[str, Any]:
        """supervisord's view of a program: statename, pid (0 when not running), ..."""
        info: dict[str, Any] = self.call("getProcessInfo", name)
        return info

    def pid(self, name: str) -> int:
        """The program's current pid, 0 when it is not running."""
        return int(self.info(name)["pid"])

    def pids(self) -> dict[str, int]:
        """supervisord's pid and every running program's."""
        out = {"supervisord": self.supervisord.pid} if self.supervisord else {}
        for info in self.call("getAllProcessInfo"):
            if info["pid"]:
                out[str(info["name"])] = int(info["pid"])
        return out

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to the program's process, behind supervisord's back (as a crash would);
        after a fatal signal supervisord restarts it. Returns the pid signalled."""
        pid = self.pid(name)
        if not pid:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, sig)
        return pid

    def stop_program(self, name: str) -> None:
        """Stop a program gracefully through supervisord; it stays stopped until started."""
        self.call("stopProcess", name, True)

    def start_program(self, name: str, timeout: float = 30.0) -> int:
        """Start a stopped program through supervisord and wait until it is healthy."""
        self.call("startProcess", name, False)
        return self.wait_healthy(name, timeout)

    def wait_healthy(
        self, name: str, timeout: float = 30.0, replacing: int = 0, *, first_start: bool = False
    ) -> int:
        """Wait until `name` runs (as a new process when `replacing` is the pid it had) and
        passes its health check; return its pid. Fails at once when supervisord gave up on it
        (FATAL) or it was stopped, and with `first_start` as soon as it exits (BACKOFF): a
        program that cannot start at all is a configuration error, not worth a minute of
        back-off."""
        spec = self.program(name)
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            self._check_supervisord()
            try:
                info = self.info(name)
            except OSError:  # supervisord is still opening its socket
                time.sleep(0.1)
                continue
            state, pid = str(info["statename"]), int(info["pid"])
            if (
                state == "FATAL"
                or (state == "STOPPED" and info["start"])
                or (first_start and state in ("BACKOFF", "EXITED"))
            ):
                raise RuntimeError(f"{name} is {state}: {info['description']}{self._tail(name)}")
            if pid and pid != replacing and state in ("STARTING", "RUNNING") and spec.healthy():
                return pid
            time.sleep(0.1)
        raise RuntimeError(
            f"{name} was not healthy within {timeout:.0f}s (state {state}){self._tail(name)}"
        )

    def wait(self) -> int:
        """Block until supervisord exits (it does not when a program dies); its exit code."""
        if self.supervisord is None:
            raise RuntimeError("the mesh is not started")
        return self.supervisord.wait()

    def stop(self) -> None:
        """Stop every program (SIGTERM in reverse priority order, SIGKILL to its process group
        after stopwaitsecs) and supervisord. Nothing of the mesh runs afterwards."""
        sup = self.supervisord
        if sup is None:
            return
        children: list[int] = []
        if sup.poll() is None:
            with contextlib.suppress(OSError, xmlrpc.client.Error):
                children = [p for n, p in self.pids().items() if n != "supervisord"]
            for pid in children:  # a SIGSTOPped program would only die at SIGKILL
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGCONT)
            sup.send_signal(signal.SIGTERM)
        # supervisord stops the programs one after the other.
        budget = self.config.supervision.stopwaitsecs * (len(self.programs) + 1) + 5
        try:
            sup.wait(budget)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
            for pid in children:  # supervisord died before its programs: finish its work
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        self.supervisord = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _check_supervisord(self) -> None:
        if self.supervisord is None:
            raise RuntimeError("the mesh is not started")
        code = self.supervisord.poll()
        if code is not None:
            raise RuntimeError(f"supervisord exited with {code}{self._tail('supervisord')}")

    def _tail(self, name: str, lines: int = 20) -> str:
        """The end of a program's log for an error message ('' when it went to the terminal)."""
        logs = self.config.log_dir
        if logs is None:
            return ""
        text = []
        for path in (logs / f"{name}.log", logs / f"{name}.out"):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "".join(f"\n  | {line}" for line in text)


_RPC_USER = "fitco"
# AF_UNIX paths are limited to 108 bytes; pytest's temporary directories can be deep.
_MAX_SOCKET_PATH = 100

# supervisord gets SIGTERM (a clean stop of every program) when the process that started it
# dies, so a killed `./fit run` or test run leaves no mesh behind. Linux only (prctl); the
# signal follows the *thread* that started it: start meshes from a thread that outlives them.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
libc = ctypes.CDLL(None)
if hasattr(libc, "prctl"):
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("the process that started supervisord is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


def _ini(value: str) -> str:
    """A value for supervisord.conf: one line, '%' doubled (supervisord expands %(name)s)."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"a supervisord.conf value must be one line: {value!r}")
    return value.replace("%", "%%")


def _environment(env: dict[str, str]) -> str:
    """KEY="value",... as supervisord parses `environment=` (no escapes inside quotes)."""
    pairs = []
    for key, value in sorted(env.items()):
        if not key.isidentifier() or '"' in value or "'" in value:
            raise ValueError(f"{key}={value!r} cannot be written to supervisord.conf")
        pairs.append(f'{key}="{value}"')
    return ",".join(pairs)


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def banner(mesh: Mesh) -> str:
    c = mesh.config
    cacert = f" --cacert {c.tls_dir / 'ca.crt'}" if c.tls else ""
    grpcurl_tls = f"-cacert {c.tls_dir / 'ca.crt'}" if c.tls else "-plaintext"
    split = fitedge.live_split(c.admin_url) or fitedge.read_runtime(c.runtime_dir)
    coaches = ", ".join(c.coach_target(i) for i in range(c.coach_instances))
    realtimes = ", ".join(c.realtime_target(i) for i in range(c.realtime_instances))
    monitor = (
        f"; monitoring http://127.0.0.1:{c.nats_monitor_port}/jsz" if c.nats_monitor_port else ""
    )
    return "\n".join(
        [
            "",
            "The Fit Company is running:",
            f"  API (JSON + gRPC)  {c.envoy_url}    via Envoy",
            *(
                [
                    f"  TLS                CA {c.tls_dir / 'ca.crt'} (curl --cacert ...); "
                    f"http://{c.host}:{c.envoy_port} redirects"
                ]
                if c.tls
                else []
            ),
            f"  Envoy admin        {c.admin_url}  (metrics: /stats/prometheus)",
            f"  service metrics    http://127.0.0.1:{c.metrics_port}/metrics (monolith), "
            f"+1.. (coaches)"
            if c.metrics_port
            else "  service metrics    off (FITCO_METRICS_PORT=0)",
            *(
                [f"  billing metrics    http://127.0.0.1:{c.billing_metrics}/metrics"]
                if c.billing_metrics
                else []
            ),
            *(
                [
                    f"  realtime metrics   http://127.0.0.1:{c.realtime_metrics(0)}/metrics, "
                    f"+1.. (instances)"
                ]
                if c.realtime_metrics(0)
                else []
            ),
            f"  monolith gRPC      {c.monolith_target}",
            f"  coach gRPC         {coaches}",
            f"  billing gRPC       {c.billing_target}  (database: {_safe_url(c.billing_db_url())})",
            f"  realtime gRPC      {realtimes}  (events, groups; database: "
            f"{_safe_url(c.realtime_db_url())})",
            f"  NATS (JetStream)   {c.nats_url}  (event log in {c.nats_dir}{monitor})",
            f"  sandbox provider   {c.sandbox_url}  (test cards: POST /v1/tokens; see README)",
            f"                     webhooks to {c.webhook_url}",
            f"  WOD split          legacy {split.legacy if split else '?'} / "
            f"coach {split.coach if split else '?'}  (change: ./fit shift wod --coach 10)",
            f"  data directory     {c.data_dir}  (SQLite unless DATABASE_URL is set)",
            f"  bootstrap key      {c.data_dir / 'keys' / 'bootstrap.key'}",
            f"  supervisor         {VENV_BIN / 'supervisorctl'} -c {mesh.config_path} status",
            "                     (restarts any process that dies; logs each exit above)",
            "",
            "Try it:",
            f"  curl{cacert} {c.envoy_url}/health",
            f"  curl{cacert} {c.envoy_url}/fitness/exercises/1",
            f"  curl{cacert} {c.envoy_url}/v1/plans",
            f"  grpcurl {grpcurl_tls} {c.envoy_target} list",
            f'  curl{cacert} -N -H "Authorization: Bearer $TOKEN" {c.envoy_url}/v1/events:watch'
            "   (your events, live; README: Real time)",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    """`./fit run`: the mesh under supervisord until Ctrl-C, SIGTERM or SIGHUP. A program that
    dies is restarted by supervisord (which logs it); the mesh keeps running."""
    config = MeshConfig.from_env()
    if getattr(args, "tls", False):
        config.tls = True
    mesh = Mesh(config)
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, on_signal)
    code = 0
    try:
        mesh.start()
        print(banner(mesh), flush=True)
        code = mesh.wait() or 1
        print(f"run: supervisord exited ({code})", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        print("stopping ...", flush=True)
        mesh.stop()
    return code
