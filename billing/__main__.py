"""`python -m billing [serve|migrate|downgrade REV]` (fitcore.cli)."""

from __future__ import annotations

from billing.app import Billing, build, database_url
from billing.migrations import MIGRATIONS
from fitcore.cli import database_service_main
from fitcore.config import Env


def _start(env: Env) -> Billing:
    app = build(env)
    app.start_background()  # database_service_main's serve() starts the gRPC server itself
    return app


def main(argv: list[str] | None = None) -> int:
    return database_service_main("billing", MIGRATIONS, database_url, _start, argv)


if __name__ == "__main__":
    raise SystemExit(main())
