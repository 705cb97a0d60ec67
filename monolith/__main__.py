"""`python -m monolith [serve|migrate|downgrade REV]` (fitcore.cli)."""

from __future__ import annotations

from fitcore.cli import database_service_main
from fitcore.config import Env
from monolith.app import Monolith, build, database_url
from monolith.migrations import MIGRATIONS


def _start(env: Env) -> Monolith:
    app = build(env)
    app.start_background()  # database_service_main's serve() starts the gRPC server itself
    return app


def main(argv: list[str] | None = None) -> int:
    return database_service_main("monolith", MIGRATIONS, database_url, _start, argv)


if __name__ == "__main__":
    raise SystemExit(main())
