"""Per-user event streams (fitco.events.v1.EventService) inside the realtime service.

Events are produced by the other services' outboxes into the FITCO_EVENTS stream
(fitcore.eventbus); this feature reads them back: `dispatch` (one subscription per process,
fanning live events out to local watchers), `log` (replays and gap reads from the stream),
`watch` (one stream's order, heartbeats and limits: REALTIME_HEARTBEAT_SECONDS,
REALTIME_STREAM_MAX_SECONDS, REALTIME_WATCHERS_PER_USER, REALTIME_MAX_WATCHERS,
REALTIME_WATCHER_QUEUE, REALTIME_STUCK_SECONDS), `servicer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fitco.events.v1 import events_pb2_grpc

from fitcore.clock import Clock
from fitcore.config import Env
from realtime.bus import Bus
from realtime.events.dispatch import Dispatcher
from realtime.events.log import EventLog
from realtime.events.servicer import EventServicer
from realtime.events.watch import Watch, WatchSettings, open_watch

__all__ = ["EventsFeature", "WatchSettings", "build_events"]


class EventsFeature:
    def __init__(self, bus: Bus, settings: WatchSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.log = EventLog(bus.js)
        self.dispatcher = Dispatcher(
            bus.nc,
            per_user=settings.per_user,
            max_watchers=settings.max_watchers,
            queue_size=settings.queue_size,
            stuck_seconds=settings.stuck_seconds,
        )
        # What was republished while this process was not listening never reaches it.
        bus.on_reconnect(lambda: self.dispatcher.resync_all("reconnect"))
        bus.on_slow_consumer(lambda: self.dispatcher.resync_all("dropped"))

    def register(self, server: grpc.aio.Server) -> None:
        events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(self.open), server)

    @asynccontextmanager
    async def open(self, user_id: int, after: int | None) -> AsyncIterator[Watch]:
        async with open_watch(
            user_id,
            after,
            dispatcher=self.dispatcher,
            log=self.log,
            settings=self.settings,
            clock=self.clock,
        ) as watch:
            yield watch

    def ready(self) -> bool:
        return self.dispatcher.running

    async def start(self) -> None:
        """Listen for live events (the bus must be connected)."""
        await self.dispatcher.start()

    async def close_streams(self) -> None:
        self.dispatcher.close_all()

    async def stop(self) -> None:
        await self.dispatcher.stop()


def build_events(env: Env, bus: Bus, clock: Clock) -> EventsFeature:
    return EventsFeature(bus, WatchSettings.from_env(env), clock)
