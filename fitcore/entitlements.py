"""What the caller's plan allows, asked of billing (`BillingService.GetEntitlements`): the one
client every service that enforces a premium feature uses (the coach: WOD size, regenerations,
nutrition detail; the monolith: the legacy WOD, regenerations, statistics).

- Who asks: GetEntitlements is INTERNAL, so the calling service sends its own service token
  (`coach` or `monolith`) beside the user's token, for whose user billing answers, and the
  request id; every call has a deadline.
- Cached per user for a few seconds (`FITCO_ENTITLEMENTS_TTL_SECONDS`, 5 by default, in a
  bounded LRU): a payment takes effect within that time and so does a subscription's end,
  while billing is asked at most once per user per TTL per process. Why a brief cache of a gRPC
  answer rather than a claim in the access token: adr/08-entitlements.md.
- Failure policy: when billing cannot answer (down, slow, refusing, a broken answer), the
  FREE plan's allowance, with `fallback` set; logged and counted in
  `fitco_entitlements_fallback_total{reason}`. A user's request never fails because billing
  did: the premium extras pause, the free product keeps working. The fallback is cached like an
  answer, so an outage costs one failed call per user per TTL, not one per request.
- The free allowance is billing's own data, `billing.plans.FREE_ALLOWANCE`, imported rather
  than mirrored: one fact, one place. `billing.plans` is pure data (standard library only), so
  the coach and the monolith depend on a table of numbers, not on billing's code or database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import grpc
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc
from prometheus_client import Counter, Histogram

from billing.plans import FREE, FREE_ALLOWANCE
from fitcore.auth import Principal
from fitcore.cache import LruCache
from fitcore.clients import forwarded_metadata, mesh_channel
from fitcore.config import Env
from fitcore.errors import PermissionDenied
from fitcore.keys import load_service_private_key
from fitcore.service_auth import ServiceTokenMinter

log = logging.getLogger("fitcore.entitlements")

DEFAULT_TARGET: Final = "127.0.0.1:50071"  # billing's gRPC address (FITCO_BILLING_TARGET)
DEFAULT_TTL_SECONDS: Final = 5.0
DEFAULT_DEADLINE_SECONDS: Final = 1.0
DEFAULT_MAX_ENTRIES: Final = 100_000
# The most exercises a WOD may hold: the history contract's RecordWodRequest.items max_items.
MAX_WOD_EXERCISES: Final = 12
PREMIUM_REQUIRED: Final = "PREMIUM_REQUIRED"  # the ErrorInfo reason of a premium-only feature

FALLBACKS = Counter(
    "fitco_entitlements_fallback_total",
    "Entitlements answered with the free allowance because billing could not be asked",
    ["reason"],
)
CALL_SECONDS = Histogram(
    "fitco_entitlements_call_seconds",
    "Calls to billing's GetEntitlements",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@dataclass(frozen=True, slots=True)
class Entitlements:
    """What the user's plan allows now (fitco.billing.v1.Entitlements, as plain values)."""

    premium: bool
    plan_id: str
    wod_exercises: int
    wod_regenerations_per_day: int
    nutrition_detail: bool
    stats_history_weeks: int  # 0 = unlimited
    # True when billing could not be asked: the free allowance by policy, not the user's plan.
    fallback: bool = False


FREE_ENTITLEMENTS: Final = Entitlements(
    premium=False,
    plan_id=FREE,
    wod_exercises=FREE_ALLOWANCE.wod_exercises,
    wod_regenerations_per_day=FREE_ALLOWANCE.wod_regenerations_per_day,
    nutrition_detail=FREE_ALLOWANCE.nutrition_detail,
    stats_history_weeks=FREE_ALLOWANCE.stats_history_weeks,
)
FALLBACK: Final = replace(FREE_ENTITLEMENTS, fallback=True)


