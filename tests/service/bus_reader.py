"""Reading what the producers put on the event bus, for tests: a NATS connection on a loop
thread of its own, reading users' stored events from the FITCO_EVENTS stream (direct gets by
subject) and subscribing to core subjects."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
from fitco.events.v1 import events_pb2
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from fitcore.eventbus import EVENTS_STREAM, MSG_ID_HEADER, ensure_events_stream, events_subject

T = TypeVar("T")


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: events_pb2.WatchEventsResponse
    msg_id: str


class BusReader:
    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.nc = self._run(nats.connect(url))
        self.js = self.nc.jetstream()
        self._run(ensure_events_stream(self.js))

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.nc.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def last_seq(self) -> int:
        """The stream's last sequence: events of a test come after it."""
        info = self._run(self.js.stream_info(EVENTS_STREAM))
        return int(info.state.last_seq)

    def events(self, user_id: int, after: int) -> list[StoredEvent]:
        """The user's stored events with a sequence above `after`, oldest first."""

        async def read() -> list[StoredEvent]:
            out: list[StoredEvent] = []
            seq = after + 1
            while True:
                try:
                    msg = await self.js.get_msg(
                        EVENTS_STREAM, seq=seq, subject=events_subject(user_id), next=True,
                        direct=True,
                    )  # fmt: skip
                except NotFoundError:
                    return out
                assert msg.seq is not None and msg.data is not None
                event = events_pb2.WatchEventsResponse.FromString(msg.data)
                out.append(StoredEvent(msg.seq, event, (msg.headers or {}).get(MSG_ID_HEADER, "")))
                seq = msg.seq + 1

        return self._run(read())

    def wait_events(
        self, user_id: int, after: int, count: int, timeout: float = 5.0
    ) -> list[StoredEvent]:
        """The user's events after `after` once there are at least `count` (or at `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events(user_id, after)
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    def subscribe(self, subject: str) -> queue.Queue[Msg]:
        """Core messages on `subject` from now on (the subscription is live on return)."""
        got: queue.Queue[Msg] = queue.Queue()

        async def on_msg(msg: Msg) -> None:
            got.put(msg)

        async def sub() -> None:
            await self.nc.subscribe(subject, cb=on_msg)
            await self.nc.flush()

        self._run(sub())
        return got
