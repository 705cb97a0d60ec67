"""Connect: one member's live connection to a group's session.

The first request is `hello`; the connection registers with the hub (so nothing stored from
then on is missed), takes the member's place (`LiveStore.connect`, announcing MEMBER_JOINED)
and answers `welcome`. Then three tasks run until the connection ends:
- the reader takes the member's requests: chat and cues (rate-limited, validated, stored and
  published), pings, `leave` / end of the request stream (LEFT);
- the writer delivers the group's messages in `seq` order, once each, reading a gap from the
  database, and the rejections of the member's requests;
- the idle watch ends a connection that sent nothing for `idle_seconds` (IDLE).
Whatever ends it (see `Ending`), its departure is announced unless another connection or the
member's leaving already was; a cancelled RPC (the client went away) is DROPPED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from fitco.groups.v1 import groups_pb2

from fitcore.errors import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from fitcore.validation import check_request
from realtime.groups import convert, messages
from realtime.groups.hub import Hub
from realtime.groups.limits import GroupLimits, RateLimiter
from realtime.groups.live_store import Displaced, Joined, LiveStore
from realtime.groups.messages import GroupMessage
from realtime.groups.posts import (
    ALREADY_CONNECTED,
    INVALID_ARGUMENT,
    RATE_LIMITED,
    Refused,
    message_of,
)

Requests = AsyncIterator[groups_pb2.ConnectRequest]
Context = grpc.aio.ServicerContext[groups_pb2.ConnectRequest, groups_pb2.ConnectResponse]
Outgoing = GroupMessage | groups_pb2.Rejected
# How long the end of a member's requests waits for a cancellation of the RPC (which comes
# within a millisecond when the connection broke) before it counts as leaving.
HALF_CLOSE_GRACE_SECONDS = 0.25


@dataclass(frozen=True)
class Ending:
    """How a connection ends: the departure to announce (a MemberLeft reason, None when it
    was announced already) and the error to end the RPC with (None: OK)."""

    announce: str | None
    error: ServiceError | None = None


LEAVING = Ending(messages.LEFT)
DISPLACED = Ending(None)
IDLE = Ending(
    messages.IDLE, DeadlineExceeded("nothing sent for too long: reconnect", reason="IDLE")
)
FLOODING = Ending(
    messages.DROPPED,
    ResourceExhausted("too many messages refused: disconnected", reason="RATE_LIMITED"),
)
TOO_SLOW = Ending(
    messages.DROPPED,
    ResourceExhausted("messages not read fast enough: disconnected", reason="TOO_SLOW"),
)
SHUTTING_DOWN = Ending(
    messages.DROPPED, Unavailable("the server is shutting down: reconnect", reason="SHUTDOWN")
)


class Connection:
    """One member's connection on this instance (a hub Member)."""

    def __init__(self, user_id: int, group_id: int, limits: GroupLimits) -> None:
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        self.group_id = group_id
        self.joined: Joined | None = None
        self.last_seq = 0
        self.limiter = RateLimiter(limits)
        self.last_request = time.monotonic()
        self._queue_size = limits.queue_size
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.ending: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()

    @property
    def established(self) -> bool:
        return self.joined is not None and not self.ending.done()

    def offer(self, message: GroupMessage) -> None:
        if self.ending.done():
            return
        if self.queue.qsize() >= self._queue_size:
            self.end(TOO_SLOW)
            return
        self.queue.put_nowait(message)

    def reject(self, reason: str, message: str) -> None:
        self.queue.put_nowait(groups_pb2.Rejected(reason=reason, message=message))

    def end(self, ending: Ending) -> None:
        if not self.ending.done():
            self.ending.set_result(ending)

    def shut_down(self) -> None:
        self.end(SHUTTING_DOWN)

    def closed(self) -> None:
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class Sessions:
    def __init__(self, live: LiveStore, hub: Hub, limits: GroupLimits) -> None:
        self._live = live
        self._hub = hub
        self._limits = limits

    async def run(self, user_id: int, requests: Requests, context: Context) -> Ending | None:
        """Serve one Connect; the Ending it ended with (None when the RPC was cancelled)."""
        hello = await self._hello(requests)
        conn = Connection(user_id, hello.group_id, self._limits)
        ending: Ending | None = None
        await self._hub.attach(conn)
        # Taking the place runs to its end even if the RPC is cancelled meanwhile: the
        # departure is then announced (never a place held by a connection that is gone).
        connecting = asyncio.ensure_future(
            asyncio.to_thread(self._live.connect, user_id, hello.group_id, conn.id)
        )
        try:
            joined = await asyncio.shield(connecting)
            conn.joined, conn.last_seq = joined, joined.seq
            await self._hub.publish(joined.announced, conn.group_id)
            await context.write(groups_pb2.ConnectResponse(welcome=convert.welcome(joined)))
            ending = await self._serve(conn, requests, context)
        finally:
            conn.end(ending or Ending(messages.DROPPED))
            # Shielded: a cancelled RPC (the member's process is gone) is still announced.
            await asyncio.shield(self._depart(conn, ending, connecting))
        return ending

    async def _hello(self, requests: Requests) -> groups_pb2.Hello:
        try:
            first = await asyncio.wait_for(anext(requests), self._limits.idle_seconds)
        except TimeoutError:
            raise DeadlineExceeded("no hello: send it first", reason="IDLE") from None
        except StopAsyncIteration:
            first = groups_pb2.ConnectRequest()
        if not first.HasField("hello"):
            raise InvalidArgument([FieldViolation("hello", "the first request must be hello")])
        check_request(first)
        return first.hello

    async def _depart(
        self, conn: Connection, ending: Ending | None, connecting: asyncio.Future[Joined]
    ) -> None:
        reason = messages.DROPPED if ending is None else ending.announce
        try:
            with contextlib.suppress(Exception):  # refused (NOT_FOUND, ...): never joined
                conn.joined = conn.joined or await connecting
            if conn.joined is not None and reason is not None:
                left = await asyncio.to_thread(
                    self._live.disconnect, conn.user_id, conn.group_id, conn.id, reason
                )
                if left is not None:
                    await self._hub.publish([left], conn.group_id)
        finally:
            await self._hub.detach(conn)
            conn.closed()

    async def _serve(self, conn: Connection, requests: Requests, context: Context) -> Ending:
        tasks: list[asyncio.Future[Any]] = [
            asyncio.create_task(self._read(conn, requests)),
            asyncio.create_task(self._write(conn, context)),
            asyncio.create_task(self._watch_idle(conn)),
        ]
        try:
            await asyncio.wait([*tasks, conn.ending], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                failure = task.exception() if task.done() else None
                if failure is not None:
                    raise failure
            return await conn.ending
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, conn: Connection, requests: Requests) -> None:
        while not conn.ending.done():
            try:
                request = await anext(requests)
            except StopAsyncIteration:
                # The member closed their side (as good as `leave`), or their connection
                # broke: then the RPC's cancellation follows at once (grpc reports the end
                # of the requests first) and the departure is DROPPED instead.
                await asyncio.sleep(HALF_CLOSE_GRACE_SECONDS)
                conn.end(LEAVING)
                return
            conn.last_request = time.monotonic()
            await self._handle(conn, request)

    async def _handle(self, conn: Connection, request: groups_pb2.ConnectRequest) -> None:
        kind = request.WhichOneof("kind")
        if kind == "ping":
            return
        if kind == "leave":
            conn.end(LEAVING)
            return
        if not conn.limiter.allow():
            if conn.limiter.flooding:
                conn.end(FLOODING)  # its status says why
            else:
                conn.reject(RATE_LIMITED, "too many messages: slow down")
            return
        if kind == "hello":
            conn.reject(ALREADY_CONNECTED, "this connection is in the group's session already")
            return
        assert conn.joined is not None
        try:
            check_request(request)
            message = message_of(request, conn.joined)
        except InvalidArgument as exc:
            conn.reject(INVALID_ARGUMENT, exc.message)
            return
        except Refused as exc:
            conn.reject(exc.reason, exc.message)
            return
        try:
            stored = await asyncio.to_thread(
                self._live.post, conn.user_id, conn.group_id, conn.id, message
            )
        except Displaced:
            conn.end(DISPLACED)
            return
        await self._hub.publish([stored], conn.group_id)

    async def _write(self, conn: Connection, context: Context) -> None:
        while not conn.ending.done():
            item = await conn.queue.get()
            if isinstance(item, groups_pb2.Rejected):
                await context.write(groups_pb2.ConnectResponse(rejected=item))
                continue
            if item.seq <= conn.last_seq:
                continue  # delivered already (stored here, then echoed by the bus)
            if item.seq > conn.last_seq + 1:  # a gap: the bus lost some, the database has them
                missed = await asyncio.to_thread(
                    self._live.between, conn.group_id, conn.last_seq, item.seq - 1
                )
                for message in missed:
                    await self._deliver(conn, message, context)
            await self._deliver(conn, item, context)

    async def _deliver(self, conn: Connection, message: GroupMessage, context: Context) -> None:
        if message.seq <= conn.last_seq or conn.ending.done():
            return
        await context.write(groups_pb2.ConnectResponse(message=message))
        conn.last_seq = message.seq
        if message.type == messages.MEMBER_LEFT and message.user_id == conn.user_id:
            # About this member, after this connection's arrival: another connection took
            # their place, or they left the group. Announced already.
            conn.end(DISPLACED)

    async def _watch_idle(self, conn: Connection) -> None:
        while not conn.ending.done():
            left = conn.last_request + self._limits.idle_seconds - time.monotonic()
            if left <= 0:
                conn.end(IDLE)
                return
            await asyncio.sleep(left)
