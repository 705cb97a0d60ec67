"""Alembic environment of the monolith's database, version table `alembic_version`
(monolith.migrations.MIGRATIONS, fitcore.migrate.run_online)."""

from __future__ import annotations

from fitcore.migrate import run_online
from monolith.models import Base

run_online(Base.metadata)
