"""Billing's Alembic migrations: the only way its schema is made. `python -m billing migrate`."""

from __future__ import annotations

from pathlib import Path

from fitcore.migrate import Migrations

MIGRATIONS = Migrations(Path(__file__).resolve().parent, version_table="billing_alembic_version")
