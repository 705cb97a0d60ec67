"""Domain values as fitco.groups.v1 messages (the servicer's and the sessions' answers)."""

from __future__ import annotations

from fitco.groups.v1 import groups_pb2

from fitcore.timestamps import timestamp
from realtime.groups.live_store import Joined
from realtime.groups.views import GroupView, MemberView, Wod


def wod(view: Wod) -> groups_pb2.GroupWod:
    return groups_pb2.GroupWod(
        date=view.date,
        exercises=[
            groups_pb2.GroupWodExercise(
                exercise_id=e.exercise_id,
                name=e.name,
                sets=e.sets,
                reps=e.reps,
                weight=e.weight,
                duration_seconds=e.duration_seconds,
            )
            for e in view.exercises
        ],
    )


def group(view: GroupView) -> groups_pb2.Group:
    out = groups_pb2.Group(
        id=view.id,
        title=view.title,
        owner_user_id=view.owner_user_id,
        starts_at=timestamp(view.starts_at),
        invitation_code=view.invitation_code,
        member_count=view.member_count,
        max_members=view.max_members,
        created_at=timestamp(view.created_at),
        role=view.role,
    )
    if view.wod is not None:
        out.wod.CopyFrom(wod(view.wod))
    return out


def member(view: MemberView) -> groups_pb2.GroupMember:
    return groups_pb2.GroupMember(
        user_id=view.user_id,
        display_name=view.display_name,
        role=view.role,
        joined_at=timestamp(view.joined_at),
        online=view.online,
    )


def welcome(joined: Joined) -> groups_pb2.Welcome:
    return groups_pb2.Welcome(
        group=group(joined.group),
        members=[member(m) for m in joined.members],
        recent=joined.recent,
    )
