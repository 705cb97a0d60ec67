"""Bearer-token verification (EdDSA JWTs) and the identity of the caller.

Only the monolith holds the signing key; every service (and Envoy) verifies with the public key.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt

from fitcore.errors import Unauthenticated

ALGORITHM = "EdDSA"
ROLE_USER = "user"
ROLE_ADMIN = "admin"
ROLES = (ROLE_USER, ROLE_ADMIN)


class Access(Enum):
    """Who may call an RPC."""

    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    email: str
    name: str
    role: str
    token: str

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    """The caller of the current RPC. Only valid inside an authenticated RPC."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("authentication required")
    return principal


@dataclass(frozen=True, slots=True)
class TokenSettings:
    issuer: str
    audience: str
    leeway_seconds: int = 10


class TokenVerifier:
    def __init__(self, public_key: Any, settings: TokenSettings) -> None:
        self._key = public_key
        self._settings = settings

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "role"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID") from exc
        role = claims.get("role")
        sub = claims.get("sub")
        if role not in ROLES or not isinstance(sub, str) or not sub.isdigit():
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID")
        return Principal(
            user_id=int(sub),
            email=str(claims.get("email", "")),
            name=str(claims.get("name", "")),
            role=role,
            token=token,
        )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MISSING")
    return token.strip()
