"""The database side of live sessions (Connect): taking and giving up a member's place in a
group's session, storing what members send and the sets they log. One transaction per call,
each starting with the group's row lock (`messages.lock_group`), so announcements, chat and
sets of a group take consecutive `seq`s in one order.

A member's place is held by one connection (its id in their membership row): connecting again
takes the place, announcing the previous connection as REPLACED (DROPPED when its instance
stopped vouching for it), and that connection ends when it delivers the announcement about
itself, on whichever instance it is. A connection whose place was taken cannot send
(`Displaced`), even before the announcement reached it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from fitco.groups.v1 import groups_pb2
from sqlalchemy import select, update

from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import ResourceExhausted
from realtime.groups import messages, store
from realtime.groups.limits import GroupLimits
from realtime.groups.messages import GroupMessage
from realtime.groups.models import GroupMemberRow, GroupRow
from realtime.groups.views import OWNER, GroupView, MemberView

# Connections vouched for per statement (bound parameters stay well under every limit).
VOUCH_BATCH = 500


class Displaced(Exception):
    """The connection no longer holds the member's place (replaced, or the member left)."""


@dataclass(frozen=True)
class Joined:
    """A connection's entry into the session: what its welcome shows, and the announcements
    made (the previous connection's departure, if any, then this one's arrival)."""

    group: GroupView
    members: list[MemberView]
    # The last `welcome_messages` messages, oldest first, ending with this arrival.
    recent: list[GroupMessage]
    announced: list[GroupMessage]
    display_name: str
    is_owner: bool

    @property
    def seq(self) -> int:
        """The seq of this connection's arrival: live messages follow it."""
        return self.announced[-1].seq


class LiveStore:
    def __init__(self, db: Database, clock: Clock, limits: GroupLimits) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits
        self._ttl = timedelta(seconds=limits.presence_ttl_seconds)

    def connect(self, user_id: int, group_id: int, connection_id: str) -> Joined:
        """Take the member's place in the group's session (NOT_FOUND for a non-member;
        RESOURCE_EXHAUSTED beyond the connections a user may hold)."""
        now = self._clock.now()
        kept = self._limits.kept_messages
        with self._db.transaction() as s:
            group, member = store.member_group(s, group_id, user_id, lock=True)
            held = store.connections_of(s, user_id, now, self._ttl, but=group_id)
            if held >= self._limits.connections_per_user:
                raise ResourceExhausted(
                    f"at most {self._limits.connections_per_user} group sessions at a time",
                    reason="TOO_MANY_CONNECTIONS",
                )
            announced = []
            if member.connection_id is not None:
                why = (
                    messages.REPLACED
                    if store.is_online(member, now, self._ttl)
                    else messages.DROPPED
                )
                left = messages.member_left(user_id, member.display_name, now, why)
                announced.append(messages.append(s, group, left, kept))
            member.connection_id = connection_id
            member.connection_seen_at = now
            joined = messages.new_message(messages.MEMBER_JOINED, user_id, member.display_name, now)
            announced.append(messages.append(s, group, joined, kept))
            s.flush()
            recent = messages.latest(s, group_id, self._limits.welcome_messages)
            return Joined(
                group=store.group_view(s, group, user_id),
                members=store.members(s, group_id, now, self._ttl),
                recent=recent[::-1],
                announced=announced,
                display_name=member.display_name,
                is_owner=member.role == OWNER,
            )

    def disconnect(
        self, user_id: int, group_id: int, connection_id: str, reason: str
    ) -> GroupMessage | None:
        """Give the place up, announced with `reason`; None when the connection no longer
        held it (its replacement or the member's leaving was announced instead)."""
        now = self._clock.now()
        with self._db.transaction() as s:
            group = messages.lock_group(s, group_id)
            member = store.membership(s, group_id, user_id) if group is not None else None
            if group is None or member is None or member.connection_id != connection_id:
                return None
            member.connection_id = None
            member.connection_seen_at = None
            left = messages.member_left(user_id, member.display_name, now, reason)
            return messages.append(s, group, left, self._limits.kept_messages)

    def post(
        self, user_id: int, group_id: int, connection_id: str, message: GroupMessage
    ) -> GroupMessage:
        """Store what a connected member sent (chat, cue), stamped with the time and their
        name. Raises Displaced when the connection no longer holds their place."""
        now = self._clock.now()
        with self._db.transaction() as s:
            group = messages.lock_group(s, group_id)
            member = store.membership(s, group_id, user_id) if group is not None else None
            if group is None or member is None or member.connection_id != connection_id:
                raise Displaced
            message.time.FromDatetime(now)
            message.user_id = user_id
            message.display_name = member.display_name
            return messages.append(s, group, message, self._limits.kept_messages)

    def set_logged(
        self, user_id: int, group_id: int, logged: groups_pb2.SetLogged
    ) -> GroupMessage | None:
        """Store a set the member logged while connected, once per group and set (None when
        it is there already, or the member is no longer connected to the group)."""
        now = self._clock.now()
        with self._db.transaction() as s:
            group = messages.lock_group(s, group_id)
            member = store.membership(s, group_id, user_id) if group is not None else None
            if group is None or member is None or member.connection_id is None:
                return None
            if messages.has_set(s, group_id, logged.set_id):
                return None
            out = messages.new_message(messages.SET_LOGGED, user_id, member.display_name, now)
            out.set_logged.CopyFrom(logged)
            return messages.append(s, group, out, self._limits.kept_messages, set_id=logged.set_id)

    def between(self, group_id: int, after: int, upto: int) -> list[GroupMessage]:
        with self._db.transaction(write=False) as s:
            return messages.between(s, group_id, after, upto)

    def last_seqs(self, group_ids: Iterable[int]) -> dict[int, int]:
        """The seq of each group's latest message."""
        with self._db.transaction(write=False) as s:
            rows = s.execute(
                select(GroupRow.id, GroupRow.last_seq).where(GroupRow.id.in_(list(group_ids)))
            )
            return {int(gid): int(seq) for gid, seq in rows}

    def vouch(self, connection_ids: Iterable[str]) -> None:
        """This instance still holds these connections (see GroupMemberRow)."""
        ids = list(connection_ids)
        now = self._clock.now()
        for start in range(0, len(ids), VOUCH_BATCH):
            with self._db.transaction() as s:
                s.execute(
                    update(GroupMemberRow)
                    .where(GroupMemberRow.connection_id.in_(ids[start : start + VOUCH_BATCH]))
                    .values(connection_seen_at=now)
                    .execution_options(synchronize_session=False)
                )
