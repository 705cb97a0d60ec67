"""Reading the event log (the FITCO_EVENTS stream, fitcore.eventbus) for watchers: where it
stands, a user's next event after a position, and whether a position can still be resumed from.

A user's events are read one direct get at a time ("the first message of this subject at or
after sequence N", about a quarter of a millisecond): a resume reads at most the 1,000 kept
events of one user, and a gap after a reconnect a handful. Direct gets are answered by any
server holding the stream, without creating a consumer per watcher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fitco.events.v1 import events_pb2
from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fitcore.errors import FailedPrecondition
from fitcore.eventbus import EVENTS_PER_USER, EVENTS_STREAM, events_subject

log = logging.getLogger("realtime.events")


@dataclass(frozen=True, slots=True)
class LogState:
    """The stream's first and last sequence (first = last + 1 when it holds nothing)."""

    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    # None: the stored bytes are not a WatchEventsResponse (skipped; the position moves on).
    event: events_pb2.WatchEventsResponse | None


def decode(seq: int, data: bytes | None) -> events_pb2.WatchEventsResponse | None:
    """The event stored at `seq`, its `id` set: producers store it with an empty id."""
    try:
        event = events_pb2.WatchEventsResponse.FromString(data or b"")
    except DecodeError:
        log.warning("undecodable event skipped", extra={"seq": seq})
        return None
    event.id = str(seq)
    return event


def events_expired() -> FailedPrecondition:
    return FailedPrecondition(
        "events after this id may no longer be kept: reload the state and watch without "
        "after_event_id",
        reason="EVENTS_EXPIRED",
    )


class EventLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def state(self) -> LogState:
        info = await self._js.stream_info(EVENTS_STREAM)
        return LogState(int(info.state.first_seq), int(info.state.last_seq))

    async def next_after(self, user_id: int, seq: int) -> StoredEvent | None:
        """The user's first kept event with a sequence above `seq`, None when there is none."""
        try:
            msg = await self._js.get_msg(
                EVENTS_STREAM, seq=seq + 1, subject=events_subject(user_id), next=True, direct=True
            )
        except NotFoundError:
            return None
        seq = int(msg.seq or 0)
        return StoredEvent(seq, decode(seq, msg.data))

    async def kept_count(self, user_id: int) -> int:
        """How many events of the user the stream holds."""
        subject = events_subject(user_id)
        info = await self._js.stream_info(EVENTS_STREAM, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def check_resumable(self, user_id: int, after: int, state: LogState) -> None:
        """EVENTS_EXPIRED when events of the user after `after` may have been dropped: the
        stream dropped its oldest messages past it (age), or the user's subject is at its cap
        and the oldest event it keeps is past it (count)."""
        if state.first_seq > after + 1:
            raise events_expired()
        # Something of the user's may lie between `after` and the first event kept only when
        # the cap made room by dropping it.
        first = await self.next_after(user_id, 0)
        if (
            first is not None
            and first.seq > after + 1
            and await self.kept_count(user_id) >= EVENTS_PER_USER
        ):
            raise events_expired()
