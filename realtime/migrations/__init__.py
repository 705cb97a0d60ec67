"""The realtime service's Alembic migrations: the only way its schema is made.
`python -m realtime migrate`."""

from __future__ import annotations

from pathlib import Path

from fitcore.migrate import Migrations

MIGRATIONS = Migrations(Path(__file__).resolve().parent, version_table="realtime_alembic_version")
