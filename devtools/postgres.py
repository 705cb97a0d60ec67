"""A local PostgreSQL for the tests: install (Debian), start, and give the caller a role.

Used by `./fit test` and `./fit postgres`. Connects over the Unix socket with peer
authentication, so no password exists anywhere.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SOCKET_DIR = "/var/run/postgresql"


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]  # noqa: S603


def _as_postgres(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if getpass.getuser() == "postgres":
        return _run(cmd)
    if shutil.which("runuser") and os.geteuid() == 0:
        return _run(["runuser", "-u", "postgres", "--", *cmd])
    return _run(["sudo", "-u", "postgres", *cmd])


def installed() -> bool:
    return shutil.which("pg_lsclusters") is not None and any(
        Path("/usr/lib/postgresql").glob("*/bin/postgres")
    )


def install() -> None:
    print("postgres: installing PostgreSQL from Debian (apt-get)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)  # noqa: S603
    subprocess.run(  # noqa: S603
        [*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env
    )


def start() -> None:
    out = _run(["pg_lsclusters", "--no-header"]).stdout.strip().splitlines()
    if not out:
        raise RuntimeError("no PostgreSQL cluster exists (pg_createcluster one)")
    version, name, _port, status = out[0].split()[:4]
    if status != "online":
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(  # noqa: S603
            [*sudo, "pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
            check=True,
        )
    for _ in range(50):
        if _run(["pg_lsclusters", "--no-header"]).stdout.split()[3] == "online":
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come online")


def ensure_role() -> str:
    """Make a superuser role for the current OS user (peer auth) and return a URL."""
    user = getpass.getuser()
    exists = _as_postgres(
        ["psql", "-tAc", f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'"]  # noqa: S608
    ).stdout.strip()
    if exists != "1":
        _as_postgres(["createuser", "--superuser", user])
    return f"postgresql+psycopg2:///postgres?host={SOCKET_DIR}"


def ensure(install_if_missing: bool) -> str:
    if not installed():
        if not install_if_missing:
            raise RuntimeError("PostgreSQL is not installed (run ./fit postgres)")
        install()
    start()
    return ensure_role()


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (on FITCO_TEST_POSTGRES_URL's server, else the local
    one, installed and started if needed) for one run; dropped afterwards. Yields its URL."""
    admin = os.environ.get("FITCO_TEST_POSTGRES_URL") or ensure(install_if_missing=True)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def sibling_database(url: str, suffix: str) -> str:
    """The URL of database `<url's database>_<suffix>` on the same server, same role: another
    service's own database next to the monolith's (`./fit run` with DATABASE_URL)."""
    u = make_url(url)
    return u.set(database=f"{u.database or 'postgres'}_{suffix}").render_as_string(
        hide_password=False
    )


def create_database_if_missing(url: str, via: str) -> bool:
    """Create `url`'s database unless it exists, connected through `via` (a database on the
    same server the role can reach, e.g. the monolith's). True when it was created."""
    name = make_url(url).database
    if not name or '"' in name:
        raise ValueError(f"not a database name: {name!r}")
    engine = create_engine(via, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists:
                return False
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    finally:
        engine.dispose()
