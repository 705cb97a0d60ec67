"""fitcore.db on real databases: SQLite write locking, timeouts, and failures that map to
UNAVAILABLE / DEADLINE_EXCEEDED instead of INTERNAL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from devtools.ports import free_port
from fitcore.db import Database, db_error_to_service_error, make_engine
from fitcore.errors import DeadlineExceeded, Unavailable
from tests.conftest import Databases


def _counter_db(url: str) -> Database:
    db = Database(make_engine(url))
    with db.transaction() as s:
        s.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        s.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
    return db


def test_sqlite_writers_wait_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    """Read-then-write transactions from many threads: every one commits, none is lost.

    With SQLite's default deferred BEGIN each would read under a snapshot, and all but one
    would fail with "database is locked" when upgrading to a writer (SQLITE_BUSY_SNAPSHOT)."""
    db = _counter_db(f"sqlite:///{tmp_path / 'counter.db'}")
    start = threading.Barrier(12)

    def increment(_: int) -> None:
        start.wait()
        with db.transaction() as s:
            n = s.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
            time.sleep(0.005)  # widen the window between the read and the write
            s.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    try:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(increment, range(12)))
        with db.transaction(write=False) as s:
            assert s.execute(text("SELECT n FROM counter")).scalar_one() == 12
    finally:
        db.dispose()


def test_sqlite_readers_do_not_queue_behind_a_writer(tmp_path: Path) -> None:
    db = _counter_db(f"sqlite:///{tmp_path / 'counter.db'}")
    writing, done = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with db.transaction() as s:
            s.execute(text("UPDATE counter SET n = 99 WHERE id = 1"))
            writing.set()
            done.wait(10)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert writing.wait(5)
        started = time.monotonic()
        with db.transaction(write=False) as s:
            # The committed value: the writer's change is not visible until it commits.
            assert s.execute(text("SELECT n FROM counter")).scalar_one() == 0
        assert time.monotonic() - started < 1
    finally:
        done.set()
        writer.join()
        db.dispose()


def test_sqlite_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    db = Database(make_engine(f"sqlite:///{tmp_path}"))  # a directory, not a database file
    with pytest.raises(OperationalError) as info:
        db.ping()
    mapped = db_error_to_service_error(info.value)
    assert isinstance(mapped, Unavailable)
    db.dispose()


def test_exhausted_pool_fails_fast_as_unavailable(databases: Databases) -> None:
    db = Database(make_engine(databases.new(), pool_size=1, pool_timeout=0.2))
    held = [db.engine.connect(), db.engine.connect()]  # pool_size + max_overflow
    try:
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError) as info:
            db.ping()
        assert time.monotonic() - started < 2
        assert isinstance(db_error_to_service_error(info.value), Unavailable)
    finally:
        for conn in held:
            conn.close()
        db.dispose()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases("postgres", tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.mark.postgres
def test_dead_postgres_fails_fast_as_unavailable(postgres: Databases) -> None:
    nobody = make_url(postgres.new()).set(host="127.0.0.1", port=free_port(), query={})
    db = Database(make_engine(nobody.render_as_string(hide_password=False), connect_timeout=2))
    started = time.monotonic()
    with pytest.raises(OperationalError) as info, db.transaction(write=False) as s:
        s.execute(text("SELECT 1"))
    assert time.monotonic() - started < 5
    mapped = db_error_to_service_error(info.value)
    assert isinstance(mapped, Unavailable)
    assert mapped.message == "database unavailable"
    db.dispose()


@pytest.mark.postgres
def test_postgres_statement_timeout_is_deadline_exceeded(postgres: Databases) -> None:
    db = Database(make_engine(postgres.new()))

    def sleep_past_the_timeout() -> None:
        with db.transaction(write=False) as s:
            s.execute(text("SET LOCAL statement_timeout = 50"))
            s.execute(text("SELECT pg_sleep(2)"))

    with pytest.raises(OperationalError) as info:
        sleep_past_the_timeout()
    assert isinstance(db_error_to_service_error(info.value), DeadlineExceeded)
    db.dispose()
