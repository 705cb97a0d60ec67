"""A single-row claim that makes the admin bootstrap happen at most once, even when two
requests race (the second insert of row 1 fails inside its transaction).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bootstrap_claim",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_bootstrap_claim_single_row"),
    )


def downgrade() -> None:
    op.drop_table("bootstrap_claim")
