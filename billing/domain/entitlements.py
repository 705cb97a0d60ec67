"""What a user's plan allows now: a pure decision from their open subscription and the time.

Premium is decided here, by the server, from the subscription's state (never by a client):

- `active` and now < current_period_end: premium until current_period_end (a subscription set
  to cancel at period end included: it was paid for);
- `past_due` (a renewal failed; billing.domain.renewals retries it) and now <
  current_period_end + GRACE_PERIOD: premium until the end of the grace period;
- anything else (no subscription, `incomplete` while the first payment is pending, `canceled`,
  or a period that ended and was not renewed yet): the free plan.

The allowances themselves are data in billing/plans.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.domain import states
from billing.domain.views import SubscriptionView
from billing.plans import FREE, GRACE_PERIOD, PLANS, Allowance


@dataclass(frozen=True)
class EntitlementsView:
    premium: bool
    plan_id: str
    allowance: Allowance
    # Until when premium lasts as things stand (None when not premium).
    premium_until: datetime | None


FREE_ENTITLEMENTS = EntitlementsView(False, FREE, PLANS[FREE].allowance, None)


def premium_until(status: str, current_period_end: datetime | None) -> datetime | None:
    """The end of premium for a subscription in `status` whose paid period ends at
    `current_period_end` (None when the status never gives premium)."""
    if status not in states.PREMIUM_STATES or current_period_end is None:
        return None
    if status == states.PAST_DUE:
        return current_period_end + GRACE_PERIOD
    return current_period_end


def decide(
    status: str | None, plan_id: str | None, current_period_end: datetime | None, now: datetime
) -> EntitlementsView:
    """The entitlements of a user whose open subscription is in `status` on `plan_id` (None,
    None, None: they have no open subscription) at `now` (all datetimes aware)."""
    if status is None or plan_id is None:
        return FREE_ENTITLEMENTS
    until = premium_until(status, current_period_end)
    plan = PLANS.get(plan_id)
    if until is None or now >= until or plan is None or not plan.paid:
        return FREE_ENTITLEMENTS
    return EntitlementsView(True, plan.id, plan.allowance, until)


def of_subscription(sub: SubscriptionView | None, now: datetime) -> EntitlementsView:
    """The entitlements `sub` grants at `now` (a canceled one, or none, grants the free plan)."""
    if sub is None or sub.status in (states.CANCELED, states.NONE):
        return FREE_ENTITLEMENTS
    return decide(sub.status, sub.plan_id, sub.current_period_end, now)
