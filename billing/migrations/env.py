"""Alembic environment of billing's database, version table `billing_alembic_version`
(billing.migrations.MIGRATIONS, fitcore.migrate.run_online)."""

from __future__ import annotations

from billing.models import Base
from fitcore.migrate import run_online

run_online(Base.metadata)
