"""This instance's live group connections, and the bus between instances.

Every stored message goes to the group's subject `fitco.groups.<id>` (core NATS, the
serialized GroupMessage) and, at once, to this instance's connections of the group; each
instance subscribes to the subject of every group it has connections to, while it has them.
A connection delivers by `seq` (see `session`): what arrives twice (locally, then echoed by
NATS) is dropped, and a gap is read from the database.

Sets logged through TrainingService arrive on `fitco.activity.user.<id>` (one wildcard
subscription per instance); the instance holding a member's connection to a group stores the
set there (once per group and set, whatever else delivers it: `LiveStore.set_logged`).

Every `presence_seconds` the instance vouches for its connections in the database, so a
connection of an instance that died stops counting as online (`GroupMemberRow`), and catches
them up with what the bus lost (`catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from fitco.groups.v1 import groups_pb2
from google.protobuf.message import DecodeError
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from fitcore.errors import Unavailable
from fitcore.eventbus import (
    ACTIVITY_HEADER,
    ACTIVITY_PREFIX,
    GROUPS_PREFIX,
    SET_LOGGED,
    group_subject,
    user_of_subject,
)
from realtime.groups.live_store import LiveStore
from realtime.groups.messages import GroupMessage

log = logging.getLogger("realtime.groups.hub")

# How long a new connection waits for NATS to confirm its group's subscription.
FLUSH_SECONDS = 5


class Member(Protocol):
    """A live connection as the hub sees it (realtime.groups.session.Connection)."""

    id: str
    user_id: int
    group_id: int
    # The seq of the last message it delivered.
    last_seq: int

    @property
    def established(self) -> bool:
        """Welcomed: holds the member's place in the session."""
        ...

    def offer(self, message: GroupMessage) -> None:
        """Hand a message of its group to the connection (never blocks)."""
        ...

    def shut_down(self) -> None:
        """End the connection: the server is stopping."""
        ...

    async def wait_closed(self) -> None: ...


class Hub:
    def __init__(self, nc: Nats, live: LiveStore, presence_seconds: float) -> None:
        self._nc = nc
        self._live = live
        self._presence_seconds = presence_seconds
        self._groups: dict[int, set[Member]] = defaultdict(set)
        self._users: dict[int, set[Member]] = defaultdict(set)
        self._subs: dict[int, Subscription] = {}
        # Subscribing and unsubscribing group subjects, one change at a time.
        self._subs_lock = asyncio.Lock()
        self._activity: Subscription | None = None
        self._presence: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._activity = await self._nc.subscribe(f"{ACTIVITY_PREFIX}*", cb=self._on_activity)
        self._presence = asyncio.create_task(self._vouch_loop(), name="groups-presence")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop taking activity, end every connection (each announces its departure) and wait
        for them, at most `grace_seconds`. New connections are refused from then on."""
        if self._stopping:
            return
        self._stopping = True
        if self._presence is not None:
            self._presence.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence
        if self._activity is not None:
            with contextlib.suppress(Exception):
                await self._activity.unsubscribe()
        members = [m for group in self._groups.values() for m in group]
        for member in members:
            member.shut_down()
        if members:
            await asyncio.wait(
                [asyncio.ensure_future(m.wait_closed()) for m in members], timeout=grace_seconds
            )

    # -- connections -----------------------------------------------------------------------

    async def attach(self, member: Member) -> None:
        """Receive the group's messages for `member` from now on (the group's subject is
        subscribed before this returns, so nothing stored afterwards is missed)."""
        if self._stopping:
            raise Unavailable("the server is shutting down: reconnect", reason="SHUTDOWN")
        self._groups[member.group_id].add(member)
        self._users[member.user_id].add(member)
        try:
            async with self._subs_lock:
                if member.group_id not in self._subs and member in self._groups.get(
                    member.group_id, ()
                ):
                    subject = group_subject(member.group_id)
                    sub = await self._nc.subscribe(subject, cb=self._on_group)
                    self._subs[member.group_id] = sub
                    # The server has the subscription: what is published from now on comes.
                    await self._nc.flush(timeout=FLUSH_SECONDS)
        except BaseException:
            await self.detach(member)  # NATS unreachable: the RPC fails (UNAVAILABLE)
            raise

    async def detach(self, member: Member) -> None:
        _discard(self._users, member.user_id, member)
        _discard(self._groups, member.group_id, member)
        async with self._subs_lock:
            sub = self._subs.get(member.group_id)
            if sub is not None and not self._groups.get(member.group_id):
                del self._subs[member.group_id]
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    def connected(self) -> list[Member]:
        return [m for group in self._groups.values() for m in group if m.established]

    # -- messages --------------------------------------------------------------------------

    async def publish(self, messages: Iterable[GroupMessage], group_id: int) -> None:
        """Deliver stored messages to this instance's connections and to the other
        instances. A failed publish loses nothing: the others read the gap when the group's
        next message reaches them, and reconnecting members get the recent ones."""
        for message in messages:
            self.dispatch(group_id, message)
            try:
                await self._nc.publish(group_subject(group_id), message.SerializeToString())
            except Exception:
                log.warning("group message not published", extra={"group_id": group_id})

    def dispatch(self, group_id: int, message: GroupMessage) -> None:
        for member in list(self._groups.get(group_id, ())):
            member.offer(message)

    async def _on_group(self, msg: Msg) -> None:
        group_id = user_of_subject(msg.subject, GROUPS_PREFIX)
        if group_id is None:
            return
        try:
            message = GroupMessage.FromString(msg.data)
        except DecodeError:
            log.warning("undecodable group message", extra={"group_id": group_id})
            return
        self.dispatch(group_id, message)

    async def _on_activity(self, msg: Msg) -> None:
        user_id = user_of_subject(msg.subject, ACTIVITY_PREFIX)
        if user_id is None or (msg.headers or {}).get(ACTIVITY_HEADER) != SET_LOGGED:
            return
        groups = {m.group_id for m in self._users.get(user_id, ()) if m.established}
        if not groups:
            return
        try:
            logged = groups_pb2.SetLogged.FromString(msg.data)
        except DecodeError:
            log.warning("undecodable set", extra={"user_id": user_id})
            return
        for group_id in sorted(groups):
            try:
                stored = await asyncio.to_thread(self._live.set_logged, user_id, group_id, logged)
            except Exception:
                log.exception("set not stored", extra={"group_id": group_id})
                continue
            if stored is not None:
                await self.publish([stored], group_id)

    async def catch_up(self) -> None:
        """Hand the connections what the bus did not bring them (it is at most once: a NATS
        outage, a dropped message, a group's last message that no later one exposes as a
        gap): the messages of their groups they are behind on, from the database."""
        behind: dict[int, int] = {}
        for member in self.connected():
            seen = behind.get(member.group_id, member.last_seq)
            behind[member.group_id] = min(seen, member.last_seq)
        if not behind:
            return
        latest = await asyncio.to_thread(self._live.last_seqs, list(behind))
        for group_id, seq in latest.items():
            if seq > behind[group_id]:
                missed = await asyncio.to_thread(
                    self._live.between, group_id, behind[group_id], seq
                )
                for message in missed:
                    self.dispatch(group_id, message)

    async def _vouch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._presence_seconds)
            try:
                await asyncio.to_thread(self._live.vouch, [m.id for m in self.connected()])
                await self.catch_up()
            except Exception:
                log.exception("could not vouch for the connections or catch them up")


def _discard(index: dict[int, set[Member]], key: int, member: Member) -> None:
    found = index.get(key)
    if found is not None:
        found.discard(member)
        if not found:
            del index[key]
