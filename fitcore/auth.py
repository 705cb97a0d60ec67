"""Bearer-token verification (EdDSA JWTs) and the identity of the caller.

Only the monolith holds the signing key; every service (and Envoy) verifies with the public key.
Services also refuse revoked tokens: a token carries its user's token version (`tv`), which a
logout or a password change increments; a `TokenVersions` source (the database in the monolith,
a monolith RPC in the coach, each cached for a couple of seconds) says what is current.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from fitcore.errors import Unauthenticated

ALGORITHM = "EdDSA"
ROLE_USER = "user"
ROLE_ADMIN = "admin"
ROLES = (ROLE_USER, ROLE_ADMIN)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    email: str
    name: str
    role: str
    token: str
    # The `tv` claim: the user's token version when the token was issued (0 for tokens from
    # before versions existed). Lower than the user's current version means revoked.
    token_version: int = 0

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


class TokenVersions(Protocol):
    """Where a service learns a user's current token version (see fitcore.token_versions)."""

    def current(self, principal: Principal) -> int:
        """The current version of the principal's user (may lag by a few seconds, never lead);
        may raise a ServiceError (UNAVAILABLE when the source cannot be asked)."""
        ...


# Claims every token must carry. `nbf` is not required (RFC 7519 makes it optional and a token
# without it is valid from `iat`, which is required); when present it is checked like `iat`.
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud", "role")
# Specific reasons in the ErrorInfo of UNAUTHENTICATED, so a client (and a test) can tell what
# was wrong. They say nothing an attacker holding the token could not read from it.
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "TOKEN_EXPIRED", "token expired"),
    (jwt.ImmatureSignatureError, "TOKEN_NOT_YET_VALID", "token not valid yet (nbf/iat)"),
    (jwt.InvalidAlgorithmError, "TOKEN_ALGORITHM_NOT_ALLOWED", "token algorithm not allowed"),
    (jwt.InvalidSignatureError, "TOKEN_BAD_SIGNATURE", "token signature does not verify"),
    (jwt.InvalidAudienceError, "TOKEN_WRONG_AUDIENCE", "token is for another audience"),
    (jwt.InvalidIssuerError, "TOKEN_WRONG_ISSUER", "token is from another issuer"),
    (jwt.MissingRequiredClaimError, "TOKEN_CLAIM_MISSING", "token lacks a required claim"),
    (jwt.DecodeError, "TOKEN_MALFORMED", "token is not a well-formed JWT"),
)


class TokenVerifier:
    """Verifies signature (EdDSA only: no `alg: none`, no HS256 with the public key), `exp`,
    `nbf`, `iat` (with `leeway_seconds`), `iss`, `aud`, the required claims and their types,
    then, when `versions` is given, that the token is not revoked."""

    def __init__(
        self, public_key: Any, settings: TokenSettings, versions: TokenVersions | None = None
    ) -> None:
        self._key = public_key
        self._settings = settings
        self._versions = versions

    def verify(self, token: str, *, check_revocation: bool = True) -> Principal:
        """The token's principal. `check_revocation=False` skips only the token-version check
        (see the interceptor: a trusted service forwarding a token it has checked itself)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "strict_aud": True,
                    "require": list(REQUIRED_CLAIMS),
                },
            )
        except jwt.InvalidTokenError as exc:
            for kind, reason, message in _REASONS:
                if isinstance(exc, kind):
                    raise Unauthenticated(message, reason=reason) from exc
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID") from exc
        role = claims.get("role")
        sub = claims.get("sub")
        version = claims.get("tv", 0)
        if (
            role not in ROLES
            or not isinstance(sub, str)
            or not (sub.isascii() and sub.isdigit())
            or not isinstance(version, int)
            or isinstance(version, bool)
            or version < 0
        ):
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID")
        principal = Principal(
            user_id=int(sub),
            email=str(claims.get("email", "")),
            name=str(claims.get("name", "")),
            role=role,
            token=token,
            token_version=version,
        )
        if (
            check_revocation
            and self._versions is not None
            and version < self._versions.current(principal)
        ):
            raise token_revoked()
        return principal


def token_revoked() -> Unauthenticated:
    """A token older than its user's current token version (a logout or a password change)."""
    return Unauthenticated(
        "token revoked (logged out or password changed): sign in again", reason="TOKEN_REVOKED"
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MISSING")
    return token.strip()
