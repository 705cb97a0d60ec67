"""Settings every service reads the same way."""

from __future__ import annotations

from pathlib import Path

from fitcore.auth import TokenSettings
from fitcore.clock import Clock, FileClock, SystemClock
from fitcore.config import ConfigError, Env, is_production


def token_settings(env: Env) -> TokenSettings:
    return TokenSettings(
        issuer=env.get_str("FITCO_JWT_ISSUER", "fitco"),
        audience=env.get_str("FITCO_JWT_AUDIENCE", "fitco-api"),
        leeway_seconds=env.get_int("FITCO_JWT_LEEWAY_SECONDS", 10),
    )


def clock_from_env(env: Env) -> Clock:
    path = env.optional("FITCO_TEST_CLOCK_FILE")
    if path is None:
        return SystemClock()
    if is_production(env):
        raise ConfigError("FITCO_TEST_CLOCK_FILE is for tests only, not production")
    return FileClock(Path(path))
