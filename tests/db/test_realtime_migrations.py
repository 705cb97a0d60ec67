"""The realtime service's Alembic migrations on SQLite and PostgreSQL: empty → head → base →
head, its own version table, the models matching the migrations, and the constraints the group
sessions rely on (a set once per group, members' roles, the member count)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from realtime.groups.models import Base
from realtime.migrations import MIGRATIONS
from tests.conftest import Databases

TABLES = {"groups", "group_members", "group_wod_exercises", "group_messages"}
VERSION_TABLE = "realtime_alembic_version"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_empty_to_head_to_base_and_back(databases: Databases) -> None:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    assert _tables(url) == TABLES | {VERSION_TABLE}
    engine = create_engine(url)
    assert MIGRATIONS.current_revision(engine) == MIGRATIONS.head_revision()
    engine.dispose()
    MIGRATIONS.downgrade(url, "base")
    assert _tables(url) <= {VERSION_TABLE}
    MIGRATIONS.upgrade(url)
    assert _tables(url) == TABLES | {VERSION_TABLE}


def test_own_version_table(databases: Databases) -> None:
    """Realtime's migrations never read or write another service's `alembic_version`."""
    url = databases.new()
    MIGRATIONS.upgrade(url)
    assert "alembic_version" not in _tables(url)


def test_models_match_migrations(databases: Databases) -> None:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.fixture
def engine(databases: Databases) -> Engine:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO groups (title, owner_user_id, starts_at, invitation_code, "
                "max_members, member_count, joins, last_seq, created_at) "
                "VALUES ('G', 1, :now, 'AAAA-BBBB-CCCC', 2, 1, 1, 0, :now)"
            ),
            {"now": NOW},
        )
    return engine


def test_a_set_is_stored_once_per_group(engine: Engine) -> None:
    insert = text(
        "INSERT INTO group_messages (group_id, seq, type, user_id, set_id, created_at, body) "
        "VALUES (1, :seq, :type, 1, :set_id, :now, :body)"
    )
    try:
        with engine.begin() as conn:
            # Messages without a set (NULL set_id) are not constrained by it.
            for seq, kind, set_id in ((1, "CHAT", None), (2, "CHAT", None), (3, "SET_LOGGED", 9)):
                conn.execute(
                    insert, {"seq": seq, "type": kind, "set_id": set_id, "now": NOW, "body": b""}
                )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                insert, {"seq": 4, "type": "SET_LOGGED", "set_id": 9, "now": NOW, "body": b""}
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:  # one seq per group
            conn.execute(
                insert, {"seq": 3, "type": "CHAT", "set_id": None, "now": NOW, "body": b""}
            )
    finally:
        engine.dispose()


def test_roles_and_member_count_are_checked(engine: Engine) -> None:
    member = text(
        "INSERT INTO group_members (group_id, user_id, role, display_name, joined_at) "
        "VALUES (1, :user, :role, 'x', :now)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(member, {"user": 1, "role": "OWNER", "now": NOW})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(member, {"user": 2, "role": "ADMIN", "now": NOW})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE groups SET member_count = 3"))  # above max_members (2)
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE groups SET member_count = -1"))
    finally:
        engine.dispose()
