"""Wiring of the realtime service (adr/10-real-time.md): an asyncio gRPC server
(fitcore.aio_server) with its features, the per-user event streams (realtime.events) and the
live group sessions (realtime.groups), over one NATS connection (realtime.bus).

Who the callers are: users, through the edge or directly; their access tokens are verified here
(signature, expiry, audience) and checked against revocation with the monolith's CheckToken,
cached per user for FITCO_TOKEN_VERSION_CACHE_SECONDS (fitcore.token_check).

Starting: the server answers health at once (liveness SERVING); it is ready once NATS is
connected, every feature started and the groups' database answers at its schema. Stopping:
NOT_SERVING, every stream closed (watchers end with OK, group members are told), the server
stopped with REALTIME_GRACE_SECONDS, then NATS and the database let go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol

import grpc
from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2

from fitcore.aio_server import AioServerSettings, AioService
from fitcore.auth import TokenVerifier
from fitcore.clock import Clock
from fitcore.config import ConfigError, Env
from fitcore.db import db_error_to_service_error
from fitcore.errors import ServiceError
from fitcore.interceptor import AccessPolicy
from fitcore.keys import ensure_dev_keys, load_public_key, load_service_private_key
from fitcore.service_auth import ServiceTokenMinter
from fitcore.settings import clock_from_env, token_settings
from fitcore.token_check import MonolithTokenCheck
from fitcore.token_versions import DEFAULT_TTL_SECONDS, TokenVersionCache
from realtime.bus import Bus, bus_error_to_service_error
from realtime.events import build_events
from realtime.groups import build_groups

log = logging.getLogger("realtime")

DEFAULT_ADDRESS = "127.0.0.1:50081"
# The realtime service's identity towards the monolith (`service:realtime` in its tokens).
SERVICE_NAME = "realtime"
# Each feature and its contract (its access table, health and reflection names).
CONTRACTS: dict[str, ModuleType] = {"events": events_pb2, "groups": groups_pb2}
FEATURES = tuple(CONTRACTS)
# Who may call the realtime service's RPCs (with every feature): their access options.
POLICY = AccessPolicy.of_modules(*CONTRACTS.values())


class Feature(Protocol):
    """A part of the service: its servicers, started once NATS is connected."""

    def register(self, server: grpc.aio.Server) -> None: ...

    def ready(self) -> bool:
        """May block (a database ping): called on a thread."""
        ...

    async def start(self) -> None: ...

    async def close_streams(self) -> None:
        """End its streams for a shutdown (NATS and the database are still there)."""
        ...

    async def stop(self) -> None: ...


def map_error(exc: BaseException) -> ServiceError | None:
    """The database or the bus failing under an RPC: UNAVAILABLE, not INTERNAL."""
    return db_error_to_service_error(exc) or bus_error_to_service_error(exc)


class Realtime:
    def __init__(
        self,
        *,
        settings: AioServerSettings,
        verifier: TokenVerifier,
        bus: Bus,
        features: dict[str, Feature],
        monolith: MonolithTokenCheck,
    ) -> None:
        self.bus = bus
        self.features = features
        self.monolith = monolith
        self._started = False
        policy = AccessPolicy.of_modules(*(CONTRACTS[name] for name in features))
        self.service = AioService(
            settings=settings,
            service_names=policy.table.services,
            register=[f.register for f in features.values()],
            policy=policy,
            verifier=verifier,
            readiness=self.ready,
            error_mapper=map_error,
            close_streams=[f.close_streams for f in features.values()],
        )

    @property
    def port(self) -> int:
        return self.service.port

    async def ready(self) -> bool:
        if not (self._started and self.bus.connected):
            return False
        for feature in self.features.values():
            if not await asyncio.to_thread(feature.ready):
                return False
        return True

    async def start(self) -> None:
        """Serve (health at once), connect to NATS (waiting for it), start the features."""
        await self.service.start()
        await self.bus.connect()
        for feature in self.features.values():
            await feature.start()
        self._started = True
        await self.service.check_readiness()

    async def stop(self) -> None:
        await self.service.stop()
        for name, feature in self.features.items():
            try:
                await feature.stop()
            except Exception:
                log.exception("stopping a feature failed", extra={"feature": name})
        await self.bus.close()
        self.monolith.close()


def build(
    env: Env,
    *,
    clock: Clock | None = None,
    address: str | None = None,
    features: Sequence[str] = FEATURES,
) -> Realtime:
    """The realtime service with `features` (default: all), not started yet."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise ConfigError(f"unknown realtime features: {unknown} (known: {list(FEATURES)})")
    ensure_dev_keys(env)
    tokens = token_settings(env)
    clock = clock or clock_from_env(env)
    bus = Bus.from_env(env)
    parts: dict[str, Feature] = {}
    if "events" in features:
        parts["events"] = build_events(env, bus, clock)
    if "groups" in features:
        groups = build_groups(env, nc=bus.nc, clock=clock)
        # Group messages are at most once on the bus: after a reconnect, members catch up from
        # the database at once rather than at the next presence refresh.
        bus.on_reconnect(groups.hub.catch_up)
        parts["groups"] = groups
    monolith = MonolithTokenCheck(
        env.get_str("FITCO_MONOLITH_TARGET", "127.0.0.1:50051"),
        env.get_float("REALTIME_MONOLITH_DEADLINE_SECONDS", 2.0),
        ServiceTokenMinter(SERVICE_NAME, load_service_private_key(env, SERVICE_NAME)),
    )
    verifier = TokenVerifier(
        load_public_key(env),
        tokens,
        TokenVersionCache(
            monolith.token_version,
            env.get_float("FITCO_TOKEN_VERSION_CACHE_SECONDS", DEFAULT_TTL_SECONDS),
        ),
    )
    settings = AioServerSettings.from_env(env, "REALTIME", DEFAULT_ADDRESS).with_address(address)
    return Realtime(
        settings=settings, verifier=verifier, bus=bus, features=parts, monolith=monolith
    )
