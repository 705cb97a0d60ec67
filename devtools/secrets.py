"""Secrets for docker compose / Kubernetes: `./fit secrets [DIR]` (default var/secrets).

Generated on this machine, never committed (var/ is ignored): the Ed25519 JWT key pair, the
JWKS Envoy verifies with, the admin bootstrap key and the database password. Existing files
are kept, so re-running is safe.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devtools import envoy
from devtools.paths import VAR

DEFAULT_DIR = VAR / "secrets"


def _write(path: Path, data: bytes) -> None:
    # Readable by the containers' unprivileged user (file secrets are bind mounts); the
    # directory itself is private to the owner.
    path.write_bytes(data)
    path.chmod(0o644)


def generate(directory: Path = DEFAULT_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    private, public = directory / "jwt_private.pem", directory / "jwt_public.pem"
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        _write(
            private,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write(
            public,
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    _write(
        directory / "jwks.json",
        json.dumps(envoy.jwks_from_public_key(public.read_bytes())).encode(),
    )
    for name in ("bootstrap_key", "db_password"):
        if not (directory / name).exists():
            _write(directory / name, secrets.token_urlsafe(32).encode())
    runtime = VAR / "compose" / "envoy-runtime"
    if envoy.read_runtime(runtime) is None:
        envoy.write_runtime(runtime, envoy.Split(100, 0))
    print(f"secrets in {directory} (owner-only directory; never commit them)")
    return directory


def run(directory: str | None) -> int:
    generate(
        Path(directory) if directory else Path(os.environ.get("FITCO_SECRETS_DIR", DEFAULT_DIR))
    )
    return 0
