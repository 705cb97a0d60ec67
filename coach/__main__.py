"""`python -m coach`: run the coach service."""

from __future__ import annotations

from coach.app import build
from fitcore.server import env_with_logging, serve


def main() -> int:
    env = env_with_logging("coach")
    return serve("coach", lambda: build(env))


if __name__ == "__main__":
    raise SystemExit(main())
