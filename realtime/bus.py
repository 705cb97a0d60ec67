"""The realtime process's one connection to NATS (fitcore.eventbus, adr/10-real-time.md).

The connection reconnects forever (every `REALTIME_NATS_RECONNECT_SECONDS`); while it is down
the service is not ready and open streams wait, and after a reconnect the `on_reconnect`
callbacks run (the events dispatcher resyncs its watchers from the log: what was republished
meanwhile never reached this process). Like the producers (with their
fitcore.eventbus.ensure_events_stream), it makes sure the FITCO_EVENTS stream exists, at
start and after every reconnect (a NATS that lost its store).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client

from fitcore.config import ConfigError, Env
from fitcore.errors import ServiceError, Unavailable
from fitcore.eventbus import BusSettings, ensure_events_stream

log = logging.getLogger("realtime.bus")

Callback = Callable[[], Awaitable[None]]


def bus_error_to_service_error(exc: BaseException) -> ServiceError | None:
    """NATS unreachable or too slow: UNAVAILABLE, so a client retries (with its last id)."""
    if isinstance(exc, TimeoutError | nats.errors.Error):
        return Unavailable(
            "the event bus is unavailable; retry shortly", reason="EVENT_BUS_UNAVAILABLE"
        )
    return None


class Bus:
    """`nc` (core NATS) and `js` (JetStream) of this process; `connected` is its readiness."""

    def __init__(
        self, settings: BusSettings, *, reconnect_seconds: float = 2.0, ping_seconds: float = 20.0
    ) -> None:
        self.settings = settings
        self.nc = Client()
        self.js = self.nc.jetstream()
        self._reconnect_seconds = reconnect_seconds
        self._ping_seconds = ping_seconds
        self._on_reconnect: list[Callback] = []
        self._on_slow_consumer: list[Callback] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False  # one warning per outage, not one per reconnect attempt
        # The client reports every dropped message: one resync at a time is enough.
        self._slow_pending = False

    @classmethod
    def from_env(cls, env: Env) -> Bus:
        reconnect = env.get_float("REALTIME_NATS_RECONNECT_SECONDS", 2.0)
        if reconnect <= 0:
            raise ConfigError("REALTIME_NATS_RECONNECT_SECONDS must be positive")
        name = f"realtime@{socket.gethostname()}:{os.getpid()}"
        return cls(BusSettings.from_env(env, name), reconnect_seconds=reconnect)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    def on_reconnect(self, callback: Callback) -> None:
        """Run `callback` after every reconnect (not after the first connect)."""
        self._on_reconnect.append(callback)

    def on_slow_consumer(self, callback: Callback) -> None:
        """Run `callback` when the client dropped messages of a subscription that fell behind."""
        self._on_slow_consumer.append(callback)

    async def connect(self) -> None:
        """Connect, waiting as long as NATS takes to be reachable, then ensure the stream."""
        await self.nc.connect(
            servers=list(self.settings.servers),
            name=self.settings.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self._reconnect_seconds,  # type: ignore[arg-type]
            # A dead server is noticed within about a minute even when TCP does not say so.
            ping_interval=int(self._ping_seconds),
            max_outstanding_pings=3,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        self._down = False
        await self._ensure_stream()
        log.info("connected to the event bus", extra={"servers": list(self.settings.servers)})

    async def _ensure_stream(self) -> None:
        # Right after a server starts, JetStream may still be recovering its streams.
        for attempt in range(20):
            try:
                await ensure_events_stream(self.js)
                return
            except (TimeoutError, nats.errors.Error):
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if not self.nc.is_closed:
            await self.nc.close()

    def _spawn(self, callbacks: list[Callback], what: str) -> None:
        """Run callbacks in a task of their own: the client awaits its callbacks inside its
        reader and reconnect loops, which must not wait on JetStream requests."""

        async def run() -> None:
            self._slow_pending = False
            if what == "reconnect":
                try:
                    await self._ensure_stream()
                except Exception:
                    log.exception("cannot ensure the events stream after a reconnect")
            for callback in callbacks:
                try:
                    await callback()
                except Exception:
                    log.exception("event bus callback failed", extra={"after": what})

        task = asyncio.create_task(run(), name=f"bus-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            if not self._slow_pending:
                self._slow_pending = True
                log.warning("event bus subscription fell behind: messages dropped")
                self._spawn(self._on_slow_consumer, "slow-consumer")
            return
        if not self._down:
            self._down = True
            log.warning("event bus unreachable", extra={"error": repr(exc)})

    async def _disconnected(self) -> None:
        if not self._down and not self.nc.is_closed:
            self._down = True
            log.warning("disconnected from the event bus; reconnecting")

    async def _reconnected(self) -> None:
        self._down = False
        log.info("reconnected to the event bus")
        self._spawn(self._on_reconnect, "reconnect")
