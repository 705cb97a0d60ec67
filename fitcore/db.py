"""Database access for the services that own a database (the monolith, billing): engine,
sessions and one transaction per unit of work, and opening it from the environment
(`database_url_from_env`, `open_database`).

SQLite: pysqlite's own transaction handling is switched off and we emit BEGIN ourselves (the
SQLAlchemy "pysqlite serializable" recipe). A write transaction starts with BEGIN IMMEDIATE, so
it takes the write lock up front and a concurrent writer waits (busy_timeout) instead of
failing with "database is locked" / SQLITE_BUSY_SNAPSHOT when its read snapshot went stale.
A read-only transaction (`write=False`) starts with a plain BEGIN and never blocks writers.

PostgreSQL: a connect timeout and a pool timeout, so a dead database fails a request quickly
(mapped to UNAVAILABLE by `db_error_to_service_error`) instead of hanging it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from fitcore.config import Env, data_dir
from fitcore.errors import DeadlineExceeded, ServiceError, Unavailable

if TYPE_CHECKING:  # fitcore.migrate imports this module
    from fitcore.migrate import Migrations

# Execution option carried by the write sessions' connections; read by the SQLite BEGIN hook.
WRITE_OPTION = "fitco_write"
# PostgreSQL's SQLSTATE for "canceling statement due to statement timeout" (query_canceled).
PG_QUERY_CANCELED = "57014"


def default_sqlite_url(data_dir: Path, name: str = "fitco.db") -> str:
    """A SQLite file in the data directory (each service with a database has its own)."""
    return f"sqlite:///{data_dir / name}"


def database_url_from_env(
    env: Env, url_name: str, password_file_name: str, sqlite_file: str
) -> str:
    """The URL in `url_name` (when unset: `sqlite_file` in the data directory). The password
    may come from a mounted secret file instead of the URL: the file named by
    `password_file_name`."""
    url = env.get_str(url_name, default_sqlite_url(data_dir(env), sqlite_file))
    password_file = env.optional(password_file_name)
    if password_file:
        password = Path(password_file).read_text().strip()
        url = make_url(url).set(password=password).render_as_string(hide_password=False)
    return url


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from emitting BEGIN (late, and always DEFERRED); _sqlite_begin does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str,
    pool_size: int = 10,
    *,
    connect_timeout: float = 3.0,
    pool_timeout: float = 5.0,
) -> Engine:
    """`connect_timeout` bounds opening a PostgreSQL connection, `pool_timeout` waiting for a
    free one from the pool; both end in an error the interceptor maps to UNAVAILABLE."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_dir(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() == "psycopg2" and "connect_timeout" not in parsed.query:
        # libpq takes whole seconds (and treats 1 as 2).
        connect_args["connect_timeout"] = max(2, math.ceil(connect_timeout))
    return create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def dialect_insert(session: Session, entity: Any) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with ON CONFLICT support for the session's database (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(entity)
    if name == "sqlite":
        return sqlite.insert(entity)
    raise NotImplementedError(f"no upsert for database dialect {name!r}")


def db_error_to_service_error(exc: BaseException) -> ServiceError | None:
    """A database failure clients can act on, or None when `exc` is not one.

    A lost or refused connection, an exhausted pool or a busy SQLite file is UNAVAILABLE
    (retry later); a statement timeout is DEADLINE_EXCEEDED. Bugs (a bad statement, a broken
    constraint the domain did not expect) are not mapped and stay INTERNAL.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # also look through `raise ... from`
        seen.add(id(current))
        if isinstance(current, PoolTimeoutError):
            return Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")
        if isinstance(current, DBAPIError):
            if getattr(current.orig, "pgcode", None) == PG_QUERY_CANCELED:
                return DeadlineExceeded("database statement timed out", reason="DATABASE_TIMEOUT")
            if current.connection_invalidated or isinstance(
                current, (OperationalError, InterfaceError)
            ):
                return Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")
            return None
        current = current.__cause__
    return None


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writes = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._reads = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session whose work is committed together, or not at all.

        Writing is the default because it is the safe one: a transaction that writes but was
        opened with `write=False` fails on SQLite under contention. Pass `write=False` for
        read-only work so SQLite readers do not queue behind writers."""
        factory = self._writes if write else self._reads
        with factory() as session, session.begin():
            yield session

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(
    env: Env, url: str, migrations: Migrations, log: logging.Logger
) -> tuple[Database, str]:
    """The service's database at `url` with the pool from the environment
    (FITCO_DB_POOL_SIZE, FITCO_DB_CONNECT_TIMEOUT, FITCO_DB_POOL_TIMEOUT), and the head
    revision of its migrations. A schema behind head is logged as an error, not refused: the
    service starts and its readiness (schema at head) keeps it out of rotation until migrated."""
    db = Database(
        make_engine(
            url,
            env.get_int("FITCO_DB_POOL_SIZE", 10),
            connect_timeout=env.get_float("FITCO_DB_CONNECT_TIMEOUT", 3.0),
            pool_timeout=env.get_float("FITCO_DB_POOL_TIMEOUT", 5.0),
        )
    )
    head = migrations.head_revision()
    revision = migrations.current_revision(db.engine)
    if revision != head:
        log.error(
            "database schema is not current: run migrations",
            extra={"revision": revision, "head": head},
        )
    return db, head
