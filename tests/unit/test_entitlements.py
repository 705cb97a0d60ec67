"""The entitlements client (fitcore.entitlements) against a stand-in BillingService (a test
double of the contract on a real gRPC server): what it sends, its per-user cache and its TTL,
and the failure policy (billing down, slow or failing → the free allowance, counted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc
from prometheus_client import REGISTRY

from billing.plans import FREE, PLANS
from devtools.ports import free_port
from fitcore.auth import Principal
from fitcore.entitlements import (
    FALLBACK,
    FREE_ENTITLEMENTS,
    PREMIUM_REQUIRED,
    EntitlementsClient,
    from_proto,
    premium_required,
)
from fitcore.service_auth import SERVICE_TOKEN_HEADER, ServiceTokenMinter

PREMIUM = billing_pb2.Entitlements(
    premium=True,
    plan_id="premium_monthly",
    wod_exercises=9,
    wod_regenerations_per_day=3,
    nutrition_detail=True,
    stats_history_weeks=0,
)


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeBilling(billing_pb2_grpc.BillingServiceServicer):
    """Answers `answer`, or fails with `fail`, after `delay` seconds; records what it got."""

    answer: billing_pb2.Entitlements = field(default_factory=lambda: PREMIUM)
    fail: grpc.StatusCode | None = None
    delay: float = 0.0
    calls: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def GetEntitlements(
        self, request: billing_pb2.GetEntitlementsRequest, context: grpc.ServicerContext
    ) -> billing_pb2.GetEntitlementsResponse:
        with self.lock:
            self.calls.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            context.abort(self.fail, "billing is having a bad day")
        return billing_pb2.GetEntitlementsResponse(entitlements=self.answer)


@dataclass
class Served:
    fake: FakeBilling
    target: str


@pytest.fixture
def billing() -> Iterator[Served]:
    fake = FakeBilling()  # type: ignore[abstract]  # a double of GetEntitlements only
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    billing_pb2_grpc.add_BillingServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Served(fake, f"127.0.0.1:{port}")
    finally:
        server.stop(0)


def _user(user_id: int = 7) -> Principal:
    return Principal(user_id, "a@example.com", "A", "user", token=f"user-token-{user_id}")


def _client(target: str, clock: Clock | None = None, **kw: float) -> EntitlementsClient:
    minter = ServiceTokenMinter("coach", Ed25519PrivateKey.generate())
    return EntitlementsClient(
        target,
        minter,
        deadline=kw.get("deadline", 1.0),
        ttl_seconds=kw.get("ttl", 5.0),
        max_entries=int(kw.get("max_entries", 100)),
        monotonic=clock or Clock(),
    )


def _fallbacks(reason: str) -> float:
    value = REGISTRY.get_sample_value("fitco_entitlements_fallback_total", {"reason": reason})
    return value or 0.0


def test_asks_billing_with_the_users_token_and_its_own_identity(billing: Served) -> None:
    client = _client(billing.target)
    got = client.get(_user())
    assert got.premium and got.wod_exercises == 9 and not got.fallback
    (md,) = billing.fake.calls
    assert md["authorization"] == "Bearer user-token-7"
    assert md[SERVICE_TOKEN_HEADER].count(".") == 2  # a JWT: the caller's service token
    assert "x-request-id" in md
    client.close()


def test_answers_are_kept_per_user_for_the_ttl(billing: Served) -> None:
    clock = Clock()
    client = _client(billing.target, clock, ttl=5.0)
    for _ in range(3):
        client.get(_user(1))
    client.get(_user(2))
    assert len(billing.fake.calls) == 2  # once per user
    billing.fake.answer = billing_pb2.Entitlements(plan_id=FREE, wod_exercises=6)
    clock.t += 4.9
    assert client.get(_user(1)).premium  # still within the TTL
    clock.t += 0.1
    assert not client.get(_user(1)).premium  # a cancellation shows once the TTL is over
    assert len(billing.fake.calls) == 3
    client.forget(2)
    assert not client.get(_user(2)).premium
    client.close()


def test_the_cache_is_bounded(billing: Served) -> None:
    client = _client(billing.target, max_entries=2)
    for user_id in (1, 2, 3, 1):
        client.get(_user(user_id))
    assert len(billing.fake.calls) == 4  # user 1 was evicted by user 3
    client.close()


def test_billing_down_is_the_free_allowance_counted_and_cached() -> None:
    clock = Clock()
    client = _client(f"127.0.0.1:{free_port()}", clock, ttl=5.0)  # nobody listens
    before = _fallbacks("UNAVAILABLE")
    got = client.get(_user())
    assert got == FALLBACK and got.fallback and not got.premium
    assert got.wod_exercises == 6 and got.wod_regenerations_per_day == 0
    assert _fallbacks("UNAVAILABLE") == before + 1
    client.get(_user())  # cached: an outage costs one failed call per user per TTL
    assert _fallbacks("UNAVAILABLE") == before + 1
    clock.t += 5
    client.get(_user())
    assert _fallbacks("UNAVAILABLE") == before + 2
    client.close()


@pytest.mark.parametrize(
    ("fail", "delay", "reason"),
    [
        (grpc.StatusCode.INTERNAL, 0.0, "INTERNAL"),
        (grpc.StatusCode.PERMISSION_DENIED, 0.0, "PERMISSION_DENIED"),
        (None, 0.5, "DEADLINE_EXCEEDED"),
    ],
)
def test_failing_or_slow_billing_is_the_free_allowance(
    billing: Served, fail: grpc.StatusCode | None, delay: float, reason: str
) -> None:
    billing.fake.fail, billing.fake.delay = fail, delay
    client = _client(billing.target, deadline=0.2)
    before = _fallbacks(reason)
    started = time.monotonic()
    assert client.get(_user()) == FALLBACK
    assert time.monotonic() - started < 0.45  # the deadline bounds the wait
    assert _fallbacks(reason) == before + 1
    client.close()


def test_billings_answer_is_kept_within_what_can_be_served() -> None:
    assert from_proto(billing_pb2.Entitlements()).wod_exercises == 6  # never below free
    assert from_proto(billing_pb2.Entitlements(wod_exercises=50)).wod_exercises == 12
    assert (
        from_proto(billing_pb2.Entitlements(wod_regenerations_per_day=-1)).wod_regenerations_per_day
        == 0
    )
    assert from_proto(PREMIUM).plan_id == "premium_monthly"


def test_the_fallback_is_billings_free_plan() -> None:
    """One fact, one place: billing/plans.py's free allowance, not a copy of it."""
    free = PLANS[FREE].allowance
    got = FREE_ENTITLEMENTS
    assert (
        got.wod_exercises,
        got.wod_regenerations_per_day,
        got.nutrition_detail,
        got.stats_history_weeks,
    ) == (
        free.wod_exercises,
        free.wod_regenerations_per_day,
        free.nutrition_detail,
        free.stats_history_weeks,
    )
    assert not got.premium and got.plan_id == FREE and FALLBACK.fallback


def test_premium_required_says_premium_and_why() -> None:
    refused = premium_required("a new workout of the day", FREE_ENTITLEMENTS)
    assert refused.reason == PREMIUM_REQUIRED and "premium" in refused.message
    assert "could not be checked" not in refused.message
    unsure = premium_required("a new workout of the day", FALLBACK)
    assert "could not be checked" in unsure.message
