"""The dispatcher: one core NATS subscription per process (`fitco.live.events.user.*`, where
the FITCO_EVENTS stream republishes every stored event) routing each event to this process's
watchers of that user.

A watcher is a bounded queue. The dispatcher never waits on one: an event that does not fit
marks the watcher overflowed, and its stream is closed (SLOW_CONSUMER) for the client to resume
from its last id, so one slow client costs others nothing. The dispatcher also admits watchers
(the per-user and per-process caps) and tells every watcher to re-read the log after a NATS
reconnect or a dropped message (what was republished meanwhile never arrived here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fitco.events.v1 import events_pb2
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from fitcore.errors import ResourceExhausted
from fitcore.eventbus import (
    LAST_SEQUENCE_HEADER,
    LIVE_EVENTS_PREFIX,
    SEQUENCE_HEADER,
    user_of_subject,
)
from realtime.events.log import decode

log = logging.getLogger("realtime.events")

WATCHERS = Gauge("fitco_realtime_watchers", "Open WatchEvents streams")
WATCHERS_REFUSED = Counter(
    "fitco_realtime_watchers_refused_total", "WatchEvents streams refused by a cap", ["cap"]
)
RESYNCS = Counter("fitco_realtime_resyncs_total", "Every watcher told to re-read the log", ["why"])


@dataclass(frozen=True, slots=True)
class LiveEvent:
    seq: int
    # The sequence of the user's event before this one (0: none): a watcher whose position is
    # below it has missed something.
    previous: int
    # Shared by every watcher of the user: never modified once built.
    event: events_pb2.WatchEventsResponse | None


class Watcher:
    """One open stream as the dispatcher sees it, made in the stream's task. `None` in the
    queue only wakes the stream to look at its flags.

    Overflowing while the stream reads the log (a replay, a gap) is harmless: what was dropped
    is in the log, and the stream reads on (`recover`). Overflowing while it sends live events
    means the client reads too slowly: the stream closes itself (SLOW_CONSUMER). And a stream
    that sends nothing for `stuck_seconds` after an overflow is stuck writing to a client that
    reads nothing: it cannot close itself, so it is ended from outside."""

    def __init__(self, user_id: int, queue_size: int, stuck_seconds: float) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(queue_size)
        self.overflowed = False
        self.closing = False
        self.resync = False
        self.finished = False
        # Events handed to the client so far (the stream counts them): progress.
        self.sent = 0
        # Ends the RPC with SLOW_CONSUMER from outside its task (set by the stream's servicer).
        self.abort: Callable[[], Awaitable[object]] | None = None
        self._task = asyncio.current_task()
        self._stuck_seconds = stuck_seconds
        self._overflows = 0
        self._ending: asyncio.Task[None] | None = None

    def offer(self, live: LiveEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(live)
        except asyncio.QueueFull:
            self.overflowed = True
            self._overflows += 1
            self._check_later(self._overflows, self.sent)

    def recover(self) -> bool:
        """After the stream read the log to its end: forget an overflow of the meantime (the
        dropped events are in the log). True when there was one: read the log again."""
        if not self.overflowed:
            return False
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False
        return True

    def _check_later(self, overflow: int, sent: int) -> None:
        asyncio.get_running_loop().call_later(
            self._stuck_seconds, self._end_if_stuck, overflow, sent
        )

    def _end_if_stuck(self, overflow: int, sent: int) -> None:
        if self.finished or not self.overflowed or overflow != self._overflows:
            return
        if self.sent != sent:  # still sending (reading the log): look again later
            self._check_later(overflow, self.sent)
            return
        task = self._task
        if task is None:
            return
        log.info("stuck event stream ended", extra={"user_id": self.user_id})
        if self.abort is not None:
            # Sends the status once the transport lets it (after what the client has not read
            # yet): grpc.aio answers a client only when told to. Not awaited: it waits for
            # the very write that is stuck.
            self._ending = asyncio.get_running_loop().create_task(self._tell(self.abort))
        task.cancel()  # ends the handler now, which lets go of its slot

    async def _tell(self, abort: Callable[[], Awaitable[object]]) -> None:
        with contextlib.suppress(Exception):
            await abort()

    def _wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes the stream anyway
            self.queue.put_nowait(None)

    def request_resync(self) -> None:
        self.resync = True
        self._wake()

    def close(self) -> None:
        self.closing = True
        self._wake()


class Dispatcher:
    def __init__(
        self,
        nc: Client,
        *,
        per_user: int,
        max_watchers: int,
        queue_size: int,
        stuck_seconds: float,
    ) -> None:
        self._nc = nc
        self._stuck_seconds = stuck_seconds
        self.per_user = per_user
        self.max_watchers = max_watchers
        self._queue_size = queue_size
        self._by_user: dict[int, set[Watcher]] = {}
        self._count = 0
        self._sub: Subscription | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """Admitting watchers: listening, and not closing for a shutdown."""
        return self._sub is not None and not self._closed

    @property
    def watcher_count(self) -> int:
        return self._count

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{LIVE_EVENTS_PREFIX}*", cb=self._on_message)

    def close_all(self) -> None:
        """End every stream (with OK: the clients resume elsewhere with their last id) and
        admit no more."""
        self._closed = True
        for watchers in list(self._by_user.values()):
            for watcher in list(watchers):
                watcher.close()

    async def stop(self) -> None:
        self.close_all()
        sub, self._sub = self._sub, None
        if sub is not None and self._nc.is_connected:
            await sub.unsubscribe()

    def register(self, user_id: int) -> Watcher:
        """A new watcher of the user, receiving live events from now on; RESOURCE_EXHAUSTED
        (TOO_MANY_WATCHERS) beyond the caps."""
        mine = self._by_user.get(user_id, set())
        if len(mine) >= self.per_user:
            WATCHERS_REFUSED.labels("per_user").inc()
            raise ResourceExhausted(
                f"at most {self.per_user} open event streams per user: close one first",
                reason="TOO_MANY_WATCHERS",
            )
        if self._count >= self.max_watchers:
            WATCHERS_REFUSED.labels("per_process").inc()
            raise ResourceExhausted(
                "this server holds as many event streams as it can; retry shortly",
                reason="TOO_MANY_WATCHERS",
                retry_after_seconds=5,
            )
        watcher = Watcher(user_id, self._queue_size, self._stuck_seconds)
        self._by_user.setdefault(user_id, set()).add(watcher)
        self._count += 1
        WATCHERS.inc()
        return watcher

    def unregister(self, watcher: Watcher) -> None:
        watcher.finished = True
        mine = self._by_user.get(watcher.user_id)
        if mine is None or watcher not in mine:
            return
        mine.discard(watcher)
        if not mine:
            del self._by_user[watcher.user_id]
        self._count -= 1
        WATCHERS.dec()

    def deliver(self, user_id: int, live: LiveEvent) -> None:
        for watcher in self._by_user.get(user_id, ()):
            watcher.offer(live)

    async def resync_all(self, why: str) -> None:
        RESYNCS.labels(why).inc()
        for watchers in list(self._by_user.values()):
            for watcher in watchers:
                watcher.request_resync()

    async def _on_message(self, msg: Msg) -> None:
        user_id = user_of_subject(msg.subject, LIVE_EVENTS_PREFIX)
        if user_id is None or user_id not in self._by_user:
            return
        headers = msg.headers or {}
        try:
            seq = int(headers[SEQUENCE_HEADER])
            previous = int(headers.get(LAST_SEQUENCE_HEADER, "0"))
        except (KeyError, ValueError):
            log.warning("live event without its sequence headers", extra={"subject": msg.subject})
            return
        self.deliver(user_id, LiveEvent(seq, previous, decode(seq, msg.data)))
