"""Billing: subscriptions, payments, their audit trail, idempotency keys, webhook events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
OPEN = sa.text("status <> 'canceled'")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_period_start", TS),
        sa.Column("current_period_end", TS),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", TS),
        sa.Column("payment_method_token", sa.String(100), nullable=False),
        sa.Column("card_brand", sa.String(16), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("renewal_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('incomplete', 'active', 'past_due', 'canceled')",
            name="ck_subscriptions_status",
        ),
    )
    op.create_index("ix_subscriptions_user_id_id", "subscriptions", ["user_id", "id"])
    op.create_index(
        "ix_subscriptions_status_current_period_end",
        "subscriptions",
        ["status", "current_period_end"],
    )
    op.create_index(
        "uq_subscriptions_one_open",
        "subscriptions",
        ["user_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "payments",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "subscription_id",
            ID,
            sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider_payment_id", sa.String(64), unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("plan_id", sa.String(32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("amount_refunded", MONEY, nullable=False),
        sa.Column("failure_code", sa.String(40), nullable=False),
        sa.Column("card_brand", sa.String(16), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("period_start", TS),
        sa.Column("period_end", TS),
        sa.Column("next_action_url", sa.String(300), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("amount >= 0 AND amount_refunded >= 0", name="ck_payments_amounts"),
        sa.CheckConstraint("amount_refunded <= amount", name="ck_payments_refund_le_amount"),
    )
    op.create_index("ix_payments_subscription_id_id", "payments", ["subscription_id", "id"])
    op.create_table(
        "subscription_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "subscription_id",
            ID,
            sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index(
        "ix_subscription_events_subscription_id_id",
        "subscription_events",
        ["subscription_id", "id"],
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.LargeBinary()),
        sa.Column("error_code", sa.String(32), nullable=False),
        sa.Column("error_reason", sa.String(64), nullable=False),
        sa.Column("error_message", sa.String(500), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_subscription_events_subscription_id_id", table_name="subscription_events")
    op.drop_table("subscription_events")
    op.drop_index("ix_payments_subscription_id_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index("uq_subscriptions_one_open", table_name="subscriptions")
    op.drop_index("ix_subscriptions_status_current_period_end", table_name="subscriptions")
    op.drop_index("ix_subscriptions_user_id_id", table_name="subscriptions")
    op.drop_table("subscriptions")
