"""Subscriptions and payments as the domain answers them: plain frozen values read from rows
(times made aware UTC), so servicers convert them without touching the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.domain import states
from billing.domain.times import utc
from billing.models import PaymentRow, SubscriptionRow
from billing.plans import FREE


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    user_id: int
    plan_id: str
    # incomplete | active | past_due | canceled, or "none" (never subscribed)
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    card_brand: str
    card_last4: str
    created_at: datetime | None

    @classmethod
    def of(cls, row: SubscriptionRow) -> SubscriptionView:
        return cls(
            id=row.id,
            user_id=row.user_id,
            plan_id=row.plan_id,
            status=row.status,
            current_period_start=utc(row.current_period_start),
            current_period_end=utc(row.current_period_end),
            cancel_at_period_end=row.cancel_at_period_end,
            canceled_at=utc(row.canceled_at),
            card_brand=row.card_brand,
            card_last4=row.card_last4,
            created_at=utc(row.created_at),
        )

    @classmethod
    def none(cls, user_id: int) -> SubscriptionView:
        """A user who never subscribed: the free plan, status "none"."""
        return cls(0, user_id, FREE, states.NONE, None, None, False, None, "", "", None)


@dataclass(frozen=True)
class PaymentView:
    id: int
    subscription_id: int
    status: str
    kind: str
    plan_id: str
    amount: int
    currency: str
    amount_refunded: int
    card_brand: str
    card_last4: str
    failure_code: str
    next_action_url: str
    created_at: datetime

    @classmethod
    def of(cls, row: PaymentRow) -> PaymentView:
        return cls(
            id=row.id,
            subscription_id=row.subscription_id,
            status=row.status,
            kind=row.kind,
            plan_id=row.plan_id,
            amount=row.amount,
            currency=row.currency,
            amount_refunded=row.amount_refunded,
            card_brand=row.card_brand,
            card_last4=row.card_last4,
            failure_code=row.failure_code,
            next_action_url=row.next_action_url,
            created_at=utc(row.created_at),
        )
