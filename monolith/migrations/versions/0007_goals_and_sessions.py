"""Goals, workout sessions (their sets are exercise history), the profile's activity level and
time zone, and the served WOD's kind and notes (WOD v2).

Additive only: every new column is nullable or has a server default, so the previous release
keeps running against this schema during a rolling deploy. The history CHECK constraint gains
the "session" source (a batch copy of the table on SQLite, an ALTER on PostgreSQL).

Unnamed constraints and indexes are named by the convention in `monolith.models`.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
ACTIVE = sa.text("status = 'ACTIVE'")


def upgrade() -> None:
    op.add_column("profiles", sa.Column("activity_level", sa.String(16)))
    op.add_column("profiles", sa.Column("time_zone", sa.String(64)))
    op.add_column(
        "served_wods",
        sa.Column("kind", sa.String(16), nullable=False, server_default="training"),
    )
    op.add_column("served_wods", sa.Column("notes", sa.JSON()))
    op.create_table(
        "goals",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_value", sa.Float(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("exercise_id", ID, sa.ForeignKey("exercises.id", ondelete="RESTRICT")),
        sa.Column("start_value", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("achieved_at", TS),
        sa.CheckConstraint(
            "kind IN ('weight_loss', 'muscle_gain', 'strength', 'endurance')",
            name="ck_goals_kind",
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'ACHIEVED', 'ABANDONED', 'EXPIRED')", name="ck_goals_status"
        ),
    )
    op.create_index("ix_goals_user_id_status_id", "goals", ["user_id", "status", "id"])
    op.create_table(
        "workout_sessions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("from_wod", sa.Boolean(), nullable=False),
        sa.Column("wod_id", ID, sa.ForeignKey("served_wods.id", ondelete="SET NULL")),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("auto_closed", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("calories", sa.Float(), nullable=False),
        sa.Column("volume_kg", sa.Float(), nullable=False),
        sa.Column("set_count", sa.Integer(), nullable=False),
        sa.Column("body_weight_kg", sa.Float(), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE', 'ENDED')", name="ck_workout_sessions_status"),
    )
    op.create_index(
        "ix_workout_sessions_user_id_started_at_id",
        "workout_sessions",
        ["user_id", "started_at", "id"],
    )
    op.create_index(
        "uq_workout_sessions_one_active",
        "workout_sessions",
        ["user_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    with op.batch_alter_table("exercise_history") as batch:
        batch.add_column(
            sa.Column("session_id", ID, sa.ForeignKey("workout_sessions.id", ondelete="CASCADE"))
        )
        batch.add_column(sa.Column("client_set_id", sa.String(64)))
        batch.add_column(sa.Column("rpe", sa.Float(), nullable=False, server_default="0"))
        batch.drop_constraint("ck_history_source", type_="check")
        batch.create_check_constraint(
            "ck_history_source", sa.text("source IN ('logged', 'wod', 'session')")
        )
        batch.create_unique_constraint(
            "uq_exercise_history_session_id_client_set_id", ["session_id", "client_set_id"]
        )
    op.create_index(
        "ix_exercise_history_user_id_exercise_id_performed_at",
        "exercise_history",
        ["user_id", "exercise_id", "performed_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_exercise_history_user_id_exercise_id_performed_at", table_name="exercise_history"
    )
    op.execute("DELETE FROM exercise_history WHERE source = 'session'")
    with op.batch_alter_table("exercise_history") as batch:
        batch.drop_constraint("uq_exercise_history_session_id_client_set_id", type_="unique")
        batch.drop_constraint("ck_history_source", type_="check")
        batch.create_check_constraint("ck_history_source", sa.text("source IN ('logged', 'wod')"))
        batch.drop_column("rpe")
        batch.drop_column("client_set_id")
        batch.drop_column("session_id")
    op.drop_index("uq_workout_sessions_one_active", table_name="workout_sessions")
    op.drop_index("ix_workout_sessions_user_id_started_at_id", table_name="workout_sessions")
    op.drop_table("workout_sessions")
    op.drop_index("ix_goals_user_id_status_id", table_name="goals")
    op.drop_table("goals")
    op.drop_column("served_wods", "notes")
    op.drop_column("served_wods", "kind")
    op.drop_column("profiles", "time_zone")
    op.drop_column("profiles", "activity_level")
