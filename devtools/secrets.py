"""Secrets for docker compose / Kubernetes: `./fit secrets [DIR]` (default var/secrets).

Generated on this machine, never committed (var/ is ignored): the Ed25519 JWT key pair, the
JWKS Envoy verifies with, the admin bootstrap key, the database passwords (the monolith's,
billing's and the realtime service's), each internal caller's service identity key pair
(`service_<name>_private.pem` for the service itself, `service_<name>_public.pem` for the
services it calls, which trust it for INTERNAL RPCs), billing's shared secrets with the
payment provider (`webhook_secret`, `provider_api_key`), and the edge's TLS certificate
(`tls.crt`, `tls.key`, signed by a development CA `ca.crt` that clients trust). Existing files
are kept, so re-running is safe.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import fitedge
from devtools import certs
from devtools.paths import VAR
from fitcore.keys import SERVICE_IDENTITIES

DEFAULT_DIR = VAR / "secrets"


def _write(path: Path, data: bytes) -> None:
    # Readable by the containers' unprivileged user (file secrets are bind mounts); the
    # directory itself is private to the owner.
    path.write_bytes(data)
    path.chmod(0o644)


def _key_pair(private: Path, public: Path) -> None:
    if private.exists() and public.exists():
        return
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


def generate(directory: Path = DEFAULT_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    private, public = directory / "jwt_private.pem", directory / "jwt_public.pem"
    _key_pair(private, public)
    for service in SERVICE_IDENTITIES:
        _key_pair(
            directory / f"service_{service}_private.pem",
            directory / f"service_{service}_public.pem",
        )
    _write(
        directory / "jwks.json",
        json.dumps(fitedge.jwks_from_public_key(public.read_bytes())).encode(),
    )
    # The edge's TLS certificate (development CA: clients trust ca.crt).
    if not certs.TlsFiles.in_dir(directory).exist():
        certs.generate(directory)
    for name in (
        "bootstrap_key",
        "db_password",
        "billing_db_password",
        "realtime_db_password",
        "webhook_secret",
        "provider_api_key",
    ):
        if not (directory / name).exists():
            _write(directory / name, secrets.token_urlsafe(32).encode())
    runtime = VAR / "compose" / "envoy-runtime"
    if fitedge.read_runtime(runtime) is None:
        fitedge.write_runtime(runtime, fitedge.Split(100, 0))
    print(f"secrets in {directory} (owner-only directory; never commit them)")
    return directory


def run(directory: str | None) -> int:
    generate(
        Path(directory) if directory else Path(os.environ.get("FITCO_SECRETS_DIR", DEFAULT_DIR))
    )
    return 0
