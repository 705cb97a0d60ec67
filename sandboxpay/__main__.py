"""`python -m sandboxpay serve`: run the sandbox payment provider until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys

from fitcore.config import ConfigError
from fitcore.server import env_with_logging, shutdown_requested
from sandboxpay.server import build

log = logging.getLogger("sandboxpay")
USAGE = "usage: python -m sandboxpay serve"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["serve"]):
        print(USAGE, file=sys.stderr)
        return 2
    env = env_with_logging("sandboxpay")
    try:
        sandbox = build(env)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    except OSError as exc:  # the address is taken, or not ours to bind
        log.error("cannot listen: %s", exc)
        return 1
    stopping = shutdown_requested(log)
    sandbox.start()
    while not stopping.wait(1.0):
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
