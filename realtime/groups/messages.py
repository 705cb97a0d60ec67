"""A group's messages: making them, and the store of the recent ones.

Every message takes the next `seq` of its group in the transaction that stores it (the
group's `last_seq`, updated under the group's row lock: see `lock_group`), so the database
gives each group one order that every instance and every member sees. Only the last
`kept` messages of a group are kept. A logged set is stored once per group (its `set_id`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fitco.groups.v1 import groups_pb2
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fitcore.timestamps import timestamp
from realtime.groups.models import GroupMessageRow, GroupRow

# Message types (GroupMessage.type).
MEMBER_JOINED = "MEMBER_JOINED"
MEMBER_LEFT = "MEMBER_LEFT"
SET_LOGGED = "SET_LOGGED"
CHAT = "CHAT"
CUE = "CUE"
# Why a member left (MemberLeft.reason).
LEFT, DROPPED, IDLE, REPLACED = "LEFT", "DROPPED", "IDLE", "REPLACED"

GroupMessage = groups_pb2.GroupMessage


def new_message(kind: str, user_id: int, display_name: str, at: datetime) -> GroupMessage:
    """A message without its `seq` (given when stored) nor its payload."""
    return GroupMessage(type=kind, time=timestamp(at), user_id=user_id, display_name=display_name)


def member_left(user_id: int, display_name: str, at: datetime, reason: str) -> GroupMessage:
    out = new_message(MEMBER_LEFT, user_id, display_name, at)
    out.member_left.reason = reason
    return out


def lock_group(s: Session, group_id: int) -> GroupRow | None:
    """The group's row, locked until the transaction ends: whoever stores a message in it or
    changes its members goes through here first (SQLite: the write transaction already holds
    the database's write lock)."""
    return s.scalars(select(GroupRow).where(GroupRow.id == group_id).with_for_update()).first()


def append(
    s: Session, group: GroupRow, message: GroupMessage, kept: int, *, set_id: int | None = None
) -> GroupMessage:
    """Store `message` as the group's next one (its `seq` is set here); `group` must have been
    locked by this transaction (lock_group). Older messages beyond `kept` are dropped."""
    group.last_seq += 1
    message.seq = group.last_seq
    s.add(
        GroupMessageRow(
            group_id=group.id,
            seq=message.seq,
            type=message.type,
            user_id=message.user_id,
            set_id=set_id,
            created_at=message.time.ToDatetime(tzinfo=UTC),
            body=message.SerializeToString(),
        )
    )
    if message.seq > kept:
        s.execute(
            delete(GroupMessageRow).where(
                GroupMessageRow.group_id == group.id, GroupMessageRow.seq <= message.seq - kept
            )
        )
    return message


def has_set(s: Session, group_id: int, set_id: int) -> bool:
    found = s.scalar(
        select(GroupMessageRow.seq).where(
            GroupMessageRow.group_id == group_id, GroupMessageRow.set_id == set_id
        )
    )
    return found is not None


def latest(s: Session, group_id: int, limit: int, before_seq: int = 0) -> list[GroupMessage]:
    """Up to `limit` messages, newest first, only those before `before_seq` (0: the newest)."""
    stmt = select(GroupMessageRow.body).where(GroupMessageRow.group_id == group_id)
    if before_seq > 0:
        stmt = stmt.where(GroupMessageRow.seq < before_seq)
    rows = s.scalars(stmt.order_by(GroupMessageRow.seq.desc()).limit(limit))
    return [GroupMessage.FromString(body) for body in rows]


def between(s: Session, group_id: int, after: int, upto: int) -> list[GroupMessage]:
    """The messages with `after` < seq <= `upto`, in order (what a member missed)."""
    rows = s.scalars(
        select(GroupMessageRow.body)
        .where(
            GroupMessageRow.group_id == group_id,
            GroupMessageRow.seq > after,
            GroupMessageRow.seq <= upto,
        )
        .order_by(GroupMessageRow.seq)
    )
    return [GroupMessage.FromString(body) for body in rows]
