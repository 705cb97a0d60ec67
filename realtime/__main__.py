"""`python -m realtime [serve|migrate|downgrade REV]` (fitcore.cli; served by
fitcore.aio_server). `migrate` upgrades the groups' database (REALTIME_DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Callable

from fitcore.aio_server import serve_async
from fitcore.cli import database_cli
from fitcore.config import Env
from realtime.app import Realtime, build
from realtime.groups import MIGRATIONS, database_url


def _run(env: Env, prepare: Callable[[], None]) -> int:
    def start() -> Realtime:
        prepare()
        return build(env)

    return serve_async("realtime", start)


def main(argv: list[str] | None = None) -> int:
    return database_cli("realtime", MIGRATIONS, database_url, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
