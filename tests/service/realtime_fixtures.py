"""An in-process realtime service (realtime.app) for service tests, and a NATS client to feed it.

The service is asyncio: it runs on an event loop of its own, on a thread (`LoopThread`), so the
tests stay synchronous and talk to it with the generated stubs over a real channel, like every
other service test. `running_realtime` builds it with the features asked for (default: all) on
127.0.0.1:0 and stops it fully (server, features, NATS connection, loop) at the end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from fitcore.clock import Clock, FixedClock
from fitcore.config import Env
from fitcore.eventbus import ensure_events_stream
from monolith import migrations
from realtime.app import FEATURES, Realtime, build
from tests.conftest import RunningMonolith, make_env, running_monolith
from tests.natsfix import NatsServer, start_nats

T = TypeVar("T")


@contextmanager
def own_bus(store: Path) -> Iterator[NatsServer]:
    """A NATS server of the module's own (tests that restart or fill it)."""
    server = start_nats(store)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def accounts_monolith(data: Path, key_dir: Path) -> Iterator[RunningMonolith]:
    """A monolith on a SQLite file of its own: users, their tokens, and CheckToken (revocation)
    for the realtime service."""
    url = f"sqlite:///{data / 'monolith.db'}"
    migrations.upgrade(url)
    env = Env({"FITCO_DATA_DIR": str(key_dir), "DATABASE_URL": url})
    with running_monolith(env, FixedClock(datetime.now(UTC)), key_dir) as running:
        yield running


class LoopThread:
    """An asyncio loop running on a daemon thread; `run` hands it a coroutine and waits."""

    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with suppress(Exception):
            self.run(cancel_the_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def realtime_env(
    key_dir: Path,
    nats_url: str,
    *,
    monolith_target: str = "127.0.0.1:1",
    database_url: str | None = None,
    **extra: str,
) -> Env:
    """The env of tests.conftest.make_env, plus the bus, the monolith (token revocation) and,
    for the groups feature, its database."""
    values = {
        "FITCO_NATS_URL": nats_url,
        "FITCO_MONOLITH_TARGET": monolith_target,
        "REALTIME_GRACE_SECONDS": "1",
        "REALTIME_READINESS_INTERVAL": "0.2",
        "REALTIME_NATS_RECONNECT_SECONDS": "0.5",
        **({"REALTIME_DATABASE_URL": database_url} if database_url else {}),
        **extra,
    }
    # DATABASE_URL is the monolith's: not the realtime service's business.
    return make_env(key_dir, "sqlite://", **values)


@dataclass
class RunningRealtime:
    app: Realtime
    loop: LoopThread
    channel: grpc.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"


@contextmanager
def running_realtime(
    env: Env, *, clock: Clock | None = None, features: Sequence[str] = FEATURES
) -> Iterator[RunningRealtime]:
    """The realtime service with `features`, started (NATS connected) on 127.0.0.1:0."""
    loop = LoopThread("realtime")
    try:

        async def build_it() -> Realtime:
            return build(env, clock=clock, address="127.0.0.1:0", features=features)

        app = loop.run(build_it())
        try:
            loop.run(app.start())
            channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
            try:
                yield RunningRealtime(app, loop, channel)
            finally:
                channel.close()
        finally:
            loop.run(app.stop())
    finally:
        loop.close()


class NatsPublisher:
    """A test's own NATS connection (on its own loop thread): publishes what producers would."""

    def __init__(self, url: str) -> None:
        self.loop = LoopThread("nats-publisher")
        self.nc: Client = self.loop.run(nats.connect(url, max_reconnect_attempts=-1))
        self.js: JetStreamContext = self.nc.jetstream()
        self.loop.run(ensure_events_stream(self.js))

    def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> int:
        """Store in JetStream; the stream sequence (the event's id)."""
        ack = self.loop.run(self.js.publish(subject, data, headers=headers))
        return int(ack.seq)

    def publish_core(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        async def send() -> None:
            await self.nc.publish(subject, data, headers=headers)
            await self.nc.flush()

        self.loop.run(send())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run anything else on the connection (stream_info, purge_stream, ...)."""
        return self.loop.run(coro)

    def close(self) -> None:
        with suppress(Exception):
            self.loop.run(self.nc.close(), timeout=10)
        self.loop.close()


@contextmanager
def nats_publisher(url: str) -> Iterator[NatsPublisher]:
    publisher = NatsPublisher(url)
    try:
        yield publisher
    finally:
        publisher.close()
