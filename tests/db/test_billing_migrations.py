"""Billing's Alembic migrations on SQLite and PostgreSQL: empty → head → base → head, its own
version table, the models matching the migrations, and the constraints billing relies on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from billing.migrations import MIGRATIONS
from billing.models import Base
from tests.conftest import Databases

TABLES = {
    "subscriptions",
    "payments",
    "subscription_events",
    "idempotency_keys",
    "webhook_events",
    "event_outbox",
}
VERSION_TABLE = "billing_alembic_version"


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


def test_billing_shares_a_database_without_touching_the_monoliths_version(
    databases: Databases,
) -> None:
    """Its own version table: billing's migrations never read or write `alembic_version`."""
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


def test_one_open_subscription_per_user(databases: Databases) -> None:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    engine = create_engine(url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    insert = text(
        "INSERT INTO subscriptions (user_id, plan_id, status, cancel_at_period_end, "
        "payment_method_token, card_brand, card_last4, renewal_attempts, created_at, updated_at) "
        "VALUES (7, 'premium_monthly', :status, false, 'tok', '', '', 0, :now, :now)"
    )
    try:
        with engine.begin() as conn:
            # Canceled ones are history: any number of them beside one open subscription.
            for status in ("canceled", "canceled", "active"):
                conn.execute(insert, {"status": status, "now": now})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"status": "incomplete", "now": now})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"status": "trialing-ish", "now": now})
    finally:
        engine.dispose()
