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
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from billing.models import SubscriptionEventRow, SubscriptionRow

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
    sub.status = to
    sub.updated_at = at
    if to == CANCELED and sub.canceled_at is None:
        sub.canceled_at = at
