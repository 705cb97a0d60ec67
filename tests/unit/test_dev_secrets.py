"""The provider API key and webhook secret billing and the sandbox share (billing/dev_secrets)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from billing.dev_secrets import provider_api_key, webhook_secret
from fitcore.config import ConfigError, Env


def test_generated_once_with_owner_only_permissions_and_then_reused(tmp_path: Path) -> None:
    env = Env({"FITCO_DATA_DIR": str(tmp_path)})
    key, secret = provider_api_key(env), webhook_secret(env)
    assert len(key) >= 32
    assert len(secret) >= 32
    assert key.encode() != secret
    for name in ("provider_api_key", "webhook_secret"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600
    # A second process (billing, then the sandbox) reads the same values.
    assert provider_api_key(env) == key
    assert webhook_secret(env) == secret
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.endswith(".tmp")] == []


def test_concurrent_first_uses_agree(tmp_path: Path) -> None:
    env = Env({"FITCO_DATA_DIR": str(tmp_path)})
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda: seen.append(provider_api_key(env))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1
    assert len(seen) == 8


def test_env_value_then_file_win_over_generation(tmp_path: Path) -> None:
    named = tmp_path / "mounted"
    named.write_text("from-a-mounted-secret-file\n")
    env = Env(
        {
            "FITCO_DATA_DIR": str(tmp_path),
            "FITCO_PROVIDER_API_KEY": "inline-provider-api-key",
            "FITCO_WEBHOOK_SECRET_FILE": str(named),
        }
    )
    assert provider_api_key(env) == "inline-provider-api-key"
    assert webhook_secret(env) == b"from-a-mounted-secret-file"
    assert not (tmp_path / "keys").exists()


def test_production_refuses_to_generate(tmp_path: Path) -> None:
    env = Env({"FITCO_DATA_DIR": str(tmp_path), "FITCO_ENV": "production"})
    with pytest.raises(ConfigError, match="FITCO_PROVIDER_API_KEY"):
        provider_api_key(env)
    with pytest.raises(ConfigError, match="FITCO_WEBHOOK_SECRET"):
        webhook_secret(env)
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize(
    "extra",
    [
        {"FITCO_PROVIDER_API_KEY": "short"},
        {"FITCO_PROVIDER_API_KEY_FILE": "/nonexistent/provider_api_key"},
    ],
)
def test_bad_configuration_is_refused(tmp_path: Path, extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        provider_api_key(Env({"FITCO_DATA_DIR": str(tmp_path), **extra}))
