"""Exercise history and served WODs (one per user and day).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "served_wods",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("implementation", sa.String(16), nullable=False),
        sa.Column("generated_at", TS, nullable=False),
        sa.UniqueConstraint("user_id", "day", name="uq_served_wods_user_day"),
    )
    op.create_table(
        "exercise_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "exercise_id",
            ID,
            sa.ForeignKey("exercises.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("performed_at", TS, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sets", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("weight_kg", sa.Float(), nullable=False, server_default="0"),
        sa.Column("duration_seconds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rest_seconds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("wod_id", ID, sa.ForeignKey("served_wods.id", ondelete="CASCADE")),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("source IN ('logged', 'wod')", name="ck_history_source"),
    )
    op.create_index("ix_exercise_history_user_day", "exercise_history", ["user_id", "day"])
    op.create_index(
        "ix_exercise_history_user_performed",
        "exercise_history",
        ["user_id", "performed_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_exercise_history_user_performed", table_name="exercise_history")
    op.drop_index("ix_exercise_history_user_day", table_name="exercise_history")
    op.drop_table("exercise_history")
    op.drop_table("served_wods")
