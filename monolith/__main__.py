"""`python -m monolith [serve|migrate|downgrade REV]`."""

from __future__ import annotations

import argparse
import sys

from fitcore.server import env_with_logging, serve
from monolith import migrations
from monolith.app import Monolith, build, database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monolith")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (default)")
    sub.add_parser("migrate", help="upgrade the database schema to head")
    down = sub.add_parser("downgrade", help="downgrade the schema to a revision")
    down.add_argument("revision")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    env = env_with_logging("monolith")
    if args.command == "migrate":
        migrations.upgrade(database_url(env))
        return 0
    if args.command == "downgrade":
        migrations.downgrade(database_url(env), args.revision)
        return 0

    def start() -> Monolith:
        if env.get_bool("FITCO_AUTO_MIGRATE", False):
            migrations.upgrade(database_url(env))
        return build(env)

    return serve("monolith", start)


if __name__ == "__main__":
    raise SystemExit(main())
