"""`python -m monolith [serve|migrate|downgrade REV]` (fitcore.cli)."""

from __future__ import annotations

from fitcore.cli import database_service_main
from monolith.app import build, database_url
from monolith.migrations import MIGRATIONS


def main(argv: list[str] | None = None) -> int:
    return database_service_main("monolith", MIGRATIONS, database_url, build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
