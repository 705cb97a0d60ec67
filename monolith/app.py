"""Wiring of the monolith: configuration, domain objects, servicers and the gRPC server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fitco.billing.v1 import billing_pb2
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.events.v1 import events_pb2
from fitco.goals.v1 import goals_pb2, goals_pb2_grpc
from fitco.groups.v1 import groups_pb2
from fitco.history.v1 import history_pb2, history_pb2_grpc
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from fitco.nutrition.v1 import nutrition_pb2
from fitco.system.v1 import system_pb2, system_pb2_grpc
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy.orm import Session

from fitcore.access import service_names
from fitcore.auth import TokenVerifier
from fitcore.clock import Clock
from fitcore.config import Env
from fitcore.db import Database, database_url_from_env, db_error_to_service_error, open_database
from fitcore.entitlements import EntitlementsClient, entitlements_from_env
from fitcore.interceptor import AccessPolicy
from fitcore.keys import (
    ensure_dev_keys,
    load_bootstrap_key,
    load_private_key,
    load_public_key,
    load_service_public_keys,
)
from fitcore.outbox_relay import OutboxRelay
from fitcore.periodic import Periodic
from fitcore.server import CachedCheck, ServerSettings, Service
from fitcore.service_auth import ServiceTokenVerifier
from fitcore.settings import clock_from_env, token_settings
from fitcore.token_versions import DEFAULT_TTL_SECONDS
from monolith import __version__
from monolith.api.catalog import CatalogServicer
from monolith.api.coach import LegacyCoachServicer
from monolith.api.goals import GoalServicer
from monolith.api.history import HistoryServicer
from monolith.api.legacy import LegacyServicer
from monolith.api.system import SystemServicer
from monolith.api.training import TrainingServicer
from monolith.api.users import UserServicer
from monolith.domain.accounts import Accounts
from monolith.domain.catalog import Catalog
from monolith.domain.goals import Goals
from monolith.domain.history import History
from monolith.domain.legacy_wod import LegacyWod
from monolith.domain.login_backoff import BackoffPolicy, LoginBackoff
from monolith.domain.passwords import (
    DEFAULT_MAX_WAITING_PER_SLOT,
    DEFAULT_WAIT_SECONDS,
    Passwords,
    default_concurrency,
)
from monolith.domain.preferences import Preferences
from monolith.domain.profiles import Profiles
from monolith.domain.served_wods import ServedWods
from monolith.domain.sessions import Sessions
from monolith.domain.stats import Stats
from monolith.domain.tokens import TokenIssuer
from monolith.domain.workout_events import Streaks
from monolith.domain.workout_sets import WorkoutSets
from monolith.domain.workout_store import SessionStore
from monolith.domain.workouts import CLOSE_BATCH, Workouts
from monolith.migrations import MIGRATIONS

log = logging.getLogger("monolith")

DEFAULT_ADDRESS = "127.0.0.1:50051"
# The monolith's identity towards billing (`service:monolith`): it asks for the entitlements
# of the legacy WOD and of statistics.
SERVICE_NAME = "monolith"


# Who may call each RPC of the services the monolith serves: the access option of every RPC in
# the contracts (proto/fitco/access/v1/access.proto), read from the generated descriptors.
POLICY = AccessPolicy.of_modules(
    user_pb2, catalog_pb2, history_pb2, coach_pb2, system_pb2, legacy_pb2, goals_pb2, training_pb2
)


def database_url(env: Env) -> str:
    """DATABASE_URL (default: a SQLite file in the data directory). The password may come from
    a mounted secret file instead of the URL: FITCO_DATABASE_PASSWORD_FILE."""
    return database_url_from_env(env, "DATABASE_URL", "FITCO_DATABASE_PASSWORD_FILE", "fitco.db")


@dataclass
class Monolith:
    service: Service
    db: Database
    legacy: LegacyWod
    entitlements: EntitlementsClient
    # Closing workout sessions left open (those of users who never come back to close them).
    session_sweep: Periodic
    # Publishing the events the domain writes to the outbox (fitcore.outbox) to the bus.
    relay: OutboxRelay

    @property
    def port(self) -> int:
        return self.service.port

    def start_background(self) -> None:
        self.session_sweep.start()
        self.relay.start()

    def stop(self) -> None:
        self.session_sweep.stop()
        self.service.stop()
        self.relay.stop()  # after the server: the last RPCs' events go too
        self.entitlements.close()
        self.db.dispose()


def build(env: Env, *, clock: Clock | None = None, address: str | None = None) -> Monolith:
    ensure_dev_keys(env)
    tokens = token_settings(env)
    clock = clock or clock_from_env(env)
    db, head = open_database(env, database_url(env), MIGRATIONS, log)
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
    issuer = TokenIssuer(
        load_private_key(env), tokens, env.get_int("FITCO_TOKEN_TTL_SECONDS", 1800)
    )
    accounts = Accounts(db, passwords, issuer, load_bootstrap_key(env), clock, backoff)
    sessions = Sessions(
        db,
        passwords,
        issuer,
        clock,
        backoff,
        cache_seconds=env.get_float("FITCO_TOKEN_VERSION_CACHE_SECONDS", DEFAULT_TTL_SECONDS),
    )
    goals = Goals(db, catalog, clock)
    streaks = Streaks(clock)

    def after_logged(s: Session, user_id: int) -> None:
        goals.refresh_in(s, user_id)
        streaks.after_training(s, user_id)  # a logged exercise is training too

    # New weights and logged exercises settle the user's goals in their own transaction.
    history = History(db, catalog, clock, after_logged=after_logged)
    profiles = Profiles(db, clock, after_weight=goals.refresh_in)
    preferences = Preferences(db, clock)
    wods = ServedWods(db, catalog, clock)
    legacy = LegacyWod(db, wods, catalog, clock)
    entitlements = entitlements_from_env(env, SERVICE_NAME)

    def ready() -> bool:
        return db.ping() and MIGRATIONS.current_revision(db.engine) == head

    settings = ServerSettings.from_env(env, "FITCO_MONOLITH", DEFAULT_ADDRESS).with_address(address)
    user = UserServicer(accounts, profiles, preferences, catalog, sessions)
    cat = CatalogServicer(catalog)
    hist = HistoryServicer(history, wods)
    goal_api = GoalServicer(goals)
    coach = LegacyCoachServicer(legacy, catalog, entitlements)
    system = SystemServicer(CachedCheck(ready, ttl=1.0), __version__)
    legacy_api = LegacyServicer(accounts, profiles, catalog)
    session_store = SessionStore(db, catalog, after_training=goals.refresh_in)
    workouts = Workouts(db, session_store, clock)

    def close_stale_sessions() -> None:
        while workouts.close_stale(clock.now()) == CLOSE_BATCH:
            pass  # a full batch: more may be waiting

    training = TrainingServicer(
        workouts,
        WorkoutSets(db, catalog, session_store, clock),
        Stats(db, catalog, session_store, clock),
        entitlements,
    )
    service = Service(
        settings=settings,
        service_names=POLICY.table.services,
        register=[
            lambda s: user_pb2_grpc.add_UserServiceServicer_to_server(user, s),
            lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(cat, s),
            lambda s: history_pb2_grpc.add_HistoryServiceServicer_to_server(hist, s),
            lambda s: goals_pb2_grpc.add_GoalServiceServicer_to_server(goal_api, s),
            lambda s: coach_pb2_grpc.add_CoachServiceServicer_to_server(coach, s),
            lambda s: system_pb2_grpc.add_SystemServiceServicer_to_server(system, s),
            lambda s: legacy_pb2_grpc.add_LegacyServiceServicer_to_server(legacy_api, s),
            lambda s: training_pb2_grpc.add_TrainingServiceServicer_to_server(training, s),
        ],
        policy=POLICY,
        verifier=TokenVerifier(load_public_key(env), tokens, sessions.versions),
        # The services trusted to call INTERNAL RPCs (RecordWod, ExtendWod, ReplaceWod: the
        # coach).
        service_verifier=ServiceTokenVerifier(
            load_service_public_keys(env), leeway_seconds=tokens.leeway_seconds
        ),
        readiness=ready,
        error_mapper=db_error_to_service_error,
        # The edge's reflection is served here: describe the coach's, billing's and the
        # realtime service's too.
        described_elsewhere=service_names(nutrition_pb2, billing_pb2, events_pb2, groups_pb2),
    )
    sweep = Periodic(
        "close-stale-sessions",
        env.get_float("FITCO_SESSION_SWEEP_SECONDS", 600.0),
        close_stale_sessions,
    )
    relay = OutboxRelay.from_env(env, db, SERVICE_NAME)
    return Monolith(service, db, legacy, entitlements, sweep, relay)
