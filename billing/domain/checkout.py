"""Checkout: buy (or switch, or resume) a premium plan and charge the card token.

Three steps, never a database transaction around the provider call (a slow provider must not
hold locks or a pooled connection):

1. one write transaction decides what to do from the user's open subscription, creates what is
   new (an `incomplete` subscription and/or a `pending` payment for the period now ..
   now + the plan's interval) and commits;
2. the provider charges the token with the idempotency key `checkout-<payment id>` and the
   metadata subscription_id / payment_id / user_id (what its webhooks carry back);
3. a second write transaction settles the answer (billing.domain.payments.settle_charge, the
   same code the webhooks use, so whichever comes first wins and the other changes nothing).

What a checkout does, given the caller's open (not canceled) subscription:
- none: a new subscription, `incomplete` until its first payment succeeds (then `active`); a
  failed first payment cancels it (audited) and the caller stays free.
- a checkout payment still unsettled (pending: the provider was unreachable; requires_action:
  waiting for 3-D Secure) for the same plan: resumed. A pending one is charged again under its
  own provider key (so the card is never charged twice, whatever key the client sends), one
  awaiting authentication is answered as it is. For another plan: FAILED_PRECONDITION
  PAYMENT_PENDING (confirm it, or cancel the subscription and check out again).
- `active` on the same plan: FAILED_PRECONDITION ALREADY_SUBSCRIBED, unless it is set to cancel
  at period end: then the cancellation is withdrawn (nothing is charged).
- `active` on another plan: a plan switch. The new plan is charged in full and its period
  starts now (no proration: kept simple); if the charge fails the old plan runs on.
- `past_due` (a renewal failed): the plan asked for is charged now, with a period from now; on
  success the subscription is `active` again, on failure it stays `past_due`.
A paid switch or past_due payment also makes the card charged the one renewals use. (When such
a payment needs 3-D Secure and is confirmed later by webhook, the card is not switched: the
webhook does not know the token.)

Provider outcomes: unreachable (ProviderError) → UNAVAILABLE, reason PROVIDER_UNAVAILABLE, the
payment stays pending (a webhook or a retry settles it); unknown token → INVALID_ARGUMENT on
payment_method_token (the payment is marked failed); declined → FAILED_PRECONDITION with the
provider's failure code as reason (card_declined, insufficient_funds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.domain import entitlements, payments, states
from billing.domain.entitlements import EntitlementsView
from billing.domain.payments import CHECKOUT, PENDING, UNSETTLED
from billing.domain.views import PaymentView, SubscriptionView
from billing.models import PaymentRow, SubscriptionRow
from billing.plans import PLANS, Plan, add_interval
from billing.provider import Charge, PaymentProvider, ProviderError, UnknownPaymentMethod
from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import FailedPrecondition, FieldViolation, InvalidArgument, Unavailable

log = logging.getLogger("billing.checkout")

ACTOR = "user"


@dataclass(frozen=True)
class CheckoutResult:
    subscription: SubscriptionView
    # None only when nothing was charged (a withdrawn cancellation without a paid payment).
    payment: PaymentView | None
    entitlements: EntitlementsView


@dataclass(frozen=True)
class _Plan:
    """What step 1 decided: charge `payment_id`, or answer at once (`done`)."""

    subscription_id: int
    payment_id: int | None
    charge: bool


def open_subscription(s: Session, user_id: int, *, lock: bool = False) -> SubscriptionRow | None:
    """The user's subscription that is not canceled (at most one: a partial unique index)."""
    stmt = select(SubscriptionRow).where(
        SubscriptionRow.user_id == user_id, SubscriptionRow.status != states.CANCELED
    )
    if lock:
        stmt = stmt.with_for_update()
    return s.scalars(stmt).first()


def paid_plan(plan_id: str) -> Plan:
    plan = PLANS.get(plan_id)
    if plan is None or not plan.paid:
        paid = ", ".join(p.id for p in PLANS.values() if p.paid)
        raise InvalidArgument([FieldViolation("plan_id", f"must be a paid plan: {paid}")])
    return plan


