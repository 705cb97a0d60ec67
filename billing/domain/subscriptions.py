"""The caller's subscription (read, cancel, entitlements) and the admin's view of all of them
(list, refund a payment).

One transaction per call, except a refund: the provider is called between two transactions
(never inside one), and the refund is then settled by billing.domain.payments.settle_charge —
the code the provider's `charge.refunded` webhook runs too, so whichever arrives first counts
and the other changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain import entitlements, payments, states
from billing.domain.checkout import open_subscription
from billing.domain.entitlements import EntitlementsView
from billing.domain.views import PaymentView, SubscriptionView
from billing.models import PaymentRow, SubscriptionEventRow, SubscriptionRow
from billing.provider import PaymentProvider, ProviderError
from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)

# GetSubscription shows at most this many payments, newest first (the contract).
LATEST_PAYMENTS = 10
DEFAULT_PAGE, MAX_PAGE = 50, 200


@dataclass(frozen=True)
class SubscriptionState:
    subscription: SubscriptionView
    entitlements: EntitlementsView
    payments: list[PaymentView]


@dataclass(frozen=True)
class RefundResult:
    payment: PaymentView
    subscription: SubscriptionView


def _shown(s: Session, user_id: int) -> SubscriptionRow | None:
    """The subscription to show: the open one, else the latest canceled one."""
    return (
        open_subscription(s, user_id)
        or s.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.user_id == user_id)
            .order_by(SubscriptionRow.id.desc())
        ).first()
    )


def _view(row: SubscriptionRow | None, user_id: int) -> SubscriptionView:
    return SubscriptionView.of(row) if row is not None else SubscriptionView.none(user_id)


def encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([last_id]).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int | None:
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == 1 and type(key[0]) is int and key[0] > 0):
        raise InvalidArgument([FieldViolation("page_token", "not a valid page token")])
    return int(key[0])


class Subscriptions:
    def __init__(self, db: Database, provider: PaymentProvider, clock: Clock) -> None:
        self._db = db
        self._provider = provider
        self._clock = clock

    # -- the caller's own -----------------------------------------------------------------

    def get(self, user_id: int) -> SubscriptionState:
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            view = _view(_shown(s, user_id), user_id)
            rows = s.scalars(
                select(PaymentRow)
                .where(PaymentRow.user_id == user_id)
                .order_by(PaymentRow.id.desc())
                .limit(LATEST_PAYMENTS)
            )
            latest = [PaymentView.of(p) for p in rows]
        return SubscriptionState(view, entitlements.of_subscription(view, now), latest)

    def entitlements(self, user_id: int) -> EntitlementsView:
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            sub = open_subscription(s, user_id)
            view = SubscriptionView.of(sub) if sub is not None else None
        return entitlements.of_subscription(view, now)

    def cancel(self, user_id: int, at_period_end: bool) -> SubscriptionState:
        """Cancel the open subscription now, or at the end of its paid period (renewals then
        cancel it instead of charging). Only an `active` subscription has a paid period ahead:
        an `incomplete` or `past_due` one is canceled now whatever `at_period_end` says."""
        now = self._clock.now()
        with self._db.transaction() as s:
            sub = open_subscription(s, user_id, lock=True)
            if sub is None:
                raise FailedPrecondition("no subscription to cancel", reason="NO_SUBSCRIPTION")
            if at_period_end and sub.status == states.ACTIVE:
                if not sub.cancel_at_period_end:
                    sub.cancel_at_period_end = True
                    states.move(
                        s, sub, states.ACTIVE, reason="cancel at period end", actor="user", at=now
                    )
            else:
                sub.cancel_at_period_end = False
                states.move(s, sub, states.CANCELED, reason="canceled", actor="user", at=now)
        return self.get(user_id)

    # -- admin ----------------------------------------------------------------------------

    def list_all(self, status: str, size: int, token: str) -> tuple[list[SubscriptionView], str]:
        """Newest first (id descending), keyset-paginated; `status` "" = all."""
        if status and status not in states.STORED:
            raise InvalidArgument([FieldViolation("status", "unknown status")])
        limit = DEFAULT_PAGE if size <= 0 else min(size, MAX_PAGE)
        before = decode_page_token(token)
        stmt = select(SubscriptionRow).order_by(SubscriptionRow.id.desc()).limit(limit + 1)
        if status:
            stmt = stmt.where(SubscriptionRow.status == status)
        if before is not None:
            stmt = stmt.where(SubscriptionRow.id < before)
        with self._db.transaction(write=False) as s:
            rows = list(s.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        return [SubscriptionView.of(r) for r in rows], (
            encode_page_token(rows[-1].id) if more else ""
        )

    def refund(self, payment_id: int, amount: int, reason: str) -> RefundResult:
        """Refund `amount` minor units of a paid payment (0 = all that remains). A full refund
        of the current period's payment cancels the subscription now (settle_charge)."""
        with self._db.transaction(write=False) as s:
            payment = s.get(PaymentRow, payment_id)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.status not in (payments.SUCCEEDED, payments.PARTIALLY_REFUNDED):
                raise FailedPrecondition(
                    f"payment {payment_id} is {payment.status}: only a paid payment with money "
                    "left can be refunded",
                    reason="NOT_REFUNDABLE",
                )
            remaining = payment.amount - payment.amount_refunded
            if amount > remaining:
                raise InvalidArgument(
                    [FieldViolation("amount", f"at most {remaining} (what remains to refund)")]
                )
            amount = amount or remaining
            charge_id, total = payment.provider_payment_id, payment.amount_refunded + amount
        if not charge_id:
            raise FailedPrecondition("the payment has no charge", reason="NOT_REFUNDABLE")
        try:
            refund = self._provider.refund(
                charge_id=charge_id, amount=amount, idempotency_key=f"refund-{payment_id}-{total}"
            )
        except ProviderError as exc:
            raise Unavailable(
                "the payment provider is unavailable: retry", reason="PROVIDER_UNAVAILABLE"
            ) from exc
        if refund.status != payments.SUCCEEDED:
            raise FailedPrecondition("the provider refused the refund", reason="REFUND_FAILED")
        return self._settle_refund(payment_id, amount, total, reason)

    def _settle_refund(self, payment_id: int, amount: int, total: int, why: str) -> RefundResult:
        now = self._clock.now()
        with self._db.transaction() as s:
            payment = payments.lock_payment(s, payment_id)
            assert payment is not None
            payments.settle_charge(
                s, payment, status=payments.SUCCEEDED, amount_refunded=total, at=now, actor="admin"
            )
            sub = s.get(SubscriptionRow, payment.subscription_id)
            assert sub is not None
            what = f"refund of {amount} {payment.currency} on payment {payment_id}"
            _note(s, sub, what, why, now)
            return RefundResult(PaymentView.of(payment), SubscriptionView.of(sub))


def _note(s: Session, sub: SubscriptionRow, what: str, why: str, at: datetime) -> None:
    """An audit row that is not a transition (from = to): the admin's refund and their reason."""
    s.add(
        SubscriptionEventRow(
            subscription_id=sub.id,
            user_id=sub.user_id,
            from_status=sub.status,
            to_status=sub.status,
            reason=(f"{what}: {why}" if why else what)[:200],
            actor="admin",
            at=at,
        )
    )