def from_proto(msg: billing_pb2.Entitlements) -> Entitlements:
    """Billing's answer, kept within what the other services can serve: never a smaller WOD
    than the free plan's nor one larger than the history accepts, no negative allowance."""
    return Entitlements(
        premium=msg.premium,
        plan_id=msg.plan_id or FREE,
        wod_exercises=min(
            max(msg.wod_exercises, FREE_ENTITLEMENTS.wod_exercises), MAX_WOD_EXERCISES
        ),
        wod_regenerations_per_day=max(msg.wod_regenerations_per_day, 0),
        nutrition_detail=msg.nutrition_detail,
        stats_history_weeks=max(msg.stats_history_weeks, 0),
    )


def premium_required(feature: str, entitlements: Entitlements) -> PermissionDenied:
    """The refusal of a premium feature to a user whose plan lacks it: PERMISSION_DENIED with
    reason PREMIUM_REQUIRED and a message that says how to get it."""
    message = f"{feature} is a premium feature: upgrade to premium (POST /v1/billing/checkout)"
    if entitlements.fallback:
        message += "; your plan could not be checked just now: if you are premium, retry shortly"
    return PermissionDenied(message, reason=PREMIUM_REQUIRED)


class EntitlementsClient:
    """`get(principal)`: the principal's entitlements, from memory for `ttl_seconds`."""

    def __init__(
        self,
        target: str,
        identity: ServiceTokenMinter | None,
        *,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.deadline = deadline
        # Who this service is to billing; without it GetEntitlements is refused (the fallback).
        self.identity = identity
        self._cache: LruCache[int, Entitlements] = LruCache(max_entries, ttl_seconds, monotonic)
        self.channel = mesh_channel(target)
        self._stub = billing_pb2_grpc.BillingServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def get(self, principal: Principal) -> Entitlements:
        cached = self._cache.get(principal.user_id)
        if cached is not None:
            return cached
        # Outside any lock: two requests of one user may both ask; the answer is the same.
        answer = self._ask(principal)
        self._cache.put(principal.user_id, answer)
        return answer

    def forget(self, user_id: int) -> None:
        """Ask billing again on the user's next request (this process learnt of a change)."""
        self._cache.pop(user_id)

    def _ask(self, principal: Principal) -> Entitlements:
        started = time.perf_counter()
        outcome = "ok"
        try:
            resp: billing_pb2.GetEntitlementsResponse = self._stub.GetEntitlements(
                billing_pb2.GetEntitlementsRequest(),
                timeout=self.deadline,
                metadata=forwarded_metadata(principal, self.identity),
            )
            return from_proto(resp.entitlements)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            outcome = code.name if isinstance(code, grpc.StatusCode) else "ERROR"
            return self._fallback(outcome, exc)
        except Exception as exc:  # a broken answer must not fail the user's request
            outcome = type(exc).__name__
            return self._fallback(outcome, exc)
        finally:
            CALL_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    def _fallback(self, reason: str, exc: BaseException) -> Entitlements:
        FALLBACKS.labels(reason).inc()
        details = getattr(exc, "details", None)
        detail = str(details() or "") if callable(details) else str(exc)
        log.warning(
            "billing did not answer GetEntitlements: the free allowance applies",
            extra={"reason": reason, "target": self.target, "detail": detail[:300]},
        )
        return FALLBACK


def entitlements_from_env(env: Env, service: str) -> EntitlementsClient:
    """The client of `service` ("coach", "monolith"): billing at FITCO_BILLING_TARGET, this
    service's identity key (fitcore.keys.load_service_private_key), the deadline
    (FITCO_ENTITLEMENTS_DEADLINE_SECONDS) and the cache's lifetime and size
    (FITCO_ENTITLEMENTS_TTL_SECONDS, FITCO_ENTITLEMENTS_CACHE_ENTRIES)."""
    return EntitlementsClient(
        env.get_str("FITCO_BILLING_TARGET", DEFAULT_TARGET),
        ServiceTokenMinter(service, load_service_private_key(env, service)),
        deadline=env.get_float("FITCO_ENTITLEMENTS_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS),
        ttl_seconds=env.get_float("FITCO_ENTITLEMENTS_TTL_SECONDS", DEFAULT_TTL_SECONDS),
        max_entries=env.get_int("FITCO_ENTITLEMENTS_CACHE_ENTRIES", DEFAULT_MAX_ENTRIES),
    )
