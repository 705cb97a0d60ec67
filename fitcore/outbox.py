"""The transactional outbox of the services that produce events (adr/10-real-time.md).

An event is a row of `event_outbox`, written in the same transaction as the change that causes
it (a goal settled ACHIEVED with the weight that reached it, a subscription moved with its
audit row): the event exists exactly when its change does, whatever happens to the bus. The
relay (`fitcore.outbox_relay.OutboxRelay`) publishes the rows to NATS and deletes them.

- `add_event`: a `fitco.events.v1.WatchEventsResponse` for the user's stored event log
  (subject `fitco.events.user.<id>`, stream FITCO_EVENTS). Its `id` is left empty: the
  realtime service gives each event its stream sequence as id.
- `add_activity`: a `fitco.groups.v1.SetLogged` for live group sessions (core NATS subject
  `fitco.activity.user.<id>`, header `Fitco-Activity: SET_LOGGED`), never stored by the bus.

Both the monolith and billing add the one table definition (`outbox_table`) to their models,
and each has a migration that creates it. A commit that added rows wakes the relay of the
database it was written to (`on_commit`), so an event is on the bus milliseconds after its
change is committed, not at the relay's next poll.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    event,
    insert,
)
from sqlalchemy.orm import Session

from fitcore.dbnames import NAMING_CONVENTION
from fitcore.eventbus import (
    ACTIVITY_HEADER,
    EVENT_MAX_BYTES,
    SET_LOGGED,
    activity_subject,
    events_subject,
)

TABLE: Final = "event_outbox"
# session.info key: this transaction added outbox rows (the relay is woken after its commit).
_PENDING: Final = "fitco_outbox_pending"

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
_ID = BigInteger().with_variant(Integer(), "sqlite")


def outbox_table(metadata: MetaData) -> Table:
    """`event_outbox` in `metadata` (each service's models add it to theirs).

    `dedup_key` is random per row: with the row id it makes the message id JetStream
    de-duplicates on. The id alone is not enough: a database made anew (a reset development
    database, the tests' throw-away ones) numbers its rows from 1 again, and within the
    duplicate window the bus would drop its first events as repeats of the old ones.
    AUTOINCREMENT on SQLite: without it SQLite reuses the id of a deleted last row.
    """
    return Table(
        TABLE,
        metadata,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("subject", String(128), nullable=False),
        Column("payload", LargeBinary(), nullable=False),
        Column("headers", JSON(), nullable=False),
        Column("dedup_key", String(16), nullable=False),
        # Wall-clock time of the insert (not the service clock tests move): the publish lag.
        Column("created_at", DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


# The table as the outbox writes and the relay reads it (the same in every service).
OUTBOX = outbox_table(MetaData(naming_convention=NAMING_CONVENTION))


def add_event(session: Session, user_id: int, ev: events_pb2.WatchEventsResponse) -> None:
    """Write `ev` for the user's event stream in the session's transaction. `ev.type` names
    the payload that is set (GOAL_ACHIEVED: `goal_achieved`), `ev.time` is when the change
    happened (the service's clock); `ev.id` must be empty. A malformed event is a bug in the
    producer: ValueError."""
    payload = ev.WhichOneof("payload")
    if ev.id:
        raise ValueError("an event's id is given by the event log, not by its producer")
    if not ev.HasField("time"):
        raise ValueError(f"{ev.type} event without a time")
    if payload is None or payload.upper() != ev.type:
        raise ValueError(f"event type {ev.type!r} does not match its payload {payload!r}")
    data = ev.SerializeToString()
    if len(data) > EVENT_MAX_BYTES:
        raise ValueError(f"{ev.type} event of {len(data)} bytes (at most {EVENT_MAX_BYTES})")
    _add(session, events_subject(user_id), data, {})


def add_activity(session: Session, user_id: int, set_logged: groups_pb2.SetLogged) -> None:
    """Write a logged set for the user's live group sessions in the session's transaction."""
    _add(
        session,
        activity_subject(user_id),
        set_logged.SerializeToString(),
        {ACTIVITY_HEADER: SET_LOGGED},
    )


def _add(session: Session, subject: str, payload: bytes, headers: dict[str, str]) -> None:
    session.execute(
        insert(OUTBOX).values(
            subject=subject,
            payload=payload,
            headers=headers,
            dedup_key=secrets.token_hex(8),
            created_at=datetime.now(UTC),
        )
    )
    session.info[_PENDING] = True


# -- waking the relay after a commit -----------------------------------------------------------

# (engine, wake) pairs: a process has one per database it writes events to.
_wakers: list[tuple[Engine, Callable[[], None]]] = []
_wakers_lock = threading.Lock()


def on_commit(engine: Engine, wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake` (from the committing thread) after each commit of a session bound to
    `engine` (or to one of its option engines: they share its pool) that added outbox rows.
    Returns the function that stops it."""
    entry = (engine, wake)
    with _wakers_lock:
        _wakers.append(entry)

    def stop() -> None:
        with _wakers_lock:
            if entry in _wakers:
                _wakers.remove(entry)

    return stop


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_PENDING, False):
        return
    pool = getattr(session.get_bind(), "pool", None)
    with _wakers_lock:
        # Matched by pool, looked up now: Engine.dispose() gives the engine a new one.
        wakes = [wake for engine, wake in _wakers if engine.pool is pool]
    for wake in wakes:
        wake()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
