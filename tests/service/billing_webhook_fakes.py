"""Helpers for the webhook and renewal tests: a migrated billing database, rows seeded directly
(the states checkout would leave), signed provider events, and a provider double that records
the idempotency keys it was called with (tests/service/billing_fakes.FakeProvider underneath).
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from billing.domain import payments, signatures, states
from billing.migrations import MIGRATIONS
from billing.models import PaymentRow, SubscriptionEventRow, SubscriptionRow, WebhookEventRow
from billing.plans import PLANS, add_interval
from billing.provider import Charge
from fitcore.db import Database, make_engine
from tests.conftest import Databases
from tests.service.billing_fakes import FakeProvider

SECRET = b"test-webhook-secret-0123456789abcdef"
_users = itertools.count(1)


@pytest.fixture(scope="module")
def billing_db(databases: Databases) -> Iterator[Database]:
    """A migrated billing database (SQLite and PostgreSQL), shared by a module's tests: each
    test works on its own users, subscriptions and charge ids."""
    url = databases.new()
    MIGRATIONS.upgrade(url)
    db = Database(make_engine(url))
    yield db
    db.dispose()


def new_user_id() -> int:
    return 10_000_000 + next(_users) * 1000 + uuid.uuid4().int % 1000


class RecordingProvider(FakeProvider):
    """FakeProvider that also records every idempotency key, in call order."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay)
        self.keys: list[str] = []
        self._keys_lock = threading.Lock()

    def charge(
        self,
        *,
        payment_method_token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
        metadata: dict[str, str],
    ) -> Charge:
        with self._keys_lock:
            self.keys.append(idempotency_key)
        return super().charge(
            payment_method_token=payment_method_token,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            description=description,
            metadata=metadata,
        )


@dataclass(frozen=True)
class Seeded:
    subscription_id: int
    payment_id: int
    user_id: int
    charge_id: str


def seed(
    db: Database,
    now: datetime,
    *,
    status: str = states.ACTIVE,
    payment_status: str = payments.SUCCEEDED,
    kind: str = payments.CHECKOUT,
    plan_id: str = "premium_monthly",
    token: str = "tok_visa",
    period_end: datetime | None = None,
    cancel_at_period_end: bool = False,
    charge_id: str | None = None,
    with_charge_id: bool = True,
) -> Seeded:
    """A subscription in `status` and one payment of its current period (what checkout leaves:
    `incomplete` + `pending`, or `active` + `succeeded`)."""
    plan = PLANS[plan_id]
    end = period_end or add_interval(now, plan.interval)
    start = now if period_end is None else end - timedelta(days=30)
    user_id = new_user_id()
    charge = charge_id or f"ch_test_{uuid.uuid4().hex[:16]}"
    with db.transaction() as s:
        sub = SubscriptionRow(
            user_id=user_id,
            plan_id=plan_id,
            status=status,
            current_period_start=start if status != states.INCOMPLETE else None,
            current_period_end=end if status != states.INCOMPLETE else None,
            cancel_at_period_end=cancel_at_period_end,
            payment_method_token=token,
            card_brand="visa",
            card_last4="4242",
            renewal_attempts=0,
            created_at=now,
            updated_at=now,
        )
        s.add(sub)
        states.record_created(s, sub, reason="seeded", actor="user", at=now)
        payment = PaymentRow(
            user_id=user_id,
            subscription_id=sub.id,
            provider_payment_id=charge if with_charge_id else None,
            kind=kind,
            plan_id=plan_id,
            amount=plan.amount,
            currency=plan.currency,
            status=payment_status,
            amount_refunded=0,
            failure_code="",
            card_brand="visa",
            card_last4="4242",
            period_start=start,
            period_end=end,
            next_action_url="",
            created_at=now,
            updated_at=now,
        )
        s.add(payment)
        s.flush()
        return Seeded(sub.id, payment.id, user_id, charge)


def subscription(db: Database, subscription_id: int) -> SubscriptionRow:
    with db.transaction(write=False) as s:
        row = s.get(SubscriptionRow, subscription_id)
        assert row is not None
        return row


def payment(db: Database, payment_id: int) -> PaymentRow:
    with db.transaction(write=False) as s:
        row = s.get(PaymentRow, payment_id)
        assert row is not None
        return row


def renewal_payments(db: Database, subscription_id: int) -> list[PaymentRow]:
    with db.transaction(write=False) as s:
        return list(
            s.scalars(
                select(PaymentRow)
                .where(
                    PaymentRow.subscription_id == subscription_id,
                    PaymentRow.kind == payments.RENEWAL,
                )
                .order_by(PaymentRow.id)
            )
        )


def audit(db: Database, subscription_id: int) -> list[tuple[str, str, str, str]]:
    """(from, to, reason, actor) of each transition, oldest first."""
    with db.transaction(write=False) as s:
        rows = s.scalars(
            select(SubscriptionEventRow)
            .where(SubscriptionEventRow.subscription_id == subscription_id)
            .order_by(SubscriptionEventRow.id)
        )
        return [(r.from_status, r.to_status, r.reason, r.actor) for r in rows]


def event_count(db: Database, event_id: str) -> int:
    with db.transaction(write=False) as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(WebhookEventRow)
                .where(WebhookEventRow.event_id == event_id)
            )
            or 0
        )


def event_body(
    event_type: str,
    charge_id: str,
    *,
    created: int,
    status: str | None = None,
    amount: int = 999,
    currency: str = "EUR",
    amount_refunded: int = 0,
    failure_code: str = "",
    metadata: dict[str, str] | None = None,
    event_id: str | None = None,
) -> bytes:
    """A provider event as the sandbox sends it (JSON bytes)."""
    doc: dict[str, Any] = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created": created,
        "data": {
            "charge": {
                "id": charge_id,
                "status": status if status is not None else event_type.removeprefix("charge."),
                "amount": amount,
                "currency": currency,
                "amount_refunded": amount_refunded,
                "failure_code": failure_code,
                "card_brand": "visa",
                "card_last4": "4242",
                "metadata": metadata or {},
            }
        },
    }
    return json.dumps(doc).encode()


def signed(body: bytes, at: int, secret: bytes = SECRET) -> str:
    return signatures.sign(secret, at, body)
