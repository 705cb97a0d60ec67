"""One WatchEvents stream, in the contract's order (proto/fitco/events/v1/events.proto):

1. register with the dispatcher (live events queue up from now on), then check the request
   against the log: an id beyond its end is INVALID_ARGUMENT, one whose successors may be gone
   EVENTS_EXPIRED;
2. replay: the user's kept events after the given id, read from the log;
3. live: queued events with a sequence above the last one sent. An event whose previous
   sequence (of the same user) is above the position means something was missed (a NATS
   reconnect, a dropped message): the gap is read from the log first. Anything at or below
   the position was sent already (read during the replay or a gap read): skipped.

The position is "every event of the user up to this sequence was sent or came before the
watch": the id of the last event sent, the id given, or (watching live only) the stream's last
sequence when the watch started. Heartbeats carry it, so resuming after one misses nothing.
A stream ends with OK after `max_seconds` or when the server stops; a watcher that cannot keep
up is closed RESOURCE_EXHAUSTED (SLOW_CONSUMER); either way the client resumes with its last id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

import nats.errors
from fitco.events.v1 import events_pb2
from prometheus_client import Counter, Histogram

from fitcore.clock import Clock
from fitcore.config import ConfigError, Env
from fitcore.errors import FieldViolation, InvalidArgument, ResourceExhausted, Unavailable
from realtime.events.dispatch import Dispatcher, Watcher
from realtime.events.log import EventLog, StoredEvent

logger = logging.getLogger("realtime.events")

HEARTBEAT = "HEARTBEAT"

EVENTS_SENT = Counter("fitco_realtime_events_sent_total", "Events sent to watchers", ["type"])
DELIVERY_SECONDS = Histogram(
    "fitco_realtime_delivery_seconds",
    "From an event's time to its sending to a live watcher",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SLOW_CONSUMERS = Counter(
    "fitco_realtime_slow_consumers_total", "Streams closed because the client fell behind"
)


class LogReader(Protocol):
    """What a stream reads from the log (realtime.events.log.EventLog)."""

    async def next_after(self, user_id: int, seq: int) -> StoredEvent | None: ...


@dataclass(frozen=True)
class WatchSettings:
    """REALTIME_* limits of WatchEvents (defaults: the contract's)."""

    heartbeat_seconds: float = 15.0
    max_seconds: float = 3600.0
    per_user: int = 5
    max_watchers: int = 20000
    # Live events a watcher may have waiting before it counts as a slow consumer.
    queue_size: int = 256
    # How long a gap read retries a log that does not answer (JetStream recovering after a
    # NATS restart) before the stream ends UNAVAILABLE.
    resync_seconds: float = 15.0
    # A slow consumer's stream still open this long after its queue overflowed is stuck
    # writing to a client that reads nothing: it is ended from outside.
    stuck_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Env) -> WatchSettings:
        out = cls(
            heartbeat_seconds=env.get_float("REALTIME_HEARTBEAT_SECONDS", 15.0),
            max_seconds=env.get_float("REALTIME_STREAM_MAX_SECONDS", 3600.0),
            per_user=env.get_int("REALTIME_WATCHERS_PER_USER", 5),
            max_watchers=env.get_int("REALTIME_MAX_WATCHERS", 20000),
            queue_size=env.get_int("REALTIME_WATCHER_QUEUE", 256),
            resync_seconds=env.get_float("REALTIME_RESYNC_SECONDS", 15.0),
            stuck_seconds=env.get_float("REALTIME_STUCK_SECONDS", 10.0),
        )
        numbers = (out.heartbeat_seconds, out.max_seconds, out.per_user, out.max_watchers)
        if min(*numbers, out.queue_size, out.resync_seconds, out.stuck_seconds) <= 0:
            raise ConfigError("the REALTIME_* watch limits must be positive")
        return out


def parse_after_event_id(value: str) -> int | None:
    """The position a request resumes after (None: live only). The contract's pattern (digits)
    was checked by the interceptor; this states it again for any other caller."""
    if value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidArgument([FieldViolation("after_event_id", "must be an event id")])
    return int(value)


