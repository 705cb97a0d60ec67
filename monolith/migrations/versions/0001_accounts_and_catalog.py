"""Accounts (users, profiles, preferences, body metrics) and the exercise catalog tables.

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
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
    )
    op.create_table(
        "profiles",
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("weight_kg", sa.Float()),
        sa.Column("height_cm", sa.Float()),
        sa.Column("fitness_goal", sa.String(32)),
        sa.Column("birth_year", sa.Integer()),
        sa.Column("sex", sa.String(16)),
        sa.Column("experience", sa.String(16)),
        sa.Column("onboarded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("equipment", sa.JSON(), nullable=False),
        sa.Column("training_days_per_week", sa.Integer(), nullable=False),
        sa.Column("session_minutes", sa.Integer(), nullable=False),
        sa.Column("avoid_muscle_group_ids", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "body_metrics",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("measured_at", TS, nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=False),
        sa.Column("body_fat_percent", sa.Float()),
        sa.Column("waist_cm", sa.Float()),
        sa.Column("resting_heart_rate", sa.Integer()),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_body_metrics_user_measured", "body_metrics", ["user_id", "measured_at", "id"]
    )
    op.create_table(
        "muscle_groups",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("body_part", sa.String(50), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("size", sa.String(16), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.UniqueConstraint("name", name="uq_muscle_groups_name"),
    )
    op.create_table(
        "exercises",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("difficulty", sa.Integer(), nullable=False),
        sa.Column("equipment", sa.String(32), nullable=False),
        sa.Column("equipment_needed", sa.JSON(), nullable=False),
        sa.Column("mechanic", sa.String(16), nullable=False),
        sa.Column("force", sa.String(16), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("measure", sa.String(16), nullable=False),
        sa.Column("met_value", sa.Float(), nullable=False),
        sa.Column("met_code", sa.String(8), nullable=False),
        sa.Column("rm_bodyweight_ratio", sa.Float(), nullable=False),
        sa.UniqueConstraint("name", name="uq_exercises_name"),
        sa.CheckConstraint("difficulty BETWEEN 1 AND 5", name="ck_exercises_difficulty"),
    )
    op.create_table(
        "exercise_muscle_groups",
        sa.Column(
            "exercise_id",
            ID,
            sa.ForeignKey("exercises.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "muscle_group_id",
            ID,
            sa.ForeignKey("muscle_groups.id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("intensity", sa.Float(), nullable=False),
        sa.CheckConstraint("intensity > 0 AND intensity <= 1", name="ck_emg_intensity"),
    )


def downgrade() -> None:
    op.drop_table("exercise_muscle_groups")
    op.drop_table("exercises")
    op.drop_table("muscle_groups")
    op.drop_index("ix_body_metrics_user_measured", table_name="body_metrics")
    op.drop_table("body_metrics")
    op.drop_table("preferences")
    op.drop_table("profiles")
    op.drop_table("users")
