"""Alembic environment of the realtime database, version table `realtime_alembic_version`
(realtime.migrations.MIGRATIONS, fitcore.migrate.run_online)."""

from __future__ import annotations

from fitcore.migrate import run_online
from realtime.groups.models import Base

run_online(Base.metadata)
