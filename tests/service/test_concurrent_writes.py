"""Concurrent requests that write the same rows, over gRPC, on SQLite and PostgreSQL.

Each test starts its threads together (a barrier) so the writes really overlap; every answer
must be a success or the documented conflict, never INTERNAL, and no write may be lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2
from sqlalchemy import Engine, create_engine, event, text

from fitcore.clock import FixedClock
from tests.conftest import (
    RunningMonolith,
    UserSession,
    make_env,
    onboard,
    register,
    running_monolith,
)

THREADS = 20


@pytest.fixture
def mono(migrated_url: str, key_dir: Path, clock: FixedClock) -> Iterator[RunningMonolith]:
    # A pool wide enough, with a long wait, that every thread reaches the database: these
    # tests are about races there, not about the hash pool's refusals
    # (tests/unit/test_password_protection.py).
    env = make_env(key_dir, migrated_url, FITCO_HASH_WAIT_SECONDS="60", FITCO_HASH_MAX_WAITING="64")
    with running_monolith(env, clock, key_dir) as running:
        yield running


def together(count: int, call: Callable[[int], Any]) -> list[grpc.StatusCode]:
    """Run call(0..count-1) on `count` threads released at once; their status codes."""
    start = threading.Barrier(count)

    def one(i: int) -> grpc.StatusCode:
        start.wait()
        try:
            call(i)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@contextmanager
def slow_reads(engine: Engine, table: str, seconds: float = 0.02) -> Iterator[None]:
    """Widen the race window: every SELECT from `table` takes `seconds` longer to return."""

    def pause(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            time.sleep(seconds)

    event.listen(engine, "after_cursor_execute", pause)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", pause)


def count_rows(url: str, table: str, user_id: int) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM {table} WHERE user_id = :u")
            return int(conn.execute(sql, {"u": user_id}).scalar_one())
    finally:
        engine.dispose()


def test_one_email_registered_at_once_twenty_times(mono: RunningMonolith) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"

    def attempt(i: int) -> None:
        mono.client.users.RegisterUser(
            user_pb2.RegisterUserRequest(email=email, name=f"N{i}", password="s3cret-passw0rd")
        )

    codes = together(THREADS, attempt)
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == THREADS - 1, codes
    mono.client.users.Login(user_pb2.LoginRequest(email=email, password="s3cret-passw0rd"))


def test_first_preferences_written_at_once(mono: RunningMonolith, migrated_url: str) -> None:
    user = register(mono.client)

    def attempt(i: int) -> None:
        prefs = user_pb2.Preferences(training_days_per_week=1 + i % 7, session_minutes=10 + i)
        mono.client.users.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(preferences=prefs), metadata=user.md
        )

    assert together(THREADS, attempt) == [grpc.StatusCode.OK] * THREADS
    assert count_rows(migrated_url, "preferences", user.id) == 1
    got = mono.client.users.GetPreferences(user_pb2.GetPreferencesRequest(), metadata=user.md)
    i = got.preferences.session_minutes - 10
    assert 0 <= i < THREADS
    assert got.preferences.training_days_per_week == 1 + i % 7  # one request's values, whole


def test_onboarding_completed_at_once(mono: RunningMonolith, migrated_url: str) -> None:
    user = register(mono.client)

    def attempt(i: int) -> None:
        mono.client.users.CompleteOnboarding(
            user_pb2.CompleteOnboardingRequest(
                weight=60 + i, height=170, fitness_goal="endurance", birth_year=1980 + i
            ),
            metadata=user.md,
        )

    assert together(THREADS, attempt) == [grpc.StatusCode.OK] * THREADS
    assert count_rows(migrated_url, "profiles", user.id) == 1
    assert count_rows(migrated_url, "body_metrics", user.id) == THREADS
    p = mono.client.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md).profile
    assert p.onboarded
    assert p.birth_year - 1980 == p.weight - 60  # one request's values, whole


def _change(field: str) -> user_pb2.UpdateProfileRequest:
    values: dict[str, Any] = {
        "name": wrappers_pb2.StringValue(value="Renamed"),
        "weight": wrappers_pb2.DoubleValue(value=70.5),
        "height": wrappers_pb2.DoubleValue(value=175),
        "fitness_goal": wrappers_pb2.StringValue(value="strength"),
        "birth_year": wrappers_pb2.Int32Value(value=1991),
        "sex": wrappers_pb2.StringValue(value="female"),
        "experience": wrappers_pb2.StringValue(value="advanced"),
    }
    return user_pb2.UpdateProfileRequest(**{field: values[field]})


FIELDS = ("name", "weight", "height", "fitness_goal", "birth_year", "sex", "experience")


def test_profile_fields_changed_at_once_are_all_kept(mono: RunningMonolith) -> None:
    """Every field from its own request, on a profile that does not exist yet: all kept, and
    `onboarded` (computed from weight, height and goal together) is right."""
    for _ in range(2):
        user = register(mono.client)

        def attempt(i: int, user: UserSession = user) -> None:
            mono.client.users.UpdateProfile(_change(FIELDS[i % len(FIELDS)]), metadata=user.md)

        count = 2 * len(FIELDS)
        with slow_reads(mono.app.db.engine, "profiles"):
            codes = together(count, attempt)
        assert codes == [grpc.StatusCode.OK] * count
        p = mono.client.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md).profile
        got = (p.name, p.weight, p.height, p.fitness_goal, p.birth_year, p.sex, p.experience)
        assert got == ("Renamed", 70.5, 175.0, "strength", 1991, "female", "advanced")
        assert p.onboarded


def test_newest_concurrent_measurement_is_the_profile_weight(mono: RunningMonolith) -> None:
    user = register(mono.client)
    onboard(mono.client, user)
    # All after the onboarding measurement, so each request might be the newest it can see.
    newest = mono.clock.now() + timedelta(minutes=1)

    def attempt(i: int) -> None:
        at = timestamp_pb2.Timestamp()
        at.FromDatetime(newest - timedelta(seconds=i))
        mono.client.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(measured_at=at, weight_kg=90 - i), metadata=user.md
        )

    for _ in range(2):
        with slow_reads(mono.app.db.engine, "body_metrics"):
            codes = together(10, attempt)
        assert codes == [grpc.StatusCode.OK] * 10
        p = mono.client.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md)
        assert p.profile.weight == 90
        newest += timedelta(minutes=1)
