"""Groups and members as the domain answers them: plain frozen values read from rows (times
made aware UTC), so servicers convert them without touching the database.

Messages are not mirrored here: a message is a fitco.groups.v1.GroupMessage from the moment
it is made (that is what is stored, sent between instances and delivered), see `messages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from realtime.groups.models import GroupMemberRow, GroupRow, GroupWodExerciseRow

OWNER, MEMBER = "OWNER", "MEMBER"


def utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class WodExercise:
    exercise_id: int
    name: str
    sets: int
    reps: int
    weight: float
    duration_seconds: int

    @classmethod
    def of(cls, row: GroupWodExerciseRow) -> WodExercise:
        return cls(row.exercise_id, row.name, row.sets, row.reps, row.weight, row.duration_seconds)


@dataclass(frozen=True)
class Wod:
    """The WOD a group follows: the owner's of `date`, frozen when the group was created."""

    date: str
    exercises: tuple[WodExercise, ...]


@dataclass(frozen=True)
class GroupView:
    id: int
    title: str
    owner_user_id: int
    starts_at: datetime
    invitation_code: str
    member_count: int
    max_members: int
    wod: Wod | None
    created_at: datetime
    # The caller's role: OWNER or MEMBER.
    role: str

    @classmethod
    def of(cls, row: GroupRow, wod: Wod | None, user_id: int) -> GroupView:
        return cls(
            id=row.id,
            title=row.title,
            owner_user_id=row.owner_user_id,
            starts_at=utc(row.starts_at),
            invitation_code=row.invitation_code,
            member_count=row.member_count,
            max_members=row.max_members,
            wod=wod,
            created_at=utc(row.created_at),
            role=OWNER if row.owner_user_id == user_id else MEMBER,
        )


@dataclass(frozen=True)
class MemberView:
    user_id: int
    display_name: str
    role: str
    joined_at: datetime
    online: bool

    @classmethod
    def of(cls, row: GroupMemberRow, online: bool) -> MemberView:
        return cls(row.user_id, row.display_name, row.role, utc(row.joined_at), online)
