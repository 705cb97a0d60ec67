"""Reading groups and memberships, shared by the REST RPCs (`groups`) and the live sessions
(`live_store`): a group as one of its members sees it, who is online, the WOD it follows.

A group a user is not a member of does not exist for them: `member_group` answers NOT_FOUND,
the same as for an id nobody has.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fitcore.errors import NotFound
from realtime.groups.messages import lock_group
from realtime.groups.models import GroupMemberRow, GroupRow, GroupWodExerciseRow
from realtime.groups.views import GroupView, MemberView, Wod, WodExercise, utc


def group_not_found(group_id: int) -> NotFound:
    return NotFound(f"group {group_id} not found", reason="GROUP_NOT_FOUND")


def membership(s: Session, group_id: int, user_id: int) -> GroupMemberRow | None:
    return s.get(GroupMemberRow, (group_id, user_id))


def member_group(
    s: Session, group_id: int, user_id: int, *, lock: bool = False
) -> tuple[GroupRow, GroupMemberRow]:
    """The group and the caller's membership (the group's row locked with `lock`), or
    NOT_FOUND when the caller is not a member (or there is no such group)."""
    group = lock_group(s, group_id) if lock else s.get(GroupRow, group_id)
    member = membership(s, group_id, user_id) if group is not None else None
    if group is None or member is None:
        raise group_not_found(group_id)
    return group, member


def is_online(member: GroupMemberRow, now: datetime, ttl: timedelta) -> bool:
    """Connected now: a connection holds the member's place and its instance vouched for it
    recently (an instance that died stops vouching)."""
    seen = member.connection_seen_at
    return member.connection_id is not None and seen is not None and utc(seen) > now - ttl


def connections_of(s: Session, user_id: int, now: datetime, ttl: timedelta, *, but: int = 0) -> int:
    """How many groups the user is connected to now (the group `but` not counted)."""
    count = s.scalar(
        select(func.count())
        .select_from(GroupMemberRow)
        .where(
            GroupMemberRow.user_id == user_id,
            GroupMemberRow.group_id != but,
            GroupMemberRow.connection_id.is_not(None),
            GroupMemberRow.connection_seen_at > now - ttl,
        )
    )
    return int(count or 0)


def groups_of(s: Session, user_id: int) -> int:
    count = s.scalar(
        select(func.count()).select_from(GroupMemberRow).where(GroupMemberRow.user_id == user_id)
    )
    return int(count or 0)


def wods(s: Session, groups: Iterable[GroupRow]) -> dict[int, Wod]:
    """The WOD of each group that follows one, by group id (one query)."""
    dates = {g.id: g.wod_date for g in groups if g.wod_date is not None}
    if not dates:
        return {}
    rows = s.scalars(
        select(GroupWodExerciseRow)
        .where(GroupWodExerciseRow.group_id.in_(dates))
        .order_by(GroupWodExerciseRow.group_id, GroupWodExerciseRow.position)
    )
    exercises: dict[int, list[WodExercise]] = {gid: [] for gid in dates}
    for row in rows:
        exercises[row.group_id].append(WodExercise.of(row))
    return {gid: Wod(str(dates[gid]), tuple(exercises[gid])) for gid in dates}


def group_view(s: Session, group: GroupRow, user_id: int) -> GroupView:
    return GroupView.of(group, wods(s, [group]).get(group.id), user_id)


def members(s: Session, group_id: int, now: datetime, ttl: timedelta) -> list[MemberView]:
    """The group's members in the order they joined, with who is online."""
    rows = s.scalars(
        select(GroupMemberRow)
        .where(GroupMemberRow.group_id == group_id)
        .order_by(GroupMemberRow.joined_at, GroupMemberRow.user_id)
    )
    return [MemberView.of(m, is_online(m, now, ttl)) for m in rows]
