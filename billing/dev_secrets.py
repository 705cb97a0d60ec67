"""The two secrets billing and the payment provider share: the provider API key (billing calls
the provider with it) and the webhook signing secret (the provider signs, billing verifies).

One place for both processes (billing and `python -m sandboxpay` run separately) so they agree:

1. the value itself in `FITCO_PROVIDER_API_KEY` / `FITCO_WEBHOOK_SECRET`;
2. else a file named by `FITCO_PROVIDER_API_KEY_FILE` / `FITCO_WEBHOOK_SECRET_FILE` (a mounted
   secret in compose/Kubernetes);
3. else, for local runs only, `<FITCO_DATA_DIR>/keys/provider_api_key` / `webhook_secret`,
   generated on first use with owner-only permissions. Production refuses to generate (as
   fitcore/keys.py does for the JWT keys, via `is_production`): a missing secret there is a
   configuration error, never a fresh random value nobody else knows.

Generation is race-free between the two processes: the value is written to a private temporary
file and hard-linked into place, so whichever process links first wins and the other reads
that complete file. The values are never logged (only the path where one was generated).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

from fitcore.config import ConfigError, Env, data_dir, is_production

log = logging.getLogger(__name__)

API_KEY_VAR: Final = "FITCO_PROVIDER_API_KEY"
WEBHOOK_SECRET_VAR: Final = "FITCO_WEBHOOK_SECRET"  # noqa: S105 - a variable's name
API_KEY_FILE_NAME: Final = "provider_api_key"
WEBHOOK_SECRET_FILE_NAME: Final = "webhook_secret"  # noqa: S105 - a file's name
# 32 random bytes (256 bits, the HMAC-SHA256 key size) in URL-safe base64: 43 characters.
_GENERATED_BYTES: Final = 32
# A shorter shared secret is guessable or a placeholder left in a config file.
MIN_SECRET_CHARS: Final = 16


def provider_api_key(env: Env) -> str:
    """The API key billing presents to the provider (and the sandbox expects)."""
    return _secret(env, API_KEY_VAR, API_KEY_FILE_NAME, "the provider API key")


def webhook_secret(env: Env) -> bytes:
    """The HMAC key of the `Provider-Signature` webhook header (sandbox signs, billing
    verifies)."""
    return _secret(env, WEBHOOK_SECRET_VAR, WEBHOOK_SECRET_FILE_NAME, "the webhook secret").encode()


def _secret(env: Env, var: str, file_name: str, what: str) -> str:
    inline = env.optional(var)
    if inline is not None:
        return _checked(inline.strip(), f"{var}", what)
    named = env.optional(f"{var}_FILE")
    if named is not None:
        try:
            return _checked(Path(named).read_text().strip(), f"{var}_FILE", what)
        except FileNotFoundError as exc:
            raise ConfigError(f"{what} not found at {var}_FILE={named}") from exc
    path = data_dir(env) / "keys" / file_name
    if not path.exists():
        if is_production(env):
            raise ConfigError(f"{what} is not configured: set {var} or {var}_FILE")
        _generate(path)
    return _checked(path.read_text().strip(), str(path), what)


def _checked(value: str, source: str, what: str) -> str:
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"{what} from {source} must have at least {MIN_SECRET_CHARS} characters")
    return value


def _generate(path: Path) -> None:
    """Write a new random secret at `path` unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(_GENERATED_BYTES) + "\n")
        try:
            # link() fails when the name exists: the first process's complete file wins.
            os.link(tmp, path)
        except FileExistsError:
            return
        log.warning("generated a development secret", extra={"path": str(path)})
    finally:
        tmp.unlink(missing_ok=True)
