"""Events (issue #12, adr/10-real-time.md): the outbox the relay publishes from
(`event_outbox`, fitcore.outbox), the flag that sends GOAL_OFF_TRACK once per fall from on
track (`goals.off_track`), and the day a STREAK was last sent (`users.last_streak_day`).

Additive: a new table, a NOT NULL column with a server default and a nullable one, so the
previous release keeps running against this schema during a rolling deploy (it writes no
events; its changes simply produce none).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("dedup_key", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # Deleted rows' ids are never reused (their message ids must stay unique).
        sqlite_autoincrement=True,
    )
    op.add_column(
        "goals", sa.Column("off_track", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("last_streak_day", sa.Date()))


def downgrade() -> None:
    # Plain drops (SQLite >= 3.35): a batch copy of `users` would drop the table its
    # foreign keys point to.
    op.drop_column("users", "last_streak_day")
    op.drop_column("goals", "off_track")
    op.drop_table("event_outbox")
