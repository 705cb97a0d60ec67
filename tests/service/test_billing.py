"""The billing service in process (with a monolith for accounts and token checks, and a provider
double), on SQLite and PostgreSQL: checkout with each test card, idempotency (replays, reused
keys, 20 concurrent duplicates → one charge), subscriptions, cancel, admin list and refunds,
entitlements, and that nobody reaches another user's subscription (BOLA)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import grpc
import pytest
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc
from fitco.user.v1 import user_pb2
from google.api import httpbody_pb2
from sqlalchemy import select

from billing.app import Billing, build
from billing.dev_secrets import webhook_secret
from billing.domain import signatures
from billing.migrations import MIGRATIONS
from billing.models import PaymentRow, SubscriptionEventRow
from billing.plans import add_interval
from fitcore.config import Env
from tests.conftest import (
    Databases,
    RunningMonolith,
    UserSession,
    bootstrap_key,
    make_env,
    register,
    service_md,
)
from tests.rpc import error_reason, expect_error, field_violations
from tests.service.billing_fakes import FakeProvider
from tests.service.inproc import first_failure

Md = tuple[tuple[str, str], ...]
_ADMIN_PASSWORDS: dict[str, str] = {}


@pytest.fixture(scope="module")
def billing_url(databases: Databases) -> str:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    return url


@dataclass
class Running:
    app: Billing
    monolith: RunningMonolith
    provider: FakeProvider
    stub: billing_pb2_grpc.BillingServiceStub

    def user(self) -> UserSession:
        return register(self.monolith.client)

    def checkout(
        self, user: UserSession, token: str = "tok_visa", plan: str = "premium_monthly", **kw: str
    ) -> billing_pb2.CheckoutResponse:
        key = kw.get("key", uuid.uuid4().hex)
        return self.stub.Checkout(
            billing_pb2.CheckoutRequest(plan_id=plan, payment_method_token=token),
            metadata=(*user.md, ("idempotency-key", key)),
        )

    def admin(self) -> Md:
        users = self.monolith.client.users
        url = self.monolith.app.db.engine.url.render_as_string(hide_password=False)
        if url not in _ADMIN_PASSWORDS:
            boot = users.BootstrapAdmin(
                user_pb2.BootstrapAdminRequest(email="root@example.com", name="Root"),
                metadata=(("x-bootstrap-key", bootstrap_key(self.monolith.key_dir)),),
            )
            _ADMIN_PASSWORDS[url] = boot.password
        login = users.Login(
            user_pb2.LoginRequest(email="root@example.com", password=_ADMIN_PASSWORDS[url])
        )
        return (("authorization", f"Bearer {login.access_token}"),)

    def entitlements(self, user: UserSession) -> billing_pb2.Entitlements:
        md = (*user.md, *service_md(self.monolith.key_dir, "coach"))
        return self.stub.GetEntitlements(
            billing_pb2.GetEntitlementsRequest(), metadata=md
        ).entitlements

    def audit(self, subscription_id: int) -> list[tuple[str, str, str]]:
        with self.app.db.transaction(write=False) as s:
            rows = s.scalars(
                select(SubscriptionEventRow)
                .where(SubscriptionEventRow.subscription_id == subscription_id)
                .order_by(SubscriptionEventRow.id)
            )
            return [(r.from_status, r.to_status, r.actor) for r in rows]


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> FakeProvider:
    """The provider double; a test may parametrize it indirectly with a delay per charge."""
    return FakeProvider(delay=getattr(request, "param", 0.0))


@pytest.fixture
def billing(
    monolith: RunningMonolith, billing_url: str, provider: FakeProvider
) -> Iterator[Running]:
    url = monolith.app.db.engine.url.render_as_string(hide_password=False)
    env = make_env(
        monolith.key_dir,
        url,
        BILLING_DATABASE_URL=billing_url,
        FITCO_MONOLITH_TARGET=monolith.target,
        FITCO_BILLING_GRACE_SECONDS="1",
        FITCO_BILLING_READINESS_INTERVAL="0.5",
    )
    app = build(env, clock=monolith.clock, address="127.0.0.1:0", provider=provider)
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield Running(app, monolith, provider, billing_pb2_grpc.BillingServiceStub(channel))
    finally:
        channel.close()
        app.stop()


def _webhook(key_dir: Path, now: datetime, event: dict[str, object]) -> tuple[bytes, str]:
    raw = json.dumps(event).encode()
    secret = webhook_secret(Env({"FITCO_DATA_DIR": str(key_dir)}))
    return raw, signatures.sign(secret, int(now.timestamp()), raw)


# -- plans and a successful checkout ------------------------------------------------------


def test_plans_are_public_and_in_minor_units(billing: Running) -> None:
    plans = {p.id: p for p in billing.stub.ListPlans(billing_pb2.ListPlansRequest()).plans}
    assert set(plans) == {"free", "premium_monthly", "premium_yearly"}
    assert plans["free"].amount == 0
    assert plans["premium_monthly"].amount == 999
    assert plans["premium_monthly"].currency == "EUR"


def test_checkout_with_a_good_card_makes_the_user_premium(billing: Running) -> None:
    alice = billing.user()
    assert billing.entitlements(alice).premium is False
    resp = billing.checkout(alice)
    now = billing.monolith.clock.now()
    sub, pay = resp.subscription, resp.payment
    assert (sub.status, sub.plan_id, sub.user_id) == ("active", "premium_monthly", alice.id)
    assert sub.current_period_end.ToDatetime(tzinfo=UTC) == add_interval(now, "month")
    assert (pay.status, pay.amount, pay.currency, pay.kind) == ("succeeded", 999, "EUR", "checkout")
    assert (pay.card_brand, pay.card_last4) == ("visa", "4242")
    assert resp.entitlements.premium and resp.entitlements.wod_exercises == 9
    got = billing.stub.GetSubscription(billing_pb2.GetSubscriptionRequest(), metadata=alice.md)
    assert got.subscription.status == "active"
    assert [p.id for p in got.payments] == [pay.id]
    ent = billing.entitlements(alice)
    assert ent.premium and ent.plan_id == "premium_monthly"
    assert ent.premium_until == sub.current_period_end
    assert billing.audit(sub.id) == [
        ("none", "incomplete", "user"),
        ("incomplete", "active", "user"),
    ]
    charge_id = next(iter(billing.provider.metadata))
    assert billing.provider.metadata[charge_id] == {
        "subscription_id": str(sub.id),
        "payment_id": str(pay.id),
        "user_id": str(alice.id),
    }


def test_never_subscribed_is_none_on_the_free_plan(billing: Running) -> None:
    bob = billing.user()
    got = billing.stub.GetSubscription(billing_pb2.GetSubscriptionRequest(), metadata=bob.md)
    assert (got.subscription.status, got.subscription.plan_id) == ("none", "free")
    assert not got.entitlements.premium and got.entitlements.wod_exercises == 6
    assert list(got.payments) == []


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_chargeDeclined", "card_declined"), ("tok_insufficient", "insufficient_funds")],
)
def test_a_declined_card_leaves_the_user_free(billing: Running, token: str, reason: str) -> None:
    carol = billing.user()
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: billing.checkout(carol, token))
    assert error_reason(err) == reason
    got = billing.stub.GetSubscription(billing_pb2.GetSubscriptionRequest(), metadata=carol.md)
    assert got.subscription.status == "canceled"
    assert not got.entitlements.premium
    assert [(p.status, p.failure_code) for p in got.payments] == [("failed", reason)]
    trail = billing.audit(got.subscription.id)
    assert trail == [("none", "incomplete", "user"), ("incomplete", "canceled", "user")]
    # The user may try again with another card.
    assert billing.checkout(carol).subscription.status == "active"


def test_a_card_needing_authentication_waits_for_the_provider(billing: Running) -> None:
    dave = billing.user()
    resp = billing.checkout(dave, "tok_3ds")
    assert resp.subscription.status == "incomplete"
    assert resp.payment.status == "requires_action"
    assert resp.payment.next_action.type == "authenticate"
    assert resp.payment.next_action.url.endswith("/confirm")
    assert not resp.entitlements.premium
    # Checking out again resumes it: no second charge.
    again = billing.checkout(dave, "tok_3ds")
    assert again.payment.id == resp.payment.id and billing.provider.charge_count == 1
    other = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: billing.checkout(dave, "tok_visa", "premium_yearly"),
    )
    assert error_reason(other) == "PAYMENT_PENDING"
    # The cardholder confirms at the provider; its webhook settles the payment.
    charge = billing.provider.confirm(next(iter(billing.provider.metadata)))
    now = billing.monolith.clock.now()
    raw, sig = _webhook(
        billing.monolith.key_dir,
        now,
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.succeeded",
            "created": int(now.timestamp()),
            "data": {
                "charge": {
                    "id": charge.id,
                    "status": "succeeded",
                    "amount": charge.amount,
                    "currency": charge.currency,
                    "amount_refunded": 0,
                    "card_brand": "visa",
                    "card_last4": "3155",
                    "metadata": billing.provider.metadata[charge.id],
                }
            },
        },
    )
    body = httpbody_pb2.HttpBody(content_type="application/json", data=raw)
    answer = billing.stub.ReceiveWebhook(
        billing_pb2.ReceiveWebhookRequest(body=body), metadata=(("provider-signature", sig),)
    )
    assert answer.duplicate is False
    assert billing.entitlements(dave).premium


def test_an_unknown_token_is_invalid_argument(billing: Running) -> None:
    erin = billing.user()
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: billing.checkout(erin, "tok_nope"))
    assert "payment_method_token" in field_violations(err)
    assert not billing.entitlements(erin).premium


def test_the_idempotency_key_is_required_and_checked(billing: Running) -> None:
    frank = billing.user()
    req = billing_pb2.CheckoutRequest(plan_id="premium_monthly", payment_method_token="tok_visa")
    bad_keys: list[Md] = [frank.md, (*frank.md, ("idempotency-key", "short"))]
    for md in bad_keys:
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, partial(billing.stub.Checkout, req, metadata=md)
        )
        assert "Idempotency-Key" in field_violations(err)
    free = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: billing.checkout(frank, plan="free")
    )
    assert "plan_id" in field_violations(free)
    assert billing.provider.charge_count == 0


def test_an_unreachable_provider_is_unavailable_and_a_retry_charges_once(
    billing: Running,
) -> None:
    gina = billing.user()
    billing.provider.down = True
    err = expect_error(
        grpc.StatusCode.UNAVAILABLE, lambda: billing.checkout(gina, key="retry-key-0001")
    )
    assert error_reason(err) == "PROVIDER_UNAVAILABLE"
    with billing.app.db.transaction(write=False) as s:
        assert [
            p.status for p in s.scalars(select(PaymentRow).where(PaymentRow.user_id == gina.id))
        ] == ["pending"]
    billing.provider.down = False
    first = billing.checkout(gina, key="retry-key-0001")
    assert first.subscription.status == "active"
    assert billing.provider.charge_count == 1
    again = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION, lambda: billing.checkout(gina, key="retry-key-0002")
    )
    assert error_reason(again) == "ALREADY_SUBSCRIBED"
    assert billing.provider.charge_count == 1


# -- idempotency ----------------------------------------------------------------------------


def test_same_key_same_request_answers_the_first_answer(billing: Running) -> None:
    hana = billing.user()
    first = billing.checkout(hana, key="same-key-0001")
    billing.monolith.clock.at = billing.monolith.clock.at.replace(second=7)
    second = billing.checkout(hana, key="same-key-0001")
    assert second == first
    assert billing.provider.charge_count == 1
    reused = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: billing.checkout(hana, plan="premium_yearly", key="same-key-0001"),
    )
    assert error_reason(reused) == "IDEMPOTENCY_KEY_REUSED"


def test_a_stored_decline_is_replayed_without_charging_again(billing: Running) -> None:
    ivan = billing.user()
    for _ in range(2):
        err = expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            lambda: billing.checkout(ivan, "tok_chargeDeclined", key="decline-key-01"),
        )
        assert error_reason(err) == "card_declined"
    assert billing.provider.charge_count == 1


@pytest.mark.parametrize("provider", [0.3], indirect=True)
def test_twenty_concurrent_duplicates_charge_once(billing: Running) -> None:
    jane = billing.user()
    key = f"concurrent-{uuid.uuid4().hex}"

    def attempt(_: int) -> bytes | grpc.StatusCode:
        try:
            return billing.checkout(jane, key=key).SerializeToString()
        except grpc.RpcError as exc:
            return exc.code()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(20)))
    assert billing.provider.charge_count == 1
    bodies = {a for a in answers if isinstance(a, bytes)}
    codes = {a for a in answers if not isinstance(a, bytes)}
    assert len(bodies) == 1, codes
    assert codes <= {grpc.StatusCode.ABORTED}
    resp = billing_pb2.CheckoutResponse.FromString(next(iter(bodies)))
    assert resp.subscription.status == "active"


@pytest.mark.parametrize("provider", [0.2], indirect=True)
def test_concurrent_checkouts_with_different_keys_charge_once(billing: Running) -> None:
    """Other keys are other requests, but one user has one open subscription: the others
    resume its pending payment (the same provider key) or find it already paid."""
    kate = billing.user()

    def attempt(_: int) -> str:
        try:
            return billing.checkout(kate).subscription.status
        except grpc.RpcError as exc:
            return error_reason(exc)  # type: ignore[arg-type]

    with ThreadPoolExecutor(5) as pool:
        outcomes = set(pool.map(attempt, range(5)))
    assert outcomes <= {"active", "ALREADY_SUBSCRIBED"} and "active" in outcomes
    assert billing.provider.charge_count == 1


# -- the subscription's life ----------------------------------------------------------------


def test_cancel_at_period_end_then_resume_then_cancel_now(billing: Running) -> None:
    kim = billing.user()
    sub = billing.checkout(kim).subscription
    cancel = billing_pb2.CancelSubscriptionRequest
    later = billing.stub.CancelSubscription(cancel(at_period_end=True), metadata=kim.md)
    assert later.subscription.status == "active" and later.subscription.cancel_at_period_end
    assert later.entitlements.premium
    resumed = billing.checkout(kim)  # checking out again withdraws the cancellation
    assert not resumed.subscription.cancel_at_period_end
    assert billing.provider.charge_count == 1
    now = billing.stub.CancelSubscription(cancel(at_period_end=False), metadata=kim.md)
    assert now.subscription.status == "canceled" and not now.entitlements.premium
    assert billing.audit(sub.id)[-1] == ("active", "canceled", "user")
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: billing.stub.CancelSubscription(cancel(at_period_end=False), metadata=kim.md),
    )
    assert error_reason(err) == "NO_SUBSCRIPTION"


def test_switching_plans_charges_the_new_plan_from_now(billing: Running) -> None:
    leo = billing.user()
    monthly = billing.checkout(leo)
    yearly = billing.checkout(leo, plan="premium_yearly")
    now = billing.monolith.clock.now()
    assert yearly.subscription.id == monthly.subscription.id
    assert yearly.subscription.plan_id == "premium_yearly"
    assert yearly.subscription.current_period_end.ToDatetime(tzinfo=UTC) == add_interval(
        now, "year"
    )
    assert yearly.payment.amount == 9900 and billing.provider.charge_count == 2
    # A declined switch keeps the plan the user has.
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: billing.checkout(leo, "tok_chargeDeclined", "premium_monthly"),
    )
    assert error_reason(err) == "card_declined"
    assert billing.entitlements(leo).plan_id == "premium_yearly"


# -- admin ----------------------------------------------------------------------------------


def test_refunds_partial_then_full_cancels(billing: Running) -> None:
    mia = billing.user()
    pay = billing.checkout(mia).payment
    admin = billing.admin()
    refund = billing_pb2.RefundPaymentRequest
    too_much = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: billing.stub.RefundPayment(refund(payment_id=pay.id, amount=1000), metadata=admin),
    )
    assert "amount" in field_violations(too_much)
    part = billing.stub.RefundPayment(
        refund(payment_id=pay.id, amount=300, reason="goodwill"), metadata=admin
    )
    assert (part.payment.status, part.payment.amount_refunded) == ("partially_refunded", 300)
    assert part.subscription.status == "active" and billing.entitlements(mia).premium
    full = billing.stub.RefundPayment(refund(payment_id=pay.id), metadata=admin)
    assert (full.payment.status, full.payment.amount_refunded) == ("refunded", 999)
    assert full.subscription.status == "canceled"
    assert not billing.entitlements(mia).premium
    assert ("active", "canceled", "admin") in billing.audit(full.subscription.id)
    again = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: billing.stub.RefundPayment(refund(payment_id=pay.id), metadata=admin),
    )
    assert error_reason(again) == "NOT_REFUNDABLE"
    missing = refund(payment_id=10**12)
    expect_error(
        grpc.StatusCode.NOT_FOUND, lambda: billing.stub.RefundPayment(missing, metadata=admin)
    )


def test_admin_lists_subscriptions_newest_first_by_page(billing: Running) -> None:
    ids = [billing.checkout(billing.user()).subscription.id for _ in range(3)]
    admin = billing.admin()
    req = billing_pb2.ListSubscriptionsRequest
    page = billing.stub.ListSubscriptions(req(status="active", page_size=2), metadata=admin)
    assert [s.id for s in page.subscriptions] == sorted(ids, reverse=True)[:2]
    assert page.next_page_token
    rest = billing.stub.ListSubscriptions(
        req(status="active", page_size=2, page_token=page.next_page_token), metadata=admin
    )
    assert rest.subscriptions[0].id == min(ids)
    assert all(s.status == "active" for s in [*page.subscriptions, *rest.subscriptions])
    bad = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: billing.stub.ListSubscriptions(req(page_token="garbage"), metadata=admin),
    )
    assert "page_token" in field_violations(bad)


# -- who may call what ----------------------------------------------------------------------


def test_another_user_cannot_see_or_cancel_a_subscription(billing: Running) -> None:
    """BOLA: billing's user RPCs take no ids; each answers the caller's own subscription."""
    alice, bob = billing.user(), billing.user()
    mine = billing.checkout(alice).subscription
    theirs = billing.stub.GetSubscription(billing_pb2.GetSubscriptionRequest(), metadata=bob.md)
    assert theirs.subscription.status == "none" and list(theirs.payments) == []
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: billing.stub.CancelSubscription(
            billing_pb2.CancelSubscriptionRequest(), metadata=bob.md
        ),
    )
    assert error_reason(err) == "NO_SUBSCRIPTION"
    assert not billing.entitlements(bob).premium
    still = billing.stub.GetSubscription(billing_pb2.GetSubscriptionRequest(), metadata=alice.md)
    assert still.subscription.id == mine.id and still.subscription.status == "active"


def test_admin_rpcs_refuse_users(billing: Running) -> None:
    nina = billing.user()
    pay = billing.checkout(nina).payment
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: billing.stub.ListSubscriptions(
            billing_pb2.ListSubscriptionsRequest(), metadata=nina.md
        ),
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: billing.stub.RefundPayment(
            billing_pb2.RefundPaymentRequest(payment_id=pay.id), metadata=nina.md
        ),
    )


def test_entitlements_need_a_trusted_service_and_the_users_token(billing: Running) -> None:
    omar = billing.user()
    req = billing_pb2.GetEntitlementsRequest()
    key_dir = billing.monolith.key_dir
    alone = expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: billing.stub.GetEntitlements(req, metadata=omar.md),
    )
    assert error_reason(alone) == "SERVICE_IDENTITY_REQUIRED"
    # Billing's own identity is not one of its trusted callers.
    own = expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: billing.stub.GetEntitlements(
            req, metadata=(*omar.md, *service_md(key_dir, "billing"))
        ),
    )
    assert error_reason(own) == "SERVICE_UNKNOWN"
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: billing.stub.GetEntitlements(req, metadata=service_md(key_dir, "monolith")),
    )
    md = (*omar.md, *service_md(key_dir, "monolith"))
    assert billing.stub.GetEntitlements(req, metadata=md).entitlements.plan_id == "free"


def test_a_revoked_token_is_refused(billing: Running) -> None:
    pat = billing.user()
    billing.monolith.client.users.Logout(user_pb2.LogoutRequest(), metadata=pat.md)
    # Billing learns a revocation within its token-version cache time (2 s by default).
    err, _ = first_failure(
        partial(
            billing.stub.GetSubscription, billing_pb2.GetSubscriptionRequest(), metadata=pat.md
        ),
        seconds=5,
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "TOKEN_REVOKED"
