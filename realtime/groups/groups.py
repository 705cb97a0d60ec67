"""Groups over REST: create one, list and read the caller's, join with an invitation code,
leave, read a group's recent messages. One transaction per call.

Membership changes lock the group's row first (`messages.lock_group`), so the member count
and the "20 members" limit hold under concurrent joins, and a leave's announcement takes its
place in the group's order. The WOD a group follows is fetched from the coach by the caller of
`create` before anything is written: a group is never created half-way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import FailedPrecondition, NotFound, Validator
from realtime.groups import messages, store
from realtime.groups.limits import GroupLimits
from realtime.groups.messages import GroupMessage
from realtime.groups.models import GroupMemberRow, GroupRow, GroupWodExerciseRow
from realtime.groups.views import MEMBER, OWNER, GroupView, MemberView, Wod

# Invitation codes: 12 symbols of 32 (60 bits, from `secrets`), without 0/O and 1/I, shown
# as XXXX-XXXX-XXXX. Codes are read case-insensitively.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_BLOCKS, CODE_BLOCK = 3, 4
# A group starts at most this far ahead, and not in the past (with a minute of slack).
MAX_AHEAD = timedelta(days=30)
SLACK = timedelta(minutes=1)
# ListGroupMessages: 0 = this many; the contract caps page_size at 100.
DEFAULT_PAGE, MAX_PAGE = 50, 100


@dataclass(frozen=True)
class NewGroup:
    title: str
    starts_at: datetime
    display_name: str


def new_code() -> str:
    blocks = (
        "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_BLOCK))
        for _ in range(CODE_BLOCKS)
    )
    return "-".join(blocks)


def check_new(title: str, starts_at: datetime | None, display_name: str, now: datetime) -> NewGroup:
    """The rules of a new group beyond the contract's field limits (checked before)."""
    v = Validator()
    title = title.strip()
    v.check(bool(title), "title", "must not be blank")
    start = starts_at or now
    v.check(start >= now - SLACK, "starts_at", "must not be in the past")
    v.check(start <= now + MAX_AHEAD, "starts_at", "must be at most 30 days ahead")
    v.raise_if_any()
    return NewGroup(title, start, display_name.strip())


def too_many_groups(limit: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"a user belongs to at most {limit} groups: leave one first", reason="TOO_MANY_GROUPS"
    )


class Groups:
    def __init__(self, db: Database, clock: Clock, limits: GroupLimits) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits

    def check_new(self, title: str, starts_at: datetime | None, display_name: str) -> NewGroup:
        """A new group's request, checked before anything else happens (the coach's WOD)."""
        return check_new(title, starts_at, display_name, self._clock.now())

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self._limits.presence_ttl_seconds)

    def create(self, user_id: int, new: NewGroup, wod: Wod | None) -> GroupView:
        """A group owned by `user_id`, its first member, following `wod` when given."""
        now = self._clock.now()
        with self._db.transaction() as s:
            if store.groups_of(s, user_id) >= self._limits.groups_per_user:
                raise too_many_groups(self._limits.groups_per_user)
            code = new_code()
            while s.scalar(select(GroupRow.id).where(GroupRow.invitation_code == code)):
                code = new_code()  # 60 bits: a repeat is astronomically rare, still refused
            group = GroupRow(
                title=new.title,
                owner_user_id=user_id,
                starts_at=new.starts_at,
                invitation_code=code,
                max_members=self._limits.max_members,
                member_count=1,
                joins=1,
                last_seq=0,
                wod_date=wod.date if wod is not None else None,
                created_at=now,
            )
            s.add(group)
            s.flush()
            s.add(_member(group, user_id, OWNER, new.display_name, now))
            for position, e in enumerate(wod.exercises if wod is not None else ()):
                s.add(
                    GroupWodExerciseRow(
                        group_id=group.id,
                        position=position,
                        exercise_id=e.exercise_id,
                        name=e.name,
                        sets=e.sets,
                        reps=e.reps,
                        weight=e.weight,
                        duration_seconds=e.duration_seconds,
                    )
                )
            return GroupView.of(group, wod, user_id)

    def list_for(self, user_id: int) -> list[GroupView]:
        """The caller's groups, by start time, newest first."""
        with self._db.transaction(write=False) as s:
            rows = list(
                s.scalars(
                    select(GroupRow)
                    .join(GroupMemberRow, GroupMemberRow.group_id == GroupRow.id)
                    .where(GroupMemberRow.user_id == user_id)
                    .order_by(GroupRow.starts_at.desc(), GroupRow.id.desc())
                )
            )
            followed = store.wods(s, rows)
            return [GroupView.of(g, followed.get(g.id), user_id) for g in rows]

    def get(self, user_id: int, group_id: int) -> tuple[GroupView, list[MemberView]]:
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            group, _ = store.member_group(s, group_id, user_id)
            return store.group_view(s, group, user_id), store.members(s, group_id, now, self._ttl)

    def join(self, user_id: int, code: str, display_name: str) -> GroupView:
        """Join the group of `code`; a member already gets it unchanged (safe to retry)."""
        now = self._clock.now()
        normalized = code.strip().upper()
        with self._db.transaction() as s:
            found = s.scalar(select(GroupRow.id).where(GroupRow.invitation_code == normalized))
            group = messages.lock_group(s, found) if found is not None else None
            if group is None:
                raise NotFound("no group has this invitation code", reason="INVITATION_NOT_FOUND")
            if store.membership(s, group.id, user_id) is not None:
                return store.group_view(s, group, user_id)
            if group.member_count >= group.max_members:
                raise FailedPrecondition(
                    f"the group is full ({group.max_members} members)", reason="GROUP_FULL"
                )
            if store.groups_of(s, user_id) >= self._limits.groups_per_user:
                raise too_many_groups(self._limits.groups_per_user)
            group.member_count += 1
            group.joins += 1
            s.add(_member(group, user_id, MEMBER, display_name.strip(), now))
            s.flush()
            return store.group_view(s, group, user_id)

    def leave(self, user_id: int, group_id: int) -> GroupMessage | None:
        """End the caller's membership. When a connection of theirs holds their place in the
        live session, the announcement that they LEFT is returned (stored already) so the
        caller sends it to the group: that connection ends on it."""
        now = self._clock.now()
        with self._db.transaction() as s:
            group, member = store.member_group(s, group_id, user_id, lock=True)
            if member.role == OWNER:
                raise FailedPrecondition(
                    "the owner cannot leave the group", reason="OWNER_CANNOT_LEAVE"
                )
            announced = None
            if member.connection_id is not None:
                left = messages.member_left(user_id, member.display_name, now, messages.LEFT)
                announced = messages.append(s, group, left, self._limits.kept_messages)
            s.delete(member)
            group.member_count -= 1
            return announced

    def messages(
        self, user_id: int, group_id: int, page_size: int, before_seq: int
    ) -> list[GroupMessage]:
        """The group's recent messages, newest first, before `before_seq` (0: the newest)."""
        size = DEFAULT_PAGE if page_size <= 0 else min(page_size, MAX_PAGE)
        with self._db.transaction(write=False) as s:
            store.member_group(s, group_id, user_id)
            return messages.latest(s, group_id, size, before_seq)


def _member(
    group: GroupRow, user_id: int, role: str, display_name: str, now: datetime
) -> GroupMemberRow:
    return GroupMemberRow(
        group_id=group.id,
        user_id=user_id,
        role=role,
        # "" = "Member N", N counting every member who ever joined (unique in the group).
        display_name=display_name or f"Member {group.joins}",
        joined_at=now,
        connection_id=None,
        connection_seen_at=None,
    )
