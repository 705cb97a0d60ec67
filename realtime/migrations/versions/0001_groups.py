"""Live group sessions: groups, members, the WOD a group follows, recent messages.

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


def _group_id(primary_key: bool = True) -> sa.Column[int]:
    return sa.Column(
        "group_id",
        ID,
        sa.ForeignKey("groups.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("owner_user_id", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("invitation_code", sa.String(32), nullable=False, unique=True),
        sa.Column("max_members", sa.Integer(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("joins", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("wod_date", sa.String(10)),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "member_count >= 0 AND member_count <= max_members", name="ck_groups_member_count"
        ),
    )
    op.create_table(
        "group_members",
        _group_id(),
        sa.Column("user_id", sa.BigInteger(), primary_key=True, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("display_name", sa.String(40), nullable=False),
        sa.Column("joined_at", TS, nullable=False),
        sa.Column("connection_id", sa.String(32)),
        sa.Column("connection_seen_at", TS),
        sa.CheckConstraint("role IN ('OWNER', 'MEMBER')", name="ck_group_members_role"),
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"])
    op.create_table(
        "group_wod_exercises",
        _group_id(),
        sa.Column("position", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("exercise_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sets", sa.Integer(), nullable=False),
        sa.Column("reps", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
    )
    op.create_table(
        "group_messages",
        _group_id(),
        sa.Column("seq", sa.BigInteger(), primary_key=True, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("set_id", sa.BigInteger()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "uq_group_messages_group_id_set_id", "group_messages", ["group_id", "set_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_group_messages_group_id_set_id", table_name="group_messages")
    op.drop_table("group_messages")
    op.drop_table("group_wod_exercises")
    op.drop_index("ix_group_members_user_id", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
