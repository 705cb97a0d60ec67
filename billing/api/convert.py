"""Billing's domain values as fitco.billing.v1 messages. Never more of a card than its brand
and last 4 (the domain holds no more)."""

from __future__ import annotations

from fitco.billing.v1 import billing_pb2

from billing.domain.entitlements import EntitlementsView
from billing.domain.payments import REQUIRES_ACTION
from billing.domain.views import PaymentView, SubscriptionView
from billing.plans import Plan
from fitcore.timestamps import timestamp

# NextAction.type of a payment waiting for the cardholder (3-D Secure at the provider).
AUTHENTICATE = "authenticate"


ts = timestamp


def plan(p: Plan) -> billing_pb2.Plan:
    return billing_pb2.Plan(
        id=p.id,
        name=p.name,
        amount=p.amount,
        currency=p.currency,
        interval=p.interval,
        features=list(p.features),
    )


def subscription(v: SubscriptionView) -> billing_pb2.Subscription:
    out = billing_pb2.Subscription(
        id=v.id,
        plan_id=v.plan_id,
        status=v.status,
        cancel_at_period_end=v.cancel_at_period_end,
        card_brand=v.card_brand,
        card_last4=v.card_last4,
        user_id=v.user_id,
    )
    if v.current_period_start is not None:
        out.current_period_start.CopyFrom(ts(v.current_period_start))
    if v.current_period_end is not None:
        out.current_period_end.CopyFrom(ts(v.current_period_end))
    if v.canceled_at is not None:
        out.canceled_at.CopyFrom(ts(v.canceled_at))
    if v.created_at is not None:
        out.created_at.CopyFrom(ts(v.created_at))
    return out


def payment(v: PaymentView) -> billing_pb2.Payment:
    out = billing_pb2.Payment(
        id=v.id,
        # "pending" is billing's own word for "the provider has not answered yet"; the contract
        # lists the provider's statuses, and a pending payment is one still to be acted on.
        status=v.status,
        amount=v.amount,
        currency=v.currency,
        amount_refunded=v.amount_refunded,
        card_brand=v.card_brand,
        card_last4=v.card_last4,
        failure_code=v.failure_code,
        kind=v.kind,
        created_at=ts(v.created_at),
        plan_id=v.plan_id,
    )
    if v.status == REQUIRES_ACTION:
        out.next_action.CopyFrom(billing_pb2.NextAction(type=AUTHENTICATE, url=v.next_action_url))
    return out


def entitlements(v: EntitlementsView) -> billing_pb2.Entitlements:
    a = v.allowance
    out = billing_pb2.Entitlements(
        premium=v.premium,
        plan_id=v.plan_id,
        wod_exercises=a.wod_exercises,
        wod_regenerations_per_day=a.wod_regenerations_per_day,
        nutrition_detail=a.nutrition_detail,
        stats_history_weeks=a.stats_history_weeks,
    )
    if v.premium_until is not None:
        out.premium_until.CopyFrom(ts(v.premium_until))
    return out
