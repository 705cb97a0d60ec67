"""Development TLS material for the edge: a private CA and a server certificate it signs.

`./fit secrets` writes them for compose and Kubernetes (var/secrets), `./fit run --tls` for the
local mesh (var/keys/tls). Clients trust `ca.crt` (curl --cacert, grpc root certificates). For
production, certificates come from a real CA (cert-manager in Kubernetes) under the same
secret names; nothing here is used there.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Names the edge answers to in development: the local mesh, compose's service name and the
# Kubernetes Service (namespace fitco).
DEFAULT_NAMES = (
    "localhost",
    "envoy",
    "envoy.fitco",
    "envoy.fitco.svc",
    "envoy.fitco.svc.cluster.local",
)
DEFAULT_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> TlsFiles:
        return cls(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")

    def exist(self) -> bool:
        return self.ca_cert.exists() and self.cert.exists() and self.key.exists()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def generate(
    directory: Path,
    names: tuple[str, ...] = DEFAULT_NAMES,
    ips: tuple[str, ...] = DEFAULT_IPS,
    days: int = 365,
) -> TlsFiles:
    """A new CA (10 years) and a server certificate for `names` and `ips` (P-256, `days`)."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "The Fit Company dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles.in_dir(directory)
    _write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM), private=False)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(files.key, _pem_key(key), private=True)
    return files


def ensure(directory: Path) -> TlsFiles:
    """The development certificate in `directory`, made once (kept across restarts)."""
    files = TlsFiles.in_dir(directory)
    return files if files.exist() else generate(directory)
