"""`python -m monolith [serve|migrate|downgrade REV]`."""

from __future__ import annotations

import argparse
import logging
import sys

from fitcore.config import ConfigError, Env
from fitcore.logs import setup_logging
from monolith import migrations
from monolith.app import build, database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monolith")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (default)")
    sub.add_parser("migrate", help="upgrade the database schema to head")
    down = sub.add_parser("downgrade", help="downgrade the schema to a revision")
    down.add_argument("revision")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    env = Env()
    setup_logging(
        "monolith", env.get_str("FITCO_LOG_LEVEL", "INFO"), env.get_str("FITCO_LOG_FORMAT", "json")
    )
    try:
        if args.command == "migrate":
            migrations.upgrade(database_url(env))
            return 0
        if args.command == "downgrade":
            migrations.downgrade(database_url(env), args.revision)
            return 0
        if env.get_bool("FITCO_AUTO_MIGRATE", False):
            migrations.upgrade(database_url(env))
        app = build(env)
    except ConfigError as exc:
        logging.getLogger("monolith").error("configuration error: %s", exc)
        return 2
    app.service.serve_forever()
    app.db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
