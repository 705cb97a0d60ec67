"""The order of one WatchEvents stream and the dispatcher's routing and caps, with interleavings
a real server cannot be made to produce on demand (an event stored while the replay is under
way, a live event after a lost one, a consumer that stops reading). The log here is in memory;
tests/service/test_events.py runs the same code against NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from fitco.events.v1 import events_pb2
from nats.aio.client import Client
from nats.aio.msg import Msg

from fitcore.clock import FixedClock
from fitcore.errors import InvalidArgument, ResourceExhausted
from fitcore.eventbus import LAST_SEQUENCE_HEADER, SEQUENCE_HEADER, live_events_subject
from realtime.events.dispatch import Dispatcher, LiveEvent, Watcher
from realtime.events.log import StoredEvent, decode
from realtime.events.watch import Watch, WatchSettings, parse_after_event_id

USER, OTHER = 7, 8
CLOCK = FixedClock(datetime(2026, 11, 20, 9, 30, tzinfo=UTC))


def event(n: int) -> events_pb2.WatchEventsResponse:
    return events_pb2.WatchEventsResponse(type="STREAK", streak=events_pb2.Streak(days=n))


class MemoryLog:
    """The log's reading side: (seq, user, event) in sequence order. `on_read(count)` runs
    before each read, to store events while a stream is reading."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, events_pb2.WatchEventsResponse]] = []
        self.reads = 0
        self.on_read: Callable[[int], None] = lambda _reads: None

    def store(self, user_id: int, n: int) -> LiveEvent:
        """Store an event; what the republish would deliver live."""
        seq = (self.rows[-1][0] if self.rows else 0) + 1
        previous = max((s for s, u, _ in self.rows if u == user_id), default=0)
        self.rows.append((seq, user_id, event(n)))
        return LiveEvent(seq, previous, decode(seq, event(n).SerializeToString()))

    async def next_after(self, user_id: int, seq: int) -> StoredEvent | None:
        self.reads += 1
        self.on_read(self.reads)
        for s, u, e in self.rows:
            if u == user_id and s > seq:
                return StoredEvent(s, decode(s, e.SerializeToString()))
        return None


def watch(
    log: MemoryLog, watcher: Watcher, position: int, **settings: Any
) -> AsyncGenerator[events_pb2.WatchEventsResponse, None]:
    limits = WatchSettings(**{"heartbeat_seconds": 60.0, "max_seconds": 60.0, **settings})
    return Watch(watcher, log, position, limits, CLOCK).responses()


async def take(stream: AsyncIterator[events_pb2.WatchEventsResponse], count: int) -> list[str]:
    return [(await asyncio.wait_for(anext(stream), 2)).id for _ in range(count)]


def test_events_stored_during_the_replay_are_sent_once_in_order() -> None:
    async def run() -> None:
        log = MemoryLog()
        for n in range(5):  # the user's events are the odd sequences 1..9
            log.store(USER, n)
            log.store(OTHER, n)
        watcher = Watcher(USER, 16, 10.0)

        def during_replay(reads: int) -> None:
            if reads == 2:  # one event replayed: two more are stored, and come live too
                watcher.offer(log.store(USER, 10))
                watcher.offer(log.store(USER, 11))

        log.on_read = during_replay
        stream = watch(log, watcher, position=1)
        assert await take(stream, 6) == ["3", "5", "7", "9", "11", "12"]
        # Their live copies were skipped: what comes next is the next event.
        watcher.offer(log.store(USER, 12))
        assert await take(stream, 1) == ["13"]
        await stream.aclose()

    asyncio.run(run())


def test_a_live_event_after_a_lost_one_reads_the_gap_first() -> None:
    async def run() -> None:
        log = MemoryLog()
        watcher = Watcher(USER, 16, 10.0)
        first = log.store(USER, 1)
        stream = watch(log, watcher, position=first.seq)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)  # replayed (nothing), now waiting for live events
        lost = log.store(USER, 2)  # its live copy never arrived (a reconnect)
        log.store(OTHER, 3)
        arrived = log.store(USER, 4)
        assert arrived.previous == lost.seq
        watcher.offer(arrived)
        assert (await asyncio.wait_for(waiting, 2)).id == str(lost.seq)
        assert await take(stream, 1) == [str(arrived.seq)]
        # After a reconnect the stream re-reads the log without waiting for a live event.
        quiet = log.store(USER, 5)
        watcher.request_resync()
        assert await take(stream, 1) == [str(quiet.seq)]
        await stream.aclose()

    asyncio.run(run())


def test_a_consumer_that_falls_behind_on_live_events_is_closed_slow_consumer() -> None:
    async def run() -> None:
        log = MemoryLog()
        watcher = Watcher(USER, 2, 10.0)
        stream = watch(log, watcher, position=0)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)  # replayed (nothing), now waiting for live events
        watcher.offer(log.store(USER, 1))
        assert (await asyncio.wait_for(waiting, 2)).id == "1"  # the client stops reading
        for n in (2, 3, 4):
            watcher.offer(log.store(USER, n))
        assert watcher.overflowed
        with pytest.raises(ResourceExhausted) as info:
            await anext(stream)
        assert info.value.reason == "SLOW_CONSUMER"

    asyncio.run(run())