class Checkout:
    def __init__(self, db: Database, provider: PaymentProvider, clock: Clock) -> None:
        self._db = db
        self._provider = provider
        self._clock = clock

    def checkout(self, user_id: int, plan_id: str, token: str) -> CheckoutResult:
        plan = paid_plan(plan_id)
        try:
            step = self._prepare(user_id, plan, token)
        except IntegrityError:
            # Two first checkouts of one user raced for the one open subscription; the other
            # one won. Look again: this one now resumes (or refuses) what it created.
            step = self._prepare(user_id, plan, token)
        if step.charge and step.payment_id is not None:
            self._charge(user_id, plan, token, step)
        return self._answer(step)

    # -- step 1 ---------------------------------------------------------------------------

    def _prepare(self, user_id: int, plan: Plan, token: str) -> _Plan:
        now = self._clock.now()
        with self._db.transaction() as s:
            sub = open_subscription(s, user_id, lock=True)
            if sub is None:
                sub = SubscriptionRow(
                    user_id=user_id,
                    plan_id=plan.id,
                    status=states.INCOMPLETE,
                    cancel_at_period_end=False,
                    payment_method_token=token,
                    card_brand="",
                    card_last4="",
                    renewal_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                s.add(sub)
                states.record_created(s, sub, f"checkout of {plan.id}", ACTOR, now)
                return _Plan(sub.id, self._new_payment(s, sub, plan, now).id, True)
            unsettled = s.scalars(
                select(PaymentRow)
                .where(
                    PaymentRow.subscription_id == sub.id,
                    PaymentRow.kind == CHECKOUT,
                    PaymentRow.status.in_(UNSETTLED),
                )
                .order_by(PaymentRow.id.desc())
            ).first()
            if unsettled is not None:
                if unsettled.plan_id != plan.id:
                    raise FailedPrecondition(
                        f"a payment for {unsettled.plan_id} is waiting for confirmation: "
                        "confirm it, or cancel the subscription and check out again",
                        reason="PAYMENT_PENDING",
                    )
                if sub.status == states.INCOMPLETE:
                    sub.payment_method_token = token
                return _Plan(sub.id, unsettled.id, unsettled.status == PENDING)
            if sub.status == states.ACTIVE and sub.plan_id == plan.id:
                if not sub.cancel_at_period_end:
                    raise FailedPrecondition(
                        f"already subscribed to {plan.id}", reason="ALREADY_SUBSCRIBED"
                    )
                sub.cancel_at_period_end = False
                states.move(
                    s, sub, states.ACTIVE, reason="cancellation withdrawn", actor=ACTOR, at=now
                )
                return _Plan(sub.id, _latest_paid(s, sub), False)
            # A plan switch (active) or paying again (past_due).
            return _Plan(sub.id, self._new_payment(s, sub, plan, now).id, True)

    @staticmethod
    def _new_payment(s: Session, sub: SubscriptionRow, plan: Plan, now: datetime) -> PaymentRow:
        payment = PaymentRow(
            user_id=sub.user_id,
            subscription_id=sub.id,
            provider_payment_id=None,
            kind=CHECKOUT,
            plan_id=plan.id,
            amount=plan.amount,
            currency=plan.currency,
            status=PENDING,
            amount_refunded=0,
            failure_code="",
            card_brand="",
            card_last4="",
            period_start=now,
            period_end=add_interval(now, plan.interval),
            next_action_url="",
            created_at=now,
            updated_at=now,
        )
        s.add(payment)
        s.flush()
        return payment

    # -- steps 2 and 3 --------------------------------------------------------------------

    def _charge(self, user_id: int, plan: Plan, token: str, step: _Plan) -> None:
        assert step.payment_id is not None
        try:
            charge: Charge | None = self._provider.charge(
                payment_method_token=token,
                amount=plan.amount,
                currency=plan.currency,
                idempotency_key=f"checkout-{step.payment_id}",
                description=f"Fit Company {plan.name}",
                metadata={
                    "subscription_id": str(step.subscription_id),
                    "payment_id": str(step.payment_id),
                    "user_id": str(user_id),
                },
            )
        except UnknownPaymentMethod:
            charge = None
        except ProviderError as exc:
            log.warning(
                "payment provider unavailable",
                extra={"payment_id": step.payment_id, "error": type(exc).__name__},
            )
            raise Unavailable(
                "the payment provider is unavailable: retry with the same Idempotency-Key",
                reason="PROVIDER_UNAVAILABLE",
            ) from exc
        now = self._clock.now()
        with self._db.transaction() as s:
            payment = payments.lock_payment(s, step.payment_id)
            assert payment is not None
            if charge is None:
                payments.settle_charge(
                    s,
                    payment,
                    status=payments.FAILED,
                    failure_code="unknown_payment_method",
                    at=now,
                    actor=ACTOR,
                )
            else:
                payments.settle_provider_charge(s, payment, charge, at=now, actor=ACTOR)
                sub = s.get(SubscriptionRow, payment.subscription_id)
                paid = payment.status in payments.PAID
                if paid and sub is not None and sub.status == states.ACTIVE:
                    sub.payment_method_token = token  # the card renewals charge from now on
            status, code = payment.status, payment.failure_code
        if charge is None:
            raise InvalidArgument(
                [FieldViolation("payment_method_token", "no such payment method at the provider")]
            )
        if status == payments.FAILED:
            raise FailedPrecondition(f"the payment failed: {code}", reason=code)

    def _answer(self, step: _Plan) -> CheckoutResult:
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            sub = s.get(SubscriptionRow, step.subscription_id)
            assert sub is not None
            payment = s.get(PaymentRow, step.payment_id) if step.payment_id else None
            view = SubscriptionView.of(sub)
            granted = entitlements.of_subscription(view, now)
            return CheckoutResult(view, PaymentView.of(payment) if payment else None, granted)


def _latest_paid(s: Session, sub: SubscriptionRow) -> int | None:
    return s.scalars(
        select(PaymentRow.id)
        .where(PaymentRow.subscription_id == sub.id, PaymentRow.status.in_(payments.PAID))
        .order_by(PaymentRow.id.desc())
    ).first()
