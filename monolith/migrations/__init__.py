"""Alembic migrations: the only way the schema is made. `python -m monolith migrate`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from fitcore.migrate import Migrations

MIGRATIONS = Migrations(Path(__file__).resolve().parent)


def upgrade(url: str, revision: str = "head") -> None:
    MIGRATIONS.upgrade(url, revision)


def downgrade(url: str, revision: str) -> None:
    MIGRATIONS.downgrade(url, revision)


def current_revision(engine: Engine) -> str | None:
    return MIGRATIONS.current_revision(engine)


def head_revision() -> str:
    return MIGRATIONS.head_revision()
