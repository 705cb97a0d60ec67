"""Subscription states and their transitions: one function changes a subscription's status,
and it always records the change in the audit trail (subscription_events).

    (none) ──checkout──► incomplete ──payment succeeded──► active
                              │                              │  ▲
                              └─ payment failed: canceled    │  └─ renewal paid
                                                             ▼
                     canceled ◄── grace period over ── past_due (renewal failed, retried)
                        ▲
                        └── cancel now / at period end / full refund

Entitlements follow the state: premium while `active` (until current_period_end) and while
`past_due` (the grace period), never otherwise.

A transition that changes what the user has is also a SUBSCRIPTION_CHANGED event on the user's
event stream (fitcore.outbox, in the same transaction as the audit row): ACTIVATED (active from
another status), PAST_DUE, CANCELED (from a premium state: a checkout that never became active
was never the user's premium, and its failure is answered to the checkout itself).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from fitco.events.v1 import events_pb2
from sqlalchemy.orm import Session

from billing.models import SubscriptionEventRow, SubscriptionRow
from fitcore.outbox import add_event
from fitcore.timestamps import timestamp

NONE: Final = "none"  # shown when the user never subscribed; never stored
INCOMPLETE: Final = "incomplete"
ACTIVE: Final = "active"
PAST_DUE: Final = "past_due"
CANCELED: Final = "canceled"
STORED: Final = (INCOMPLETE, ACTIVE, PAST_DUE, CANCELED)

# Allowed transitions (from -> to). Anything else is a bug or an out-of-order event, and is
# refused (InvalidTransition) so callers decide to ignore it explicitly.
TRANSITIONS: Final = {
    INCOMPLETE: {ACTIVE, CANCELED},
    ACTIVE: {ACTIVE, PAST_DUE, CANCELED},
    PAST_DUE: {ACTIVE, CANCELED},
    CANCELED: set[str](),
}
PREMIUM_STATES: Final = frozenset({ACTIVE, PAST_DUE})


class InvalidTransition(Exception):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"subscription cannot go from {current} to {wanted}")
        self.current = current
        self.wanted = wanted


def can_move(current: str, to: str) -> bool:
    return to in TRANSITIONS.get(current, set())


def record_created(s: Session, sub: SubscriptionRow, reason: str, actor: str, at: datetime) -> None:
    """Audit a new subscription (from "none" to its first status)."""
    s.flush()  # the row needs its id
    s.add(
        SubscriptionEventRow(
            subscription_id=sub.id,
            user_id=sub.user_id,
            from_status=NONE,
            to_status=sub.status,
            reason=reason[:200],
            actor=actor,
            at=at,
        )
    )


def move(
    s: Session, sub: SubscriptionRow, to: str, *, reason: str, actor: str, at: datetime
) -> None:
    """Change the subscription's status (and record it). `actor`: user, admin, provider or
    clock. A move to the same status (active -> active: a renewal) is recorded too."""
    if not can_move(sub.status, to):
        raise InvalidTransition(sub.status, to)
    s.add(
        SubscriptionEventRow(
            subscription_id=sub.id,
            user_id=sub.user_id,
            from_status=sub.status,
            to_status=to,
            reason=reason[:200],
            actor=actor,
            at=at,
        )
    )
    change = _change(sub.status, to)
    sub.status = to
    sub.updated_at = at
    if to == CANCELED and sub.canceled_at is None:
        sub.canceled_at = at
    if change:
        _add_changed_event(s, sub, change, at)


def _change(current: str, to: str) -> str:
    """The SUBSCRIPTION_CHANGED `change` of a transition ("" = not an event)."""
    if to == ACTIVE and current != ACTIVE:
        return "ACTIVATED"
    if to == PAST_DUE and current != PAST_DUE:
        return "PAST_DUE"
    if to == CANCELED and current in PREMIUM_STATES:
        return "CANCELED"
    return ""


def _add_changed_event(s: Session, sub: SubscriptionRow, change: str, at: datetime) -> None:
    changed = events_pb2.SubscriptionChanged(change=change, status=sub.status, plan_id=sub.plan_id)
    if sub.current_period_end is not None:
        changed.current_period_end.CopyFrom(timestamp(sub.current_period_end))
    add_event(
        s,
        sub.user_id,
        events_pb2.WatchEventsResponse(
            type="SUBSCRIPTION_CHANGED", time=timestamp(at), subscription_changed=changed
        ),
    )
