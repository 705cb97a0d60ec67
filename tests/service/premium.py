"""Premium in service tests: the real billing service in process beside the `monolith` fixture
(its own throw-away database, the payment provider double of tests/service/billing_fakes.py),
and users made premium the way users are, by paying (Checkout with the double's good card), or
free again by cancelling.

The coach and the monolith learn entitlements from billing at FITCO_BILLING_TARGET; a monolith
that should see them is built with billing's address before billing starts (`free_port`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import pytest
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc

from billing.app import Billing
from billing.app import build as build_billing
from billing.migrations import MIGRATIONS
from devtools.ports import free_port
from tests.conftest import Databases, RunningMonolith, UserSession, make_env
from tests.service.billing_fakes import FakeProvider

GOOD_CARD = "tok_visa"  # the provider double's card that pays


@pytest.fixture(scope="module", name="premium_billing_url")
def billing_database(databases: Databases) -> str:
    """The `premium_billing_url` fixture: billing's own database, migrated, for the test
    module (import `billing_database` into a test module to use it)."""
    url = databases.new()
    MIGRATIONS.upgrade(url)
    return url


@dataclass
class RunningBilling:
    app: Billing
    stub: billing_pb2_grpc.BillingServiceStub
    target: str

    def upgrade(self, user: UserSession, plan: str = "premium_monthly") -> None:
        resp = self.stub.Checkout(
            billing_pb2.CheckoutRequest(plan_id=plan, payment_method_token=GOOD_CARD),
            metadata=(*user.md, ("idempotency-key", uuid.uuid4().hex)),
        )
        assert resp.entitlements.premium, resp

    def cancel(self, user: UserSession) -> None:
        resp = self.stub.CancelSubscription(
            billing_pb2.CancelSubscriptionRequest(at_period_end=False), metadata=user.md
        )
        assert not resp.entitlements.premium, resp


def billing_address() -> str:
    """A free loopback address for billing, known before it starts."""
    return f"127.0.0.1:{free_port()}"


@contextmanager
def running_billing(
    monolith: RunningMonolith, url: str, address: str | None = None
) -> Iterator[RunningBilling]:
    """Billing on `address` (a free port when None), checking tokens with `monolith`."""
    address = address or billing_address()
    env = make_env(
        monolith.key_dir,
        monolith.app.db.engine.url.render_as_string(hide_password=False),
        BILLING_DATABASE_URL=url,
        FITCO_MONOLITH_TARGET=monolith.target,
        FITCO_BILLING_GRACE_SECONDS="1",
        FITCO_BILLING_READINESS_INTERVAL="0.5",
    )
    app = build_billing(env, clock=monolith.clock, address=address, provider=FakeProvider())
    app.start()
    channel = grpc.insecure_channel(address)
    try:
        yield RunningBilling(app, billing_pb2_grpc.BillingServiceStub(channel), address)
    finally:
        channel.close()
        app.stop()
