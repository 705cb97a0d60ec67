"""`python -m coach`: run the coach service."""

from __future__ import annotations

import logging

from coach.app import build
from fitcore.config import ConfigError, Env
from fitcore.logs import setup_logging


def main() -> int:
    env = Env()
    setup_logging(
        "coach", env.get_str("FITCO_LOG_LEVEL", "INFO"), env.get_str("FITCO_LOG_FORMAT", "json")
    )
    try:
        app = build(env)
    except ConfigError as exc:
        logging.getLogger("coach").error("configuration error: %s", exc)
        return 2
    app.service.serve_forever()
    app.monolith.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
