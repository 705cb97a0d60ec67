"""Service identity: short-lived service tokens for INTERNAL RPCs.

An INTERNAL RPC (see fitcore.access) may be called only by another fitco service. The calling
service proves who it is with a service token in the `x-fitco-service-token` metadata, beside
the user's own access token when it acts for a user:

- each calling service holds its own Ed25519 key (`FITCO_SERVICE_PRIVATE_KEY[_FILE]`) and mints
  EdDSA JWTs with `iss` = `sub` = `service:<name>`, `aud` = `fitco-internal`, a `kid` header of
  `<name>`, and a lifetime of 60 s, re-minted well before they expire;
- the serving service trusts only the public keys in its service-key directory
  (`FITCO_SERVICE_KEYS_DIR`, one `<name>.pem` each) and refuses anything else: an unknown
  `kid`, a bad signature, another audience (a user token is for `fitco-api`), an expired token
  or one that claims to live longer than `MAX_LIFETIME_SECONDS`.

Why signed tokens rather than mTLS or a shared secret: adr/05-access-and-service-identity.md.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fitcore.errors import Unauthenticated

SERVICE_TOKEN_HEADER = "x-fitco-service-token"  # noqa: S105 - a metadata key, not a secret
SERVICE_AUDIENCE = "fitco-internal"
SUBJECT_PREFIX = "service:"
ALGORITHM = "EdDSA"
TOKEN_TTL_SECONDS = 60
# A service token claiming a longer life than this is refused, whoever signed it: a leaked
# token must stop working within minutes, and a key holder cannot mint one that does not.
MAX_LIFETIME_SECONDS = 300
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    """The fitco service that called, proven by its service token."""

    name: str

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}{self.name}"


service_var: contextvars.ContextVar[ServicePrincipal | None] = contextvars.ContextVar(
    "service", default=None
)


def current_service() -> ServicePrincipal | None:
    """The calling service of the current RPC (None unless it is an INTERNAL RPC)."""
    return service_var.get()


class ServiceTokenMinter:
    """Mints this service's tokens; one token is reused until half its life is gone."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        ttl_seconds: int = TOKEN_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not SERVICE_NAME.match(name):
            raise ValueError(f"not a service name: {name!r}")
        if not 0 < ttl_seconds <= MAX_LIFETIME_SECONDS:
            raise ValueError(f"a service token lives 1 to {MAX_LIFETIME_SECONDS} s")
        self.principal = ServicePrincipal(name)
        self._key = private_key
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def mint(self) -> str:
        now = int(self._clock())
        subject = self.principal.subject
        claims = {
            "iss": subject,
            "sub": subject,
            "aud": SERVICE_AUDIENCE,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.principal.name}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers=headers)

    def token(self) -> str:
        now = self._clock()
        with self._lock:
            if now >= self._renew_at:
                self._token = self.mint()
                self._renew_at = now + self._ttl / 2
            return self._token

    def metadata(self) -> tuple[str, str]:
        return (SERVICE_TOKEN_HEADER, self.token())


class ServiceTokenVerifier:
    """Verifies service tokens against the trusted services' public keys (name → key)."""

    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        leeway_seconds: int = 10,
        max_lifetime_seconds: int = MAX_LIFETIME_SECONDS,
    ) -> None:
        self._keys = dict(keys)
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds

    @property
    def services(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str) -> ServicePrincipal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("invalid service token", reason="SERVICE_TOKEN_INVALID") from exc
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(kid, str):
            raise Unauthenticated("unknown calling service", reason="SERVICE_UNKNOWN")
        subject = f"{SUBJECT_PREFIX}{kid}"
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=SERVICE_AUDIENCE,
                issuer=subject,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "strict_aud": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("service token expired", reason="SERVICE_TOKEN_EXPIRED") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(
                "not a service token (wrong audience)", reason="SERVICE_TOKEN_WRONG_AUDIENCE"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("invalid service token", reason="SERVICE_TOKEN_INVALID") from exc
        exp, iat = claims["exp"], claims["iat"]
        if (
            claims["sub"] != subject
            or not isinstance(exp, int)
            or not isinstance(iat, int)
            or exp - iat > self._max_lifetime
        ):
            raise Unauthenticated("invalid service token", reason="SERVICE_TOKEN_INVALID")
        return ServicePrincipal(kid)
