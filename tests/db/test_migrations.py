"""Alembic migrations on SQLite and PostgreSQL: empty → head, round trip, seed, constraints."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from monolith import migrations
from monolith.models import Base
from tests.conftest import Databases

TABLES = {
    "users",
    "profiles",
    "preferences",
    "body_metrics",
    "muscle_groups",
    "exercises",
    "exercise_muscle_groups",
    "served_wods",
    "exercise_history",
    "bootstrap_claim",
    "login_attempts",
    "goals",
    "workout_sessions",
    "event_outbox",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_empty_to_head(databases: Databases) -> None:
    url = databases.new()
    migrations.upgrade(url)
    assert _tables(url) == TABLES
    assert _count(url, "muscle_groups") == 20
    assert _count(url, "exercises") >= 60
    engine = create_engine(url)
    assert migrations.current_revision(engine) == migrations.head_revision()
    indexes = {i["name"] for i in inspect(engine).get_indexes("exercise_history")}
    assert {"ix_exercise_history_user_day", "ix_exercise_history_user_performed"} <= indexes
    engine.dispose()


def test_history_arrives_in_its_own_migration(databases: Databases) -> None:
    url = databases.new()
    migrations.upgrade(url, "0002")
    assert "exercise_history" not in _tables(url)
    migrations.upgrade(url, "0003")
    assert "exercise_history" in _tables(url)


def test_downgrade_upgrade_round_trip(databases: Databases) -> None:
    url = databases.new()
    migrations.upgrade(url)
    migrations.downgrade(url, "base")
    assert _tables(url) == set()
    migrations.upgrade(url)
    assert _tables(url) == TABLES
    migrations.downgrade(url, "0001")
    assert _count(url, "exercises") == 0
    migrations.upgrade(url)
    assert _count(url, "exercises") >= 60


def test_seed_is_idempotent_when_rows_exist(databases: Databases) -> None:
    """Re-running the seed over a partly seeded catalog adds only what is missing."""
    url = databases.new()
    migrations.upgrade(url)
    total = _count(url, "exercises")
    migrations.downgrade(url, "0001")
    migrations.upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO muscle_groups (id, name, body_part, description, size, region) "
                "VALUES (1, 'Pectoralis Major', 'Chest', 'pre-existing', 'large', 'upper')"
            )
        )
    engine.dispose()
    migrations.upgrade(url)
    assert _count(url, "exercises") == total
    assert _count(url, "muscle_groups") == 20


def test_constraints_hold(databases: Databases) -> None:
    url = databases.new()
    migrations.upgrade(url)
    engine = create_engine(url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, name, role, password_hash, created_at, updated_at) "
                "VALUES ('a@b.c', 'A', 'root', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()


def test_models_match_migrations(databases: Databases) -> None:
    """The models describe the schema the migrations make (no table or column drift)."""
    url = databases.new()
    migrations.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_login_attempts_arrive_in_0005(databases: Databases) -> None:
    url = databases.new()
    migrations.upgrade(url, "0004")
    assert "login_attempts" not in _tables(url)
    migrations.upgrade(url, "0005")
    assert "login_attempts" in _tables(url)
    migrations.downgrade(url, "0004")
    assert "login_attempts" not in _tables(url)
