"""Consecutive failed logins per email key, for the per-account login back-off.

The key is a SHA-256 of the normalised email (the same for registered and unknown emails), so
no foreign key to users: a flood against an unknown email is throttled like one against a real
account, and the rows say nothing about which emails exist.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("failures >= 0", name="ck_login_attempts_failures"),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
