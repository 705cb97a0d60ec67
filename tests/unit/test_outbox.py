"""The outbox (fitcore.outbox) on a SQLite file: what a row holds, the events it refuses, ids
that are never reused, and the relay woken only after a commit that added rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fitco.events.v1 import events_pb2
from fitco.groups.v1 import groups_pb2
from sqlalchemy import MetaData, delete, select

from fitcore.db import Database, make_engine
from fitcore.eventbus import ACTIVITY_HEADER, EVENT_MAX_BYTES, SET_LOGGED
from fitcore.outbox import (
    OUTBOX,
    add_activity,
    add_event,
    on_commit,
    outbox_table,
)
from fitcore.timestamps import timestamp

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _db(path: Path) -> Database:
    db = Database(make_engine(f"sqlite:///{path}"))
    metadata = MetaData()
    outbox_table(metadata)
    metadata.create_all(db.engine)
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = _db(tmp_path / "outbox.db")
    yield database
    database.dispose()


def _achieved(goal_id: int = 7) -> events_pb2.WatchEventsResponse:
    return events_pb2.WatchEventsResponse(
        type="GOAL_ACHIEVED",
        time=timestamp(AT),
        goal_achieved=events_pb2.GoalAchieved(goal_id=goal_id, kind="weight_loss", unit="kg"),
    )


def test_an_event_row_is_the_event_for_the_users_stream(db: Database) -> None:
    with db.transaction() as s:
        add_event(s, 42, _achieved())
    with db.transaction(write=False) as s:
        [row] = s.execute(select(OUTBOX)).all()
    assert row.subject == "fitco.events.user.42"
    assert events_pb2.WatchEventsResponse.FromString(row.payload) == _achieved()
    assert row.headers == {}
    assert len(row.dedup_key) == 16


def test_an_activity_row_is_core_nats_with_its_header(db: Database) -> None:
    logged = groups_pb2.SetLogged(session_id=3, set_id=9, exercise_id=1, reps=5, weight=100)
    with db.transaction() as s:
        add_activity(s, 42, logged)
    with db.transaction(write=False) as s:
        [row] = s.execute(select(OUTBOX)).all()
    assert row.subject == "fitco.activity.user.42"
    assert row.headers == {ACTIVITY_HEADER: SET_LOGGED}
    assert groups_pb2.SetLogged.FromString(row.payload) == logged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: setattr(e, "id", "12"), "id is given by the event log"),
        (lambda e: e.ClearField("time"), "without a time"),
        (lambda e: setattr(e, "type", "STREAK"), "does not match its payload"),
        (lambda e: e.ClearField("goal_achieved"), "does not match its payload"),
        (lambda e: setattr(e.goal_achieved, "kind", "x" * EVENT_MAX_BYTES), r"bytes \(at most"),
    ],
)
def test_malformed_events_are_refused(db: Database, change: object, message: str) -> None:
    ev = _achieved()
    change(ev)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message), db.transaction() as s:
        add_event(s, 42, ev)
    with db.transaction(write=False) as s:
        assert s.execute(select(OUTBOX)).all() == []


def test_ids_of_deleted_rows_are_never_reused(db: Database) -> None:
    """Message ids are built from row ids: SQLite must not hand out a deleted last id again."""
    with db.transaction() as s:
        add_event(s, 1, _achieved())
        add_event(s, 1, _achieved())
    with db.transaction() as s:
        first = list(s.scalars(select(OUTBOX.c.id)))
        s.execute(delete(OUTBOX))
    with db.transaction() as s:
        add_event(s, 1, _achieved())
    with db.transaction(write=False) as s:
        [again] = s.scalars(select(OUTBOX.c.id))
    assert again > max(first)


def _a_row_then_a_bad_one(db: Database) -> None:
    with db.transaction() as s:
        add_event(s, 1, _achieved())
        add_event(s, 1, events_pb2.WatchEventsResponse(type="HEARTBEAT"))


def test_only_a_commit_that_added_rows_wakes_the_relay_of_its_database(tmp_path: Path) -> None:
    mine, other = _db(tmp_path / "a.db"), _db(tmp_path / "b.db")
    woken: list[str] = []
    stop = on_commit(mine.engine, lambda: woken.append("mine"))
    try:
        with mine.transaction() as s:
            s.execute(select(OUTBOX))  # nothing added
        assert woken == []
        with other.transaction() as s:
            add_event(s, 1, _achieved())  # another database's outbox
        assert woken == []
        with pytest.raises(ValueError, match="without a time"):
            _a_row_then_a_bad_one(mine)  # rolled back
        with mine.transaction(write=False) as s:
            assert s.execute(select(OUTBOX)).all() == []
        assert woken == []
        with mine.transaction() as s:
            add_event(s, 1, _achieved())
            assert woken == []  # not before the commit
        assert woken == ["mine"]
        stop()
        with mine.transaction() as s:
            add_event(s, 1, _achieved())
        assert woken == ["mine"]
    finally:
        stop()
        mine.dispose()
        other.dispose()
