"""Running a service's Alembic migrations programmatically (`python -m <service> migrate`, the
tests, `./fit run`): one implementation for every service that owns a database, each with its
own script directory and its own version table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, inspect, pool, select

from fitcore.db import ensure_sqlite_dir


@dataclass(frozen=True)
class Migrations:
    script_location: Path
    version_table: str = "alembic_version"

    def config(self, url: str) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.set_main_option("version_table", self.version_table)
        return cfg

    def upgrade(self, url: str, revision: str = "head") -> None:
        ensure_sqlite_dir(url)
        command.upgrade(self.config(url), revision)

    def downgrade(self, url: str, revision: str) -> None:
        command.downgrade(self.config(url), revision)

    def current_revision(self, engine: Engine) -> str | None:
        if not inspect(engine).has_table(self.version_table):
            return None
        table = Table(self.version_table, MetaData(), Column("version_num", String(32)))
        with engine.connect() as conn:
            row = conn.execute(select(table.c.version_num)).first()
        return None if row is None else str(row[0])

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(self.config("sqlite://")).get_current_head()
        assert head is not None
        return head


def run_online(target_metadata: MetaData) -> None:
    """The body of every service's Alembic `env.py` (online mode only: migrations run against a
    live database): the URL and the version table come from the Config `Migrations.config`
    makes; SQLite alters tables in batch mode (it cannot ALTER most things in place)."""
    from alembic import context  # noqa: PLC0415 - only inside an Alembic run

    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=config.get_main_option("version_table") or "alembic_version",
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
