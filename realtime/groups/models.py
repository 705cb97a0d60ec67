"""The realtime service's tables (its own database): groups, their members, the WOD a group
follows and the group's recent messages. The schema itself is made only by the realtime
Alembic migrations (realtime/migrations), checked against these models by a test.

A message is stored as the serialized fitco.groups.v1.GroupMessage it is sent as (the bytes
that go to the other instances and to the members), beside the columns queries need: the
group and its `seq` (the key), and a logged set's id (a set appears once per group).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fitcore.dbnames import NAMING_CONVENTION

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
Id = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class GroupRow(Base):
    """A group session. `last_seq` is its message counter: a new message takes
    `last_seq + 1` in the transaction that stores it (an UPDATE of this row, so concurrent
    writers of one group take turns on its row lock, on SQLite and PostgreSQL alike)."""

    __tablename__ = "groups"
    __table_args__ = (
        CheckConstraint(
            "member_count >= 0 AND member_count <= max_members", name="ck_groups_member_count"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(100))
    owner_user_id: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column(TS)
    invitation_code: Mapped[str] = mapped_column(String(32), unique=True)
    max_members: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer)
    # Members who ever joined: numbers the default display names ("Member N") uniquely.
    joins: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    # The day of the WOD the group follows ("YYYY-MM-DD"), None when it follows none.
    wod_date: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(TS)


class GroupMemberRow(Base):
    """A user's membership of a group, and their place in its live session: the connection
    that holds it (None: offline) and when that connection's instance last vouched for it (a
    connection of an instance that died stops counting once that is old)."""

    __tablename__ = "group_members"
    __table_args__ = (
        Index("ix_group_members_user_id", "user_id"),
        CheckConstraint("role IN ('OWNER', 'MEMBER')", name="ck_group_members_role"),
    )

    group_id: Mapped[int] = mapped_column(
        Id, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    display_name: Mapped[str] = mapped_column(String(40))
    joined_at: Mapped[datetime] = mapped_column(TS)
    connection_id: Mapped[str | None] = mapped_column(String(32))
    connection_seen_at: Mapped[datetime | None] = mapped_column(TS)


class GroupWodExerciseRow(Base):
    """One exercise of the WOD a group follows (the owner's, when the group was created)."""

    __tablename__ = "group_wod_exercises"

    group_id: Mapped[int] = mapped_column(
        Id, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    exercise_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    sets: Mapped[int] = mapped_column(Integer)
    reps: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[int] = mapped_column(Integer)


class GroupMessageRow(Base):
    """One of a group's recent messages (the last REALTIME_GROUP_KEPT_MESSAGES are kept)."""

    __tablename__ = "group_messages"
    __table_args__ = (
        # A set is stored once per group, whichever instance (or twice-delivered activity)
        # tried to store it. NULLs (every other message type) are distinct.
        Index("uq_group_messages_group_id_set_id", "group_id", "set_id", unique=True),
    )

    group_id: Mapped[int] = mapped_column(
        Id, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(BigInteger)
    set_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(TS)
    # The serialized fitco.groups.v1.GroupMessage.
    body: Mapped[bytes] = mapped_column(LargeBinary)