@asynccontextmanager
async def open_watch(
    user_id: int,
    after: int | None,
    *,
    dispatcher: Dispatcher,
    log: EventLog,
    settings: WatchSettings,
    clock: Clock,
) -> AsyncIterator[Watch]:
    """A registered, checked watch (step 1); unregistered when the block ends."""
    if not dispatcher.running:
        # Not connected to the event bus yet, or shutting down.
        raise Unavailable("not taking event streams right now; retry shortly", reason="NOT_READY")
    watcher = dispatcher.register(user_id)
    try:
        state = await log.state()
        if after is not None:
            if after > state.last_seq:
                raise InvalidArgument(
                    [FieldViolation("after_event_id", "is not an id this service gave")]
                )
            await log.check_resumable(user_id, after, state)
        position = state.last_seq if after is None else after
        yield Watch(watcher, log, position, settings, clock)
    finally:
        dispatcher.unregister(watcher)


def slow_consumer() -> ResourceExhausted:
    return ResourceExhausted(
        "events came faster than this stream read them: resume with the last id",
        reason="SLOW_CONSUMER",
    )


class Watch:
    def __init__(
        self,
        watcher: Watcher,
        log: LogReader,
        position: int,
        settings: WatchSettings,
        clock: Clock,
    ) -> None:
        self._watcher = watcher
        self._log = log
        self.position = position
        self._settings = settings
        self._clock = clock

    def abort_when_stuck(self, abort: Callable[[], Awaitable[object]]) -> None:
        """How to end the RPC (with `slow_consumer()`) when it is stuck writing to a client
        that reads nothing: the stream cannot close itself then (`stuck_seconds`)."""
        self._watcher.abort = abort

    async def responses(self) -> AsyncGenerator[events_pb2.WatchEventsResponse, None]:
        """Steps 2 and 3, with heartbeats, until the stream's time is up or it is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.max_seconds
        next_beat = loop.time() + self._settings.heartbeat_seconds
        async for event in self._read_log():
            yield event
        watcher = self._watcher
        while True:
            if watcher.closing:
                return
            if watcher.overflowed:
                SLOW_CONSUMERS.inc()
                raise slow_consumer()
            if watcher.resync:
                watcher.resync = False
                async for event in self._read_log():
                    yield event
            now = loop.time()
            if now >= deadline:
                return
            if now >= next_beat:
                yield self._heartbeat()
                next_beat += self._settings.heartbeat_seconds
                if next_beat <= now:  # the client was too slow to take the last one
                    next_beat = now + self._settings.heartbeat_seconds
                continue
            try:
                # A queued event is taken at once; otherwise wait under a timeout scope (no
                # task per wait, unlike asyncio.wait_for: it counts under a burst).
                live = watcher.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(min(deadline, next_beat) - now):
                        live = await watcher.queue.get()
                except TimeoutError:
                    continue
            if live is None or live.seq <= self.position:
                continue
            if live.previous > self.position:
                async for event in self._read_log():  # the gap, this event included
                    yield event
                continue
            self.position = live.seq
            if live.event is not None:
                self._observe_latency(live.event)
                yield self._sent(live.event)

    async def _read_log(self) -> AsyncIterator[events_pb2.WatchEventsResponse]:
        """The user's kept events after the position, oldest first, to the end of the log
        (live events dropped meanwhile included: see Watcher.recover)."""
        while True:
            stored = await self._retrying(
                lambda: self._log.next_after(self._watcher.user_id, self.position)
            )
            if stored is None:
                if self._watcher.recover():
                    continue
                return
            self.position = stored.seq
            if stored.event is not None:
                yield self._sent(stored.event)

    async def _retrying(
        self, read: Callable[[], Awaitable[StoredEvent | None]]
    ) -> StoredEvent | None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._settings.resync_seconds
        pause = 0.1
        while True:
            try:
                return await read()
            except (TimeoutError, nats.errors.Error) as exc:
                if loop.time() + pause > give_up:
                    raise Unavailable(
                        "the event log does not answer: resume with the last id shortly",
                        reason="EVENT_BUS_UNAVAILABLE",
                    ) from exc
                logger.info("event log read failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _heartbeat(self) -> events_pb2.WatchEventsResponse:
        beat = events_pb2.WatchEventsResponse(
            id=str(self.position), type=HEARTBEAT, heartbeat=events_pb2.Heartbeat()
        )
        beat.time.FromDatetime(self._clock.now())
        return self._sent(beat)

    def _sent(self, event: events_pb2.WatchEventsResponse) -> events_pb2.WatchEventsResponse:
        EVENTS_SENT.labels(event.type or "UNKNOWN").inc()
        self._watcher.sent += 1
        return event

    def _observe_latency(self, event: events_pb2.WatchEventsResponse) -> None:
        if event.HasField("time"):
            elapsed = self._clock.now() - event.time.ToDatetime(tzinfo=UTC)
            DELIVERY_SECONDS.observe(max(0.0, elapsed.total_seconds()))
