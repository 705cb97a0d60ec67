"""The command line of a service that owns a database (`python -m monolith`, `python -m billing`,
`python -m realtime`): `serve` (the default), `migrate` (upgrade its schema to head) and
`downgrade REV`.

`serve` with FITCO_AUTO_MIGRATE=true upgrades the schema first; otherwise the schema is the
job of `migrate` (the compose service and the Kubernetes jobs run it once, not every replica).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from fitcore.config import Env
from fitcore.migrate import Migrations
from fitcore.server import App, env_with_logging, serve


def database_service_main(
    name: str,
    migrations: Migrations,
    database_url: Callable[[Env], str],
    build: Callable[[Env], App],
    argv: list[str] | None = None,
) -> int:
    """Run the command in `argv` (default: the process's arguments) for service `name`: its
    schema is `migrations` at `database_url(env)`; `build(env)` makes the app to serve (with
    any background work started: `serve` starts the gRPC server itself). The exit code."""

    def run(env: Env, prepare: Callable[[], None]) -> int:
        def start() -> App:
            prepare()
            return build(env)

        return serve(name, start)

    return database_cli(name, migrations, database_url, run, argv)


def database_cli(
    name: str,
    migrations: Migrations,
    database_url: Callable[[Env], str],
    run: Callable[[Env, Callable[[], None]], int],
    argv: list[str] | None = None,
) -> int:
    """The command line itself, for any kind of server: `run(env, prepare)` serves until
    told to stop and returns the exit code, calling `prepare()` (the FITCO_AUTO_MIGRATE
    upgrade) before it builds anything (fitcore.aio_server.serve_async for asyncio servers)."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (default)")
    sub.add_parser("migrate", help="upgrade the database schema to head")
    down = sub.add_parser("downgrade", help="downgrade the schema to a revision")
    down.add_argument("revision")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    env = env_with_logging(name)
    if args.command == "migrate":
        migrations.upgrade(database_url(env))
        return 0
    if args.command == "downgrade":
        migrations.downgrade(database_url(env), args.revision)
        return 0

    def prepare() -> None:
        if env.get_bool("FITCO_AUTO_MIGRATE", False):
            migrations.upgrade(database_url(env))

    return run(env, prepare)
