"""Payments: the one place a charge's outcome changes a payment and its subscription.

Two reporters tell billing what became of a charge: the provider's synchronous answer (checkout,
renewals) and its webhooks (later, at least once, in any order). Both call `settle_charge`,
which only ever moves a payment forward, so whichever arrives second changes nothing:

    pending ──► requires_action ──► succeeded ──► partially_refunded ──► refunded
       │              │
       └──────────────┴──► failed

Lock order, for every caller: the payment row (`lock_payment*`), then its subscription (which
`settle_charge` locks itself). A transaction that takes the subscription first and then settles
one of its payments can deadlock with a webhook on PostgreSQL.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain import states
from billing.domain.times import utc
from billing.metrics import ORPHAN_PAYMENTS_TOTAL, PAYMENTS_TOTAL
from billing.models import PaymentRow, SubscriptionRow
from billing.provider import Charge

log = logging.getLogger("billing.payments")

# Payment statuses (payments.status).
PENDING: Final = "pending"  # created, the provider has not answered yet
REQUIRES_ACTION: Final = "requires_action"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REFUNDED: Final = "refunded"
PARTIALLY_REFUNDED: Final = "partially_refunded"
# Kinds (payments.kind).
CHECKOUT: Final = "checkout"
RENEWAL: Final = "renewal"

# What a provider may say of a charge (billing.provider statuses; "refunded" is a succeeded
# charge whose money went back, as some providers name it).
CHARGE_STATUSES: Final = frozenset({PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED, REFUNDED})
# Statuses that still wait for the provider's verdict.
UNSETTLED: Final = frozenset({PENDING, REQUIRES_ACTION})
# Statuses of a payment whose money was taken (some of it may have gone back).
PAID: Final = frozenset({SUCCEEDED, PARTIALLY_REFUNDED, REFUNDED})


def lock_payment(s: Session, payment_id: int) -> PaymentRow | None:
    """The payment, locked for this transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    write transactions are serialized anyway) and re-read, so a concurrent settlement that
    committed first is seen."""
    stmt = (
        select(PaymentRow)
        .where(PaymentRow.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return s.scalars(stmt).first()


def lock_payment_by_charge(s: Session, charge_id: str) -> PaymentRow | None:
    """The payment of the provider's charge `charge_id`, locked like `lock_payment`."""
    stmt = (
        select(PaymentRow)
        .where(PaymentRow.provider_payment_id == charge_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return s.scalars(stmt).first()


def settle_provider_charge(
    s: Session, payment: PaymentRow, charge: Charge, *, at: datetime, actor: str
) -> None:
    """`settle_charge` with the provider's synchronous answer to a charge call (checkout and
    renewals; webhooks carry the same fields in their event)."""
    settle_charge(
        s,
        payment,
        status=charge.status,
        failure_code=charge.failure_code,
        card_brand=charge.card_brand,
        card_last4=charge.card_last4,
        next_action_url=charge.next_action_url,
        at=at,
        actor=actor,
        charge_id=charge.id,
    )


def settle_charge(
    s: Session,
    payment: PaymentRow,
    *,
    status: str,
    failure_code: str = "",
    card_brand: str = "",
    card_last4: str = "",
    next_action_url: str = "",
    amount_refunded: int = 0,
    at: datetime,
    actor: str,
    charge_id: str = "",
) -> None:
    """Apply what the provider says of `payment`'s charge; idempotent and order-independent.

    `payment` must be locked by the caller (`lock_payment` / `lock_payment_by_charge`) inside a
    write transaction; the subscription is locked here. Arguments are the provider's view of the
    charge: `status` one of pending | requires_action | succeeded | failed | refunded (a
    succeeded charge whose money went back), `amount_refunded` the charge's TOTAL refunded so
    far in minor units (not a delta), `charge_id` the provider's charge id (recorded when the
    payment has none yet). `at` is when it happened (billing's clock), `actor` who reported it
    for the audit trail: "user" (checkout's synchronous answer), "provider" (webhook),
    "clock" (renewals), "admin" (refunds).

    The payment only moves forward, so duplicates and out-of-order reports change nothing:
    - pending/requires_action → requires_action (next_action_url kept), succeeded, or failed
      (failure_code kept). Once succeeded or failed, any other status is ignored: a `failed`
      or `requires_action` after `succeeded`, a `succeeded` after `failed` (impossible at the
      provider for one charge), a `pending` after anything.
    - Refunds only grow: when `amount_refunded` exceeds what is recorded and the charge was
      paid, the payment becomes partially_refunded or (all of it) refunded. A `refunded` or a
      refunded total arriving before the `succeeded` report settles the payment as succeeded
      first (the money was taken), then refunds it.
    - The card's brand and last 4 are recorded when given (never more of the card).

    The subscription follows, through billing.domain.states.move (audited with `actor`), only
    when the payment's status changed in this call:
    - succeeded, kind checkout: the subscription takes the payment's plan and period
      (current_period_start/end = the payment's period_start/end) and the card; incomplete →
      active (a first purchase) or active → active (a plan switch paid).
    - succeeded, kind renewal: active/past_due → active; current_period_end becomes the
      payment's period_end (never earlier than it was), current_period_start the payment's
      period_start; renewal_attempts and next_attempt_at are reset.
    - succeeded while the subscription is already canceled: nothing moves (canceled is final);
      the payment is an orphan to refund (logged, counted in fitco_billing_orphan_payments_total).
    - failed, kind checkout: incomplete → canceled (the first payment failed: the user stays
      free); an active subscription (a failed plan switch) keeps its plan and period.
    - failed, kind renewal: active → past_due. A past_due subscription stays past_due; the retry
      schedule (renewal_attempts, next_attempt_at) and the end of the grace period belong to
      billing.domain.renewals, not here.
    - requires_action: the subscription does not move (a checkout's stays incomplete).
    - a full refund of the payment of the current period (its period_end equals the
      subscription's current_period_end) of an open subscription → canceled now (reason
      "refund"; cancel_at_period_end cleared). A partial refund never moves the subscription.
    """
    if status not in CHARGE_STATUSES:
        raise ValueError(f"unknown charge status {status!r}")
    if charge_id and not payment.provider_payment_id:
        payment.provider_payment_id = charge_id
    if card_brand and card_last4:
        payment.card_brand, payment.card_last4 = card_brand[:16], card_last4[-4:]
    before = payment.status
    if payment.status in UNSETTLED:
        if status in (SUCCEEDED, REFUNDED) or (status != FAILED and amount_refunded > 0):
            payment.status, payment.failure_code, payment.next_action_url = SUCCEEDED, "", ""
        elif status == FAILED:
            payment.status, payment.next_action_url = FAILED, ""
            payment.failure_code = (failure_code or "payment_failed")[:40]
        elif status == REQUIRES_ACTION:
            payment.status = REQUIRES_ACTION
            # A webhook carries no URL: never let it erase the one the charge answer gave.
            payment.next_action_url = (next_action_url or payment.next_action_url)[:300]
    paid_now = before not in PAID and payment.status in PAID
    failed_now = before != FAILED and payment.status == FAILED
    refunded_now = False
    if payment.status in PAID and amount_refunded > payment.amount_refunded:
        payment.amount_refunded = min(amount_refunded, payment.amount)
        full = payment.amount_refunded >= payment.amount
        payment.status = REFUNDED if full else PARTIALLY_REFUNDED
        refunded_now = full
    if payment.status == before and not refunded_now:
        return
    payment.updated_at = at
    PAYMENTS_TOTAL.labels(payment.kind, payment.status).inc()
    sub = s.get(SubscriptionRow, payment.subscription_id, with_for_update=True)
    if sub is None:  # impossible: a foreign key with ON DELETE CASCADE
        return
    if paid_now:
        _paid(s, sub, payment, at, actor)
    elif failed_now:
        _failed(s, sub, payment, at, actor)
    if refunded_now:
        _refunded(s, sub, payment, at, actor)


def _paid(s: Session, sub: SubscriptionRow, payment: PaymentRow, at: datetime, actor: str) -> None:
    if sub.status == states.CANCELED:
        ORPHAN_PAYMENTS_TOTAL.inc()
        log.warning(
            "payment succeeded for a canceled subscription: refund it",
            extra={"payment_id": payment.id, "subscription_id": sub.id},
        )
        return
    start, end = utc(payment.period_start), utc(payment.period_end)
    if payment.kind == RENEWAL:
        current = utc(sub.current_period_end)
        if end is not None and (current is None or end > current):
            sub.current_period_start, sub.current_period_end = start, end
        sub.renewal_attempts, sub.next_attempt_at = 0, None
        reason = "renewal paid"
    else:
        sub.current_period_start, sub.current_period_end = start, end
        reason = "payment succeeded" if sub.status == states.INCOMPLETE else "plan changed"
        sub.plan_id = payment.plan_id
    if payment.card_brand:
        sub.card_brand, sub.card_last4 = payment.card_brand, payment.card_last4
    reason = f"{reason} (payment {payment.id})"
    states.move(s, sub, states.ACTIVE, reason=reason, actor=actor, at=at)


def _failed(
    s: Session, sub: SubscriptionRow, payment: PaymentRow, at: datetime, actor: str
) -> None:
    reason = f"payment {payment.id} failed: {payment.failure_code}"
    if payment.kind == CHECKOUT and sub.status == states.INCOMPLETE:
        states.move(s, sub, states.CANCELED, reason=reason, actor=actor, at=at)
    elif payment.kind == RENEWAL and sub.status == states.ACTIVE:
        states.move(s, sub, states.PAST_DUE, reason=reason, actor=actor, at=at)


def _refunded(
    s: Session, sub: SubscriptionRow, payment: PaymentRow, at: datetime, actor: str
) -> None:
    if sub.status == states.CANCELED or sub.current_period_end is None:
        return
    if utc(payment.period_end) != utc(sub.current_period_end):
        return  # an older period's payment: the current period is paid by another one
    sub.cancel_at_period_end = False
    states.move(
        s, sub, states.CANCELED, reason=f"refund (payment {payment.id})", actor=actor, at=at
    )
