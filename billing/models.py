"""Billing's tables (its own database). The schema itself is made only by billing's Alembic
migrations (billing/migrations), checked against these models by a test.

Money is integer minor units (BigInteger) with an ISO 4217 currency. No card number, CVC or
expiry is stored anywhere: a payment-method token from the provider, the brand and last 4.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fitcore.dbnames import NAMING_CONVENTION
from fitcore.outbox import outbox_table

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SubscriptionRow(Base):
    """One subscription of a user to a paid plan. A user has at most one that is not canceled
    (a partial unique index); canceled ones stay as history."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_user_id_id", "user_id", "id"),
        Index("ix_subscriptions_status_current_period_end", "status", "current_period_end"),
        Index(
            "uq_subscriptions_one_open",
            "user_id",
            unique=True,
            sqlite_where=text("status <> 'canceled'"),
            postgresql_where=text("status <> 'canceled'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    plan_id: Mapped[str] = mapped_column(String(32))
    # incomplete | active | past_due | canceled (billing.domain.states)
    status: Mapped[str] = mapped_column(String(16))
    current_period_start: Mapped[datetime | None] = mapped_column(TS)
    current_period_end: Mapped[datetime | None] = mapped_column(TS)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(TS)
    # The provider's reusable payment-method token, and what may be shown of the card.
    payment_method_token: Mapped[str] = mapped_column(String(100))
    card_brand: Mapped[str] = mapped_column(String(16), default="")
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    # Failed renewal attempts in the current past_due run, and when to try again.
    renewal_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)


class PaymentRow(Base):
    """One charge at the provider (a checkout or a renewal) and what became of it."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_subscription_id_id", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    subscription_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    # The provider's charge id (unique; set once the provider answered).
    provider_payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # checkout | renewal
    plan_id: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    # pending | requires_action | succeeded | failed | refunded | partially_refunded
    status: Mapped[str] = mapped_column(String(24))
    amount_refunded: Mapped[int] = mapped_column(Money, default=0)
    failure_code: Mapped[str] = mapped_column(String(40), default="")
    card_brand: Mapped[str] = mapped_column(String(16), default="")
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    # The period this payment pays for.
    period_start: Mapped[datetime | None] = mapped_column(TS)
    period_end: Mapped[datetime | None] = mapped_column(TS)
    next_action_url: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)


class SubscriptionEventRow(Base):
    """Audit trail: every status transition of a subscription, who or what caused it."""

    __tablename__ = "subscription_events"
    __table_args__ = (Index("ix_subscription_events_subscription_id_id", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(BigInteger)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    # checkout | payment | webhook | renewal | cancel | refund | period_end ...
    reason: Mapped[str] = mapped_column(String(200))
    # user | admin | provider | clock
    actor: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(TS)


class IdempotencyKeyRow(Base):
    """A client's Idempotency-Key and the first answer given for it (kept 24 h)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 of the request's parameters (method + canonical request bytes).
    request_hash: Mapped[str] = mapped_column(String(64))
    # in_progress | done
    state: Mapped[str] = mapped_column(String(16))
    # The stored answer: a serialized response message, or an error (code, reason, message).
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    error_code: Mapped[str] = mapped_column(String(32), default="")
    error_reason: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)


class WebhookEventRow(Base):
    """A provider event already applied (deduplication on the event id, written in the same
    transaction as the event's effect)."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    # When the provider created the event, and when it arrived (webhook lag).
    created_at: Mapped[datetime] = mapped_column(TS)
    received_at: Mapped[datetime] = mapped_column(TS)


# SUBSCRIPTION_CHANGED events, written with the audited transition that causes them, for the
# relay to publish (fitcore.outbox, migration 0002).
EVENT_OUTBOX = outbox_table(Base.metadata)
