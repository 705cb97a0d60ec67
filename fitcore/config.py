"""Reading configuration from the environment, once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


class Env:
    """Typed access to environment variables with clear errors."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)

    def get_str(self, name: str, default: str | None = None) -> str:
        value = self._env.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"{name} must be set")
            return default
        return value

    def optional(self, name: str) -> str | None:
        value = self._env.get(name)
        return value if value else None

    def get_int(self, name: str, default: int) -> int:
        raw = self._env.get(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc

    def get_float(self, name: str, default: float) -> float:
        raw = self._env.get(name)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from exc

    def get_bool(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if not raw:
            return default
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be a boolean, got {raw!r}")

    def get_path(self, name: str, default: Path) -> Path:
        raw = self._env.get(name)
        return Path(raw) if raw else default


def is_production(env: Env) -> bool:
    """Production refuses every convenience default (generated keys, test clocks)."""
    return env.get_str("FITCO_ENV", "development").lower() in ("production", "prod")


def data_dir(env: Env) -> Path:
    """The local data directory (SQLite file, generated dev keys)."""
    default = Path(__file__).resolve().parent.parent / "var"
    return env.get_path("FITCO_DATA_DIR", default)