def test_live_events_dropped_while_reading_the_log_are_read_from_it() -> None:
    async def run() -> None:
        log = MemoryLog()
        for n in range(3):
            log.store(USER, n)
        watcher = Watcher(USER, 1, 10.0)

        def during_replay(reads: int) -> None:
            if reads <= 3:  # more live events than the queue holds, while replaying
                for n in range(3):
                    watcher.offer(log.store(USER, 10 * reads + n))

        log.on_read = during_replay
        stream = watch(log, watcher, position=0)
        assert await take(stream, 3 + 9) == [str(s) for s in range(1, 13)]
        watcher.offer(log.store(USER, 99))
        assert await take(stream, 1) == ["13"]
        await stream.aclose()

    asyncio.run(run())


def test_a_stream_stuck_writing_to_a_client_that_reads_nothing_is_cancelled() -> None:
    async def run() -> None:
        stuck = asyncio.Event()

        aborted: list[int] = []

        async def abort() -> None:
            aborted.append(USER)

        async def stream() -> None:
            watcher = Watcher(USER, 2, stuck_seconds=0.05)
            watcher.abort = abort
            for seq in (1, 2, 3):
                watcher.offer(LiveEvent(seq, seq - 1, event(seq)))
            stuck.set()
            await asyncio.Event().wait()  # a write the client never takes

        task = asyncio.create_task(stream())
        await stuck.wait()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        assert aborted == [USER]  # the client was told before the handler was cancelled

        async def still_sending() -> None:
            watcher = Watcher(USER, 1, stuck_seconds=0.05)
            watcher.abort = abort
            watcher.offer(LiveEvent(1, 0, event(1)))
            watcher.offer(LiveEvent(2, 1, event(2)))
            for _ in range(15):  # a long read of the log, the client taking every event
                await asyncio.sleep(0.02)
                watcher.sent += 1
            watcher.finished = True  # then the stream ended by itself (unregistered)
            await asyncio.sleep(0.1)

        await asyncio.wait_for(still_sending(), 2)  # not cancelled
        assert aborted == [USER]

    asyncio.run(run())


def test_heartbeats_carry_the_position_until_the_stream_times_out() -> None:
    async def run() -> None:
        log = MemoryLog()
        watcher = Watcher(USER, 4, 10.0)
        stream = watch(log, watcher, position=41, heartbeat_seconds=0.05, max_seconds=0.23)
        beats = [e async for e in stream]  # ends by itself, with OK
        assert 3 <= len(beats) <= 5
        assert {(b.type, b.id, b.HasField("heartbeat")) for b in beats} == {
            ("HEARTBEAT", "41", True)
        }
        assert beats[0].time.ToDatetime(tzinfo=UTC) == CLOCK.now()

    asyncio.run(run())


def test_closing_ends_the_stream() -> None:
    async def run() -> None:
        watcher = Watcher(USER, 4, 10.0)
        stream = watch(MemoryLog(), watcher, position=0)
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        watcher.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 2)

    asyncio.run(run())


def _dispatcher(per_user: int = 2, max_watchers: int = 3) -> Dispatcher:
    nc = cast("Client", None)  # routing and caps need no connection
    return Dispatcher(
        nc, per_user=per_user, max_watchers=max_watchers, queue_size=4, stuck_seconds=10.0
    )


def test_the_dispatcher_caps_watchers_per_user_and_per_process() -> None:
    async def run() -> None:
        dispatcher = _dispatcher()
        a1, _a2 = dispatcher.register(1), dispatcher.register(1)
        with pytest.raises(ResourceExhausted) as per_user:
            dispatcher.register(1)
        assert per_user.value.reason == "TOO_MANY_WATCHERS"
        dispatcher.register(2)
        with pytest.raises(ResourceExhausted) as per_process:
            dispatcher.register(3)
        assert per_process.value.reason == "TOO_MANY_WATCHERS"
        assert per_process.value.retry_after_seconds is not None
        dispatcher.unregister(a1)
        dispatcher.unregister(a1)  # twice: counted once
        assert dispatcher.watcher_count == 2
        dispatcher.register(3)

    asyncio.run(run())


def test_live_messages_go_to_the_users_watchers_only() -> None:
    async def run() -> None:
        dispatcher = _dispatcher(per_user=5, max_watchers=10)
        mine = [dispatcher.register(USER), dispatcher.register(USER)]
        theirs = dispatcher.register(OTHER)
        data = event(3).SerializeToString()
        headers = {SEQUENCE_HEADER: "12", LAST_SEQUENCE_HEADER: "9"}
        nc = cast("Client", None)
        await dispatcher._on_message(
            Msg(nc, subject=live_events_subject(USER), data=data, headers=headers)
        )
        # Without its headers, or on a subject that names no user: dropped.
        await dispatcher._on_message(Msg(nc, subject=live_events_subject(USER), data=data))
        await dispatcher._on_message(
            Msg(nc, subject="fitco.live.events.user.x", data=data, headers=headers)
        )
        for watcher in mine:
            live = watcher.queue.get_nowait()
            assert live is not None and (live.seq, live.previous) == (12, 9)
            assert live.event is not None and (live.event.id, live.event.streak.days) == ("12", 3)
            assert watcher.queue.empty()
        assert theirs.queue.empty()

    asyncio.run(run())


def test_after_event_id_parsing() -> None:
    assert parse_after_event_id("") is None
    assert parse_after_event_id("0") == 0
    assert parse_after_event_id("0042") == 42
    for bad in ("-1", "4.2", "٣", " 1"):
        with pytest.raises(InvalidArgument):
            parse_after_event_id(bad)
