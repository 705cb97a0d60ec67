"""Shared fixtures: real databases (a SQLite file and PostgreSQL), keys, in-process servers."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2_grpc
from fitco.coach.v1 import coach_pb2_grpc
from fitco.history.v1 import history_pb2_grpc
from fitco.system.v1 import system_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fitcore.clock import FixedClock
from fitcore.config import Env
from fitcore.keys import ensure_dev_keys, load_service_private_key
from fitcore.service_auth import ServiceTokenMinter
from monolith import migrations
from monolith.app import Monolith, build
from tests.natsfix import nats_server  # noqa: F401  (fixture)

PG_ENV = "FITCO_TEST_POSTGRES_URL"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("FITCO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{PG_ENV} is not set but FITCO_REQUIRE_POSTGRES=1")
        pytest.skip(f"{PG_ENV} not set (./fit test sets it up)")
    return url


class Databases:
    """Creates throw-away databases on a backend and drops them afterwards."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self._created: list[str] = []

    def new(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / f'fitco-{uuid.uuid4().hex[:8]}.db'}"
        admin = _postgres_admin_url()
        name = f"fitco_test_{uuid.uuid4().hex[:12]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self._created.append(name)
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self._created:
            return
        engine = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self._created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    dbs = Databases(request.param, tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="module")
def migrated_url(databases: Databases) -> str:
    url = databases.new()
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    ensure_dev_keys(Env({"FITCO_DATA_DIR": str(path)}))
    return path


def make_env(key_dir: Path, url: str, **extra: str) -> Env:
    return Env(
        {
            "FITCO_DATA_DIR": str(key_dir),
            "DATABASE_URL": url,
            "FITCO_MONOLITH_GRACE_SECONDS": "2",
            "FITCO_MONOLITH_READINESS_INTERVAL": "0.2",
            # No billing unless a test starts one (tests/service/billing_double.py): nothing
            # listens there, so every user has the free plan (the entitlements fallback).
            "FITCO_BILLING_TARGET": "127.0.0.1:1",
            **extra,
        }
    )


def bootstrap_key(key_dir: Path) -> str:
    return (key_dir / "keys" / "bootstrap.key").read_text().strip()


@dataclass
class Client:
    channel: grpc.Channel
    users: user_pb2_grpc.UserServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    history: history_pb2_grpc.HistoryServiceStub
    coach: coach_pb2_grpc.CoachServiceStub
    system: system_pb2_grpc.SystemServiceStub


def client_for(target: str) -> Client:
    channel = grpc.insecure_channel(target)
    return Client(
        channel,
        user_pb2_grpc.UserServiceStub(channel),
        catalog_pb2_grpc.CatalogServiceStub(channel),
        history_pb2_grpc.HistoryServiceStub(channel),
        coach_pb2_grpc.CoachServiceStub(channel),
        system_pb2_grpc.SystemServiceStub(channel),
    )


@dataclass
class RunningMonolith:
    app: Monolith
    clock: FixedClock
    client: Client
    key_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 20, 9, 30, tzinfo=UTC))


@contextmanager
def running_monolith(env: Env, clock: FixedClock, key_dir: Path) -> Iterator[RunningMonolith]:
    """An in-process monolith on 127.0.0.1:0 with a client; stopped at the end."""
    app = build(env, clock=clock, address="127.0.0.1:0")
    app.service.start()
    client = client_for(f"127.0.0.1:{app.port}")
    try:
        yield RunningMonolith(app, clock, client, key_dir)
    finally:
        client.channel.close()
        app.stop()


@pytest.fixture
def monolith(migrated_url: str, key_dir: Path, clock: FixedClock) -> Iterator[RunningMonolith]:
    with running_monolith(make_env(key_dir, migrated_url), clock, key_dir) as running:
        yield running


def token_claims(user_id: int, **override: Any) -> dict[str, Any]:
    """What the monolith puts in a user's access token, with `override` applied (None removes
    a claim): for tests that forge tokens."""
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": "fitco",
        "aud": "fitco-api",
        "sub": str(user_id),
        "role": "user",
        "email": "x@example.com",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "tv": 0,
    }
    out.update(override)
    return {k: v for k, v in out.items() if v is not None}


@dataclass
class UserSession:
    id: int
    email: str
    password: str
    token: str

    @property
    def md(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token}"),)


def register(client: Client, name: str = "Test User") -> UserSession:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    password = "s3cret-passw0rd"
    resp = client.users.RegisterUser(
        user_pb2.RegisterUserRequest(email=email, name=name, password=password)
    )
    return UserSession(resp.user.id, email, password, resp.access_token)


def onboard(client: Client, user: UserSession, goal: str = "muscle_gain") -> None:
    client.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(weight=80, height=180, fitness_goal=goal),
        metadata=user.md,
    )


def service_md(key_dir: Path, service: str = "coach") -> tuple[tuple[str, str], ...]:
    """A service's identity (its development key in key_dir) as call metadata: what an
    INTERNAL RPC requires besides the user's token."""
    env = Env({"FITCO_DATA_DIR": str(key_dir)})
    return (ServiceTokenMinter(service, load_service_private_key(env, service)).metadata(),)
