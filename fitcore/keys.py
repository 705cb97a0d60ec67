"""Key material: the JWT key pair, the admin bootstrap key and the services' identity keys.

Keys come from env or files. For local runs (never in production) missing keys are generated on
first start into the data directory with owner-only permissions; nothing is ever committed and
there is no fixed default.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fitcore.config import ConfigError, Env, data_dir, is_production
from fitcore.service_auth import SERVICE_NAME

log = logging.getLogger(__name__)

# Services that call INTERNAL RPCs: each gets an identity key pair, generated for local runs
# here and for compose/Kubernetes by `./fit secrets`; production mounts its own (adr/05).
# monolith: asks billing for entitlements; billing and realtime: ask the monolith's CheckToken
# whether a user's token was revoked.
SERVICE_IDENTITIES = ("coach", "monolith", "billing", "realtime")


@dataclass(frozen=True)
class KeyPaths:
    private_key: Path
    public_key: Path
    bootstrap_key: Path
    # Trusted callers of INTERNAL RPCs: one `<service>.pem` public key each.
    service_keys_dir: Path
    generated_dir: Path  # where local runs keep generated keys

    def service_private_key(self, service: str) -> Path:
        """Where a service's own identity key is generated for local runs."""
        return self.generated_dir / f"service_{service}.pem"


def default_key_paths(env: Env) -> KeyPaths:
    keys = data_dir(env) / "keys"
    return KeyPaths(
        private_key=env.get_path("FITCO_JWT_PRIVATE_KEY_FILE", keys / "jwt_private.pem"),
        public_key=env.get_path("FITCO_JWT_PUBLIC_KEY_FILE", keys / "jwt_public.pem"),
        bootstrap_key=env.get_path("FITCO_BOOTSTRAP_KEY_FILE", keys / "bootstrap.key"),
        service_keys_dir=env.get_path("FITCO_SERVICE_KEYS_DIR", keys / "services"),
        generated_dir=keys,
    )


def _pem_pair(key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def ensure_dev_keys(env: Env) -> KeyPaths:
    """Generate missing local keys (development only). Returns where they are."""
    paths = default_key_paths(env)
    if is_production(env):
        return paths
    if not paths.private_key.exists() and not env.optional("FITCO_JWT_PRIVATE_KEY"):
        private, public = _pem_pair(Ed25519PrivateKey.generate())
        _write_secret(paths.private_key, private)
        paths.public_key.parent.mkdir(parents=True, exist_ok=True)
        paths.public_key.write_bytes(public)
        log.warning("generated a development JWT key pair", extra={"path": str(paths.private_key)})
    if not paths.bootstrap_key.exists() and not env.optional("FITCO_BOOTSTRAP_KEY"):
        _write_secret(paths.bootstrap_key, secrets.token_urlsafe(32).encode())
        log.warning(
            "generated a development bootstrap key", extra={"path": str(paths.bootstrap_key)}
        )
    for service in SERVICE_IDENTITIES:
        private_path = paths.service_private_key(service)
        public_path = paths.service_keys_dir / f"{service}.pem"
        if private_path.exists() and public_path.exists():
            continue
        private, public = _pem_pair(Ed25519PrivateKey.generate())
        _write_secret(private_path, private)
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_bytes(public)
        log.warning(
            "generated a development service identity",
            extra={"service": service, "path": str(private_path)},
        )
    return paths


def _read(env: Env, inline_var: str, path: Path, what: str) -> bytes:
    inline = env.optional(inline_var)
    if inline:
        return inline.encode()
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: set {inline_var} or put it at {path}") from exc


def load_private_key(env: Env) -> Ed25519PrivateKey:
    data = _read(env, "FITCO_JWT_PRIVATE_KEY", default_key_paths(env).private_key, "JWT key")
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the JWT private key must be an Ed25519 key")
    return key


def load_public_key(env: Env) -> Ed25519PublicKey:
    data = _read(env, "FITCO_JWT_PUBLIC_KEY", default_key_paths(env).public_key, "JWT public key")
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the JWT public key must be an Ed25519 key")
    return key


def load_bootstrap_key(env: Env) -> str:
    data = _read(env, "FITCO_BOOTSTRAP_KEY", default_key_paths(env).bootstrap_key, "bootstrap key")
    key = data.decode().strip()
    if len(key) < 16:
        raise ConfigError("the bootstrap key must have at least 16 characters")
    return key


def load_service_private_key(env: Env, service: str) -> Ed25519PrivateKey:
    """This service's own identity key (FITCO_SERVICE_PRIVATE_KEY[_FILE]; for local runs the
    generated `keys/service_<name>.pem`)."""
    path = env.get_path(
        "FITCO_SERVICE_PRIVATE_KEY_FILE", default_key_paths(env).service_private_key(service)
    )
    data = _read(env, "FITCO_SERVICE_PRIVATE_KEY", path, f"service key of {service}")
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("a service key must be an Ed25519 key")
    return key


def load_service_public_keys(env: Env) -> dict[str, Ed25519PublicKey]:
    """The services trusted to call INTERNAL RPCs: `<name>.pem` in FITCO_SERVICE_KEYS_DIR.
    A missing directory stops the service (a typo must not silently refuse every internal
    call); an empty one trusts nobody."""
    directory = default_key_paths(env).service_keys_dir
    if not directory.is_dir():
        raise ConfigError(
            f"service key directory not found: set FITCO_SERVICE_KEYS_DIR or create {directory}"
        )
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob("*.pem")):
        if not SERVICE_NAME.match(path.stem):
            raise ConfigError(f"{path.name}: a service key is named <service>.pem")
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{path.name}: a service key must be an Ed25519 public key")
        keys[path.stem] = key
    return keys
