"""Alembic environment of billing's database (online mode only), with its own version table
(`billing_alembic_version`), so it can also live in a schema shared with nothing else."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from billing.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=config.get_main_option("version_table") or "billing_alembic_version",
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
