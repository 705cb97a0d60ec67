"""Wiring of the monolith: configuration, domain objects, servicers and the gRPC server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from fitco.system.v1 import system_pb2, system_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy.engine import make_url

from fitcore.auth import Access, TokenVerifier
from fitcore.clock import Clock
from fitcore.config import Env, data_dir
from fitcore.interceptor import AccessPolicy
from fitcore.keys import ensure_dev_keys, load_bootstrap_key, load_private_key, load_public_key
from fitcore.server import CachedCheck, ServerSettings, Service
from fitcore.settings import clock_from_env, token_settings
from monolith import __version__
from monolith.api.catalog import CatalogServicer
from monolith.api.coach import LegacyCoachServicer
from monolith.api.history import HistoryServicer
from monolith.api.legacy import LegacyServicer
from monolith.api.system import SystemServicer
from monolith.api.users import UserServicer
from monolith.db import Database, db_error_to_service_error, default_sqlite_url, make_engine
from monolith.domain.accounts import Accounts
from monolith.domain.catalog import Catalog
from monolith.domain.history import History
from monolith.domain.legacy_wod import LegacyWod
from monolith.domain.login_backoff import BackoffPolicy, LoginBackoff
from monolith.domain.passwords import (
    DEFAULT_MAX_WAITING_PER_SLOT,
    DEFAULT_WAIT_SECONDS,
    Passwords,
    default_concurrency,
)
from monolith.domain.tokens import TokenIssuer
from monolith.migrations import current_revision, head_revision

log = logging.getLogger("monolith")

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _name(descriptor_module: object, service: str) -> str:
    return str(descriptor_module.DESCRIPTOR.services_by_name[service].full_name)  # type: ignore[attr-defined]


USER = _name(user_pb2, "UserService")
CATALOG = _name(catalog_pb2, "CatalogService")
HISTORY = _name(history_pb2, "HistoryService")
COACH = _name(coach_pb2, "CoachService")
SYSTEM = _name(system_pb2, "SystemService")
LEGACY = _name(legacy_pb2, "LegacyService")

POLICY = AccessPolicy(
    {
        f"/{USER}/RegisterUser": Access.PUBLIC,
        f"/{USER}/Login": Access.PUBLIC,
        f"/{USER}/IssueToken": Access.PUBLIC,
        f"/{USER}/BootstrapAdmin": Access.PUBLIC,  # guarded by the bootstrap key
        f"/{USER}/CreateUser": Access.ADMIN,
        f"/{USER}/ListUsers": Access.ADMIN,
        f"/{CATALOG}/ListExercises": Access.PUBLIC,
        f"/{CATALOG}/GetExercise": Access.PUBLIC,
        f"/{CATALOG}/ListMuscleGroups": Access.PUBLIC,
        f"/{CATALOG}/GetCatalog": Access.PUBLIC,
        f"/{LEGACY}/ListUsers": Access.ADMIN,
        f"/{LEGACY}/ListExercises": Access.PUBLIC,
        f"/{LEGACY}/GetExercise": Access.PUBLIC,
        f"/{SYSTEM}/GetHealth": Access.PUBLIC,
    }
)


def database_url(env: Env) -> str:
    """DATABASE_URL (default: a SQLite file in the data directory). The password may come from
    a mounted secret file instead of the URL: FITCO_DATABASE_PASSWORD_FILE."""
    url = env.get_str("DATABASE_URL", default_sqlite_url(data_dir(env)))
    password_file = env.optional("FITCO_DATABASE_PASSWORD_FILE")
    if password_file:
        password = Path(password_file).read_text().strip()
        url = make_url(url).set(password=password).render_as_string(hide_password=False)
    return url


@dataclass
class Monolith:
    service: Service
    db: Database
    legacy: LegacyWod

    @property
    def port(self) -> int:
        return self.service.port

    def stop(self) -> None:
        self.service.stop()
        self.db.dispose()


def build(env: Env, *, clock: Clock | None = None, address: str | None = None) -> Monolith:
    ensure_dev_keys(env)
    tokens = token_settings(env)
    clock = clock or clock_from_env(env)
    db = Database(
        make_engine(
            database_url(env),
            env.get_int("FITCO_DB_POOL_SIZE", 10),
            connect_timeout=env.get_float("FITCO_DB_CONNECT_TIMEOUT", 3.0),
            pool_timeout=env.get_float("FITCO_DB_POOL_TIMEOUT", 5.0),
        )
    )
    revision, head = current_revision(db.engine), head_revision()
    if revision != head:
        log.error(
            "database schema is not current: run migrations",
            extra={"revision": revision, "head": head},
        )
    catalog = Catalog(db, env.get_float("FITCO_CATALOG_TTL_SECONDS", 60.0))
    hash_slots = env.get_int("FITCO_HASH_CONCURRENCY", default_concurrency())
    passwords = Passwords(
        concurrency=hash_slots,
        wait_seconds=env.get_float("FITCO_HASH_WAIT_SECONDS", DEFAULT_WAIT_SECONDS),
        max_waiting=env.get_int(
            "FITCO_HASH_MAX_WAITING", hash_slots * DEFAULT_MAX_WAITING_PER_SLOT
        ),
    )
    backoff = LoginBackoff(
        BackoffPolicy(
            threshold=env.get_int("FITCO_LOGIN_FAILURES_BEFORE_BACKOFF", 5),
            base_seconds=env.get_float("FITCO_LOGIN_BACKOFF_SECONDS", 1.0),
            max_seconds=env.get_float("FITCO_LOGIN_BACKOFF_MAX_SECONDS", 900.0),
        )
    )
    accounts = Accounts(
        db,
        passwords,
        TokenIssuer(load_private_key(env), tokens, env.get_int("FITCO_TOKEN_TTL_SECONDS", 1800)),
        load_bootstrap_key(env),
        clock,
        backoff,
    )
    history = History(db, catalog, clock)
    legacy = LegacyWod(history, catalog, accounts)

    def ready() -> bool:
        return db.ping() and current_revision(db.engine) == head

    settings = ServerSettings.from_env(env, "FITCO_MONOLITH", DEFAULT_ADDRESS).with_address(address)
    user = UserServicer(accounts, catalog)
    cat = CatalogServicer(catalog)
    hist = HistoryServicer(history)
    coach = LegacyCoachServicer(legacy, catalog, accounts)
    system = SystemServicer(CachedCheck(ready, ttl=1.0), __version__)
    legacy_api = LegacyServicer(accounts, catalog)
    service = Service(
        settings=settings,
        service_names=[USER, CATALOG, HISTORY, COACH, SYSTEM, LEGACY],
        register=[
            lambda s: user_pb2_grpc.add_UserServiceServicer_to_server(user, s),
            lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(cat, s),
            lambda s: history_pb2_grpc.add_HistoryServiceServicer_to_server(hist, s),
            lambda s: coach_pb2_grpc.add_CoachServiceServicer_to_server(coach, s),
            lambda s: system_pb2_grpc.add_SystemServiceServicer_to_server(system, s),
            lambda s: legacy_pb2_grpc.add_LegacyServiceServicer_to_server(legacy_api, s),
        ],
        policy=POLICY,
        verifier=TokenVerifier(load_public_key(env), tokens),
        readiness=ready,
        error_mapper=db_error_to_service_error,
    )
    return Monolith(service, db, legacy)
