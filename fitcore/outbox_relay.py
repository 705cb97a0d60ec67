"""The outbox relay: publishes a service's `event_outbox` rows (fitcore.outbox) to NATS, in id
order, and deletes them once the bus has them (adr/10-real-time.md).

One per process, on a daemon thread running its own asyncio loop (nats-py is asyncio; the
services are threaded). It is woken right after a commit that added rows and polls every
`poll_seconds` for rows another instance or a crash left, but touches the database only while
connected to NATS: with the bus down, rows wait and the database sees nothing of the relay.

- Events (`fitco.events.user.<id>`) go to JetStream with `Nats-Msg-Id: <service>-<row id>-
  <dedup key>`: a retry, or another instance publishing the same row, is stored once within
  the stream's duplicate window. Activity (`fitco.activity.user.<id>`) is core NATS.
- PostgreSQL: rows are claimed `FOR UPDATE SKIP LOCKED` in the transaction that deletes them,
  so instances share the work and never publish the same row twice. SQLite: the rows are read,
  published, then deleted (holding SQLite's single write lock while publishing would stall
  every writer); two instances on one SQLite file may both publish a row, which JetStream
  stores once.
- A message the server refuses outright (BadRequest: one that could never be stored) is logged
  and dropped, so it cannot hold up the rows after it.
- NATS down: one WARNING per outage (not per attempt); nats-py reconnects every
  `reconnect_seconds` forever; a failed pass is retried after 0.5 s, doubling up to 10 s.

Metrics: `fitco_outbox_pending_rows{service}`, `fitco_outbox_published_total{service,kind}`,
`fitco_outbox_publish_lag_seconds{service}` (from writing the row to the bus taking it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError, BadRequestError
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Row, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from fitcore.config import ConfigError, Env
from fitcore.db import Database
from fitcore.eventbus import (
    EVENTS_SUBJECT_PREFIX,
    MSG_ID_HEADER,
    BusSettings,
    ensure_events_stream,
)
from fitcore.outbox import OUTBOX, on_commit

log = logging.getLogger("fitcore.outbox")

PENDING_ROWS = Gauge("fitco_outbox_pending_rows", "Outbox rows waiting for the bus", ["service"])
PUBLISHED_TOTAL = Counter(
    "fitco_outbox_published_total", "Outbox rows published", ["service", "kind"]
)
PUBLISH_LAG_SECONDS = Histogram(
    "fitco_outbox_publish_lag_seconds",
    "Seconds from writing an outbox row to the bus taking it",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)

# After a failed pass (the bus or the database): retry after this, doubling up to the max.
RETRY_SECONDS: Final = 0.5
MAX_BACKOFF_SECONDS: Final = 10.0
FAILURES_BEFORE_WARNING: Final = 3
# Errors that mean "the bus is not reachable now" (retried), as opposed to a refused message.
_TRANSIENT = (nats.errors.Error, OSError, TimeoutError)


class OutboxRelay:
    """Publishes `db`'s outbox as `service` to the bus at `bus`. `start()` and `stop()` with the
    service (fitcore.periodic.Background)."""

    def __init__(
        self,
        db: Database,
        bus: BusSettings,
        service: str,
        *,
        poll_seconds: float = 1.0,
        batch: int = 200,
        publish_timeout: float = 2.0,
        reconnect_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._bus = bus
        self._service = service
        self._poll = poll_seconds
        self._batch = batch
        self._timeout = publish_timeout
        self._reconnect = reconnect_seconds
        self._thread = threading.Thread(target=self._run, name=f"outbox-{service}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()  # bound to the relay's loop when first awaited
        self._main: asyncio.Task[None] | None = None
        self._nc: NatsClient | None = None
        self._stopping = False
        self._flush_seconds = 0.0
        self._outage = False  # a WARNING was logged for the current bus outage
        self._failures = 0  # failed passes in a row
        self._stream_ready = False
        self._counted_at = 0.0
        self._unsubscribe: Callable[[], None] = lambda: None

    @classmethod
    def from_env(cls, env: Env, db: Database, service: str) -> OutboxRelay:
        """The relay of `service`: the bus at FITCO_NATS_URL, polled every
        FITCO_OUTBOX_POLL_SECONDS (default 1; commits wake it at once anyway)."""
        poll = env.get_float("FITCO_OUTBOX_POLL_SECONDS", 1.0)
        if poll <= 0:
            raise ConfigError("FITCO_OUTBOX_POLL_SECONDS must be positive")
        return cls(db, BusSettings.from_env(env, service), service, poll_seconds=poll)

    # -- lifecycle (any thread) ----------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._unsubscribe = on_commit(self._db.engine, self.wake)
        self._thread.start()

    def wake(self) -> None:
        """Publish now (called after a commit that added rows)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: stopped
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self, flush_seconds: float = 2.0) -> None:
        """Publish what waits (for up to `flush_seconds` while the bus is reachable), then
        close the connection."""
        self._unsubscribe()
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return
        self._flush_seconds = flush_seconds
        try:
            loop.call_soon_threadsafe(self._begin_stop)
        except RuntimeError:
            return
        self._thread.join(flush_seconds + 2 * self._timeout)
        if self._thread.is_alive():
            log.warning("outbox relay did not stop in time", extra={"service": self._service})

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._main = loop.create_task(self._serve())
        try:
            loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        finally:
            left = asyncio.all_tasks(loop)  # the client's own tasks, if any outlived it
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()

    def _begin_stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._main is not None and (self._nc is None or not self._nc.is_connected):
            self._main.cancel()  # the bus is out of reach: nothing can be published

    async def _serve(self) -> None:
        nc = await nats.connect(
            servers=list(self._bus.servers),
            name=self._bus.name,
            max_reconnect_attempts=-1,  # with the bus down, connect() waits for it
            reconnect_time_wait=self._reconnect,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = nc
        self._connected()
        js = nc.jetstream(timeout=self._timeout)
        try:
            await self._publish_until_stopped(nc, js)
            if nc.is_connected:  # a short flush of what is left
                await asyncio.wait_for(self._publish_all(nc, js, flush=True), self._flush_seconds)
        except (TimeoutError, *_TRANSIENT, SQLAlchemyError) as exc:
            log.warning(
                "outbox not flushed at stop: the rows left wait for the next start",
                extra={"service": self._service, "error": repr(exc)},
            )
        finally:
            await nc.close()

    async def _publish_until_stopped(self, nc: NatsClient, js: JetStreamContext) -> None:
        backoff = RETRY_SECONDS
        while not self._stopping:
            delay = self._poll
            if nc.is_connected:
                try:
                    await self._publish_all(nc, js)
                    self._recovered()
                    backoff = RETRY_SECONDS
                except (*_TRANSIENT, SQLAlchemyError) as exc:
                    if isinstance(exc, nats.errors.Error):
                        self._stream_ready = False  # a restarted server may have lost it
                    self._failed(exc)
                    delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def _publish_all(
        self, nc: NatsClient, js: JetStreamContext, *, flush: bool = False
    ) -> None:
        """Publish every waiting row, batch by batch; a stop interrupts it between batches
        unless this is the `flush` at stop."""
        if not self._stream_ready:
            try:
                await ensure_events_stream(js)
            except APIError as exc:  # it exists, with settings this server will not change
                log.warning("FITCO_EVENTS stream not updated", extra={"error": str(exc)})
            self._stream_ready = True
        self._count()
        while await self._publish_batch(nc, js) == self._batch:
            if self._stopping and not flush:
                break  # the flush at stop takes over, with its deadline

    async def _publish_batch(self, nc: NatsClient, js: JetStreamContext) -> int:
        """Publish (and delete) up to `batch` of the oldest rows: how many went."""
        query = select(OUTBOX).order_by(OUTBOX.c.id).limit(self._batch)
        if self._db.dialect == "postgresql":
            with self._db.transaction() as s:
                rows = s.execute(query.with_for_update(skip_locked=True)).all()
                done, error = await self._publish_rows(nc, js, rows)
                if done:
                    s.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(done)))
        else:
            with self._db.transaction(write=False) as s:
                rows = s.execute(query).all()
            done, error = await self._publish_rows(nc, js, rows)
            if done:
                with self._db.transaction() as s:
                    s.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(done)))
        if done:
            self._count(force=True)
        if error is not None:
            raise error
        return len(done)

    async def _publish_rows(
        self, nc: NatsClient, js: JetStreamContext, rows: Sequence[Row[Any]]
    ) -> tuple[list[int], Exception | None]:
        """Publish in order until one fails for want of the bus: the ids done, and that
        failure (None when all went)."""
        done: list[int] = []
        for row in rows:
            try:
                await self._publish(nc, js, row)
            except BadRequestError as exc:
                log.error(
                    "the bus refused an outbox row: dropped",
                    extra={"service": self._service, "row": row.id, "subject": row.subject,
                           "error": str(exc)},
                )  # fmt: skip
            except _TRANSIENT as exc:
                return done, exc
            done.append(row.id)
        return done, None

    async def _publish(self, nc: NatsClient, js: JetStreamContext, row: Row[Any]) -> None:
        headers = dict(row.headers or {})
        if row.subject.startswith(EVENTS_SUBJECT_PREFIX):
            headers[MSG_ID_HEADER] = f"{self._service}-{row.id}-{row.dedup_key}"
            await js.publish(row.subject, row.payload, headers=headers)
            kind = "event"
        else:
            await nc.publish(row.subject, row.payload, headers=headers or None)
            kind = "activity"
        PUBLISHED_TOTAL.labels(self._service, kind).inc()
        created = row.created_at
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        lag = (datetime.now(UTC) - created).total_seconds()
        PUBLISH_LAG_SECONDS.labels(self._service).observe(max(lag, 0.0))

    def _count(self, force: bool = False) -> None:
        """Refresh the pending-rows gauge (at most once per poll unless `force`)."""
        now = time.monotonic()
        if not force and now - self._counted_at < self._poll:
            return
        self._counted_at = now
        with self._db.transaction(write=False) as s:
            pending = s.scalar(select(func.count()).select_from(OUTBOX)) or 0
        PENDING_ROWS.labels(self._service).set(pending)

    # -- what is logged: once per outage or run of failures, never per attempt ----------------

    def _connected(self) -> None:
        if self._outage:
            log.info("event bus reachable again", extra={"service": self._service})
        self._outage = False
        self._stream_ready = False
        self._wake.set()

    def _lost(self, error: str) -> None:
        if self._outage or self._stopping:
            return
        self._outage = True
        log.warning(
            "event bus unreachable: events wait in the outbox until it is back",
            extra={"service": self._service, "servers": ",".join(self._bus.servers),
                   "error": error},
        )  # fmt: skip

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, _TRANSIENT):
            self._lost(repr(exc))
        else:
            log.warning("event bus error", extra={"service": self._service, "error": repr(exc)})

    async def _on_disconnected(self) -> None:
        self._lost("disconnected")

    async def _on_reconnected(self) -> None:
        self._connected()

    def _failed(self, exc: Exception) -> None:
        """A failed pass. Told once, when failures persist: the first ones after a
        reconnection are the server's JetStream still starting, or the outage being noticed."""
        self._failures += 1
        if self._failures == FAILURES_BEFORE_WARNING and not self._outage:
            log.warning(
                "outbox not published: retrying",
                extra={"service": self._service, "error": repr(exc)},
            )

    def _recovered(self) -> None:
        if self._failures >= FAILURES_BEFORE_WARNING and not self._outage:
            log.info("outbox published again", extra={"service": self._service})
        self._failures = 0
