"""Migration 0006: the per-user token version behind logout and password change."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from monolith import migrations
from tests.conftest import Databases


def _columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("users")}
    finally:
        engine.dispose()


def test_token_version_arrives_in_0006_and_existing_users_start_at_zero(
    databases: Databases,
) -> None:
    url = databases.new()
    migrations.upgrade(url, "0005")
    assert "token_version" not in _columns(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, name, role, password_hash, created_at, updated_at) "
                "VALUES ('old@example.com', 'Old', 'user', 'x', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    migrations.upgrade(url, "0006")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # Tokens issued before the migration carry no `tv` and count as version 0: they
            # stay valid until they expire or the user logs out or changes the password.
            assert conn.execute(text("SELECT token_version FROM users")).scalar_one() == 0
    finally:
        engine.dispose()
    migrations.downgrade(url, "0005")
    assert "token_version" not in _columns(url)
    migrations.upgrade(url)
    assert "token_version" in _columns(url)
