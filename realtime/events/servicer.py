"""fitco.events.v1.EventService: the caller's events (realtime.events.watch does the work)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import grpc
from fitco.events.v1 import events_pb2, events_pb2_grpc

from fitcore.auth import current_principal
from fitcore.interceptor import error_status
from realtime.events.watch import Watch, parse_after_event_id, slow_consumer

Opener = Callable[[int, int | None], AbstractAsyncContextManager[Watch]]
Context = grpc.aio.ServicerContext[events_pb2.WatchEventsRequest, events_pb2.WatchEventsResponse]


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, open_watch: Opener) -> None:
        self._open = open_watch

    async def WatchEvents(  # noqa: N802 - named by the .proto
        self, request: events_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[events_pb2.WatchEventsResponse]:
        after = parse_after_event_id(request.after_event_id)
        async with self._open(current_principal().user_id, after) as watch:
            watch.abort_when_stuck(lambda: context.abort_with_status(error_status(slow_consumer())))
            # Headers now, before any event: the client knows the watch is registered (every
            # event stored from here on reaches it), and the edge starts its response.
            await context.send_initial_metadata(())
            async for response in watch.responses():
                yield response
