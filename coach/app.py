"""Wiring of the coach service."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.nutrition.v1 import nutrition_pb2, nutrition_pb2_grpc

from coach.breaker import CircuitBreaker, State
from coach.catalog_cache import CatalogCache
from coach.monolith_client import MonolithClient
from coach.nutrition_service import NutritionServicer
from coach.service import CoachServicer
from fitcore.auth import TokenVerifier
from fitcore.clock import Clock
from fitcore.config import Env
from fitcore.entitlements import EntitlementsClient, entitlements_from_env
from fitcore.interceptor import AccessPolicy
from fitcore.keys import load_public_key, load_service_private_key
from fitcore.server import ServerSettings, Service
from fitcore.service_auth import ServiceTokenMinter
from fitcore.settings import clock_from_env, token_settings
from fitcore.token_versions import DEFAULT_TTL_SECONDS, TokenVersionCache

log = logging.getLogger("coach")

DEFAULT_ADDRESS = "127.0.0.1:50061"
# Who may call the coach's RPCs: their access options in the contracts. Its services (health,
# reflection) are these modules' too.
POLICY = AccessPolicy.of_modules(coach_pb2, nutrition_pb2)
# The coach's identity towards the monolith and billing (`service:coach` in its service tokens).
SERVICE_NAME = "coach"


@dataclass
class Coach:
    service: Service
    monolith: MonolithClient
    breaker: CircuitBreaker
    catalog: CatalogCache
    entitlements: EntitlementsClient

    @property
    def port(self) -> int:
        return self.service.port

    def stop(self) -> None:
        self.service.stop()
        self.monolith.close()
        self.entitlements.close()


def build(env: Env, *, clock: Clock | None = None, address: str | None = None) -> Coach:
    breaker = CircuitBreaker(
        "monolith",
        threshold=env.get_int("FITCO_BREAKER_THRESHOLD", 3),
        window=env.get_float("FITCO_BREAKER_WINDOW_SECONDS", 10.0),
        open_seconds=env.get_float("FITCO_BREAKER_OPEN_SECONDS", 5.0),
    )
    monolith = MonolithClient(
        env.get_str("FITCO_MONOLITH_TARGET", "127.0.0.1:50051"),
        env.get_float("FITCO_COACH_DEADLINE_SECONDS", 2.0),
        breaker,
        ServiceTokenMinter(SERVICE_NAME, load_service_private_key(env, SERVICE_NAME)),
    )
    catalog = CatalogCache(
        monolith.get_catalog,
        ttl=env.get_float("FITCO_CATALOG_TTL_SECONDS", 60.0),
        max_stale=env.get_float("FITCO_CATALOG_MAX_STALE_SECONDS", 3600.0),
    )
    clock = clock or clock_from_env(env)
    # What each user's plan allows (WOD size, regenerations, nutrition detail), from billing.
    entitlements = entitlements_from_env(env, SERVICE_NAME)
    servicer = CoachServicer(
        monolith,
        catalog,
        clock,
        entitlements,
        cache_entries=env.get_int("FITCO_COACH_CACHE_ENTRIES", 100_000),
        answer_ttl=env.get_float("FITCO_COACH_ANSWER_TTL_SECONDS", 30.0),
    )

    def ready() -> bool:
        """Serving only when it can work: the monolith answers and the catalog is loaded."""
        if breaker.state is State.OPEN or not monolith.healthy():
            return False
        if not catalog.loaded:
            try:
                catalog.get()
            except Exception:
                log.warning("catalog not loaded yet", exc_info=True)
                return False
        return True

    settings = ServerSettings.from_env(env, "FITCO_COACH", DEFAULT_ADDRESS).with_address(address)
    service = Service(
        settings=settings,
        service_names=POLICY.table.services,
        register=[
            lambda s: coach_pb2_grpc.add_CoachServiceServicer_to_server(servicer, s),
            lambda s: nutrition_pb2_grpc.add_NutritionServiceServicer_to_server(
                NutritionServicer(monolith, clock, entitlements), s
            ),
        ],
        policy=POLICY,
        # Revoked tokens (logout, password change) are refused here too, although GetWod is
        # mostly answered from the coach's caches: the monolith is asked at most every
        # FITCO_TOKEN_VERSION_CACHE_SECONDS per user (CheckToken).
        verifier=TokenVerifier(
            load_public_key(env),
            token_settings(env),
            TokenVersionCache(
                monolith.token_version,
                env.get_float("FITCO_TOKEN_VERSION_CACHE_SECONDS", DEFAULT_TTL_SECONDS),
            ),
        ),
        readiness=ready,
    )
    return Coach(service, monolith, breaker, catalog, entitlements)
