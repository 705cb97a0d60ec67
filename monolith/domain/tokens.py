"""Issuing access tokens (EdDSA JWTs). Only the monolith holds the private key.

`tv` is the user's token version at issue time: a logout or a password change increments the
version, and every service refuses tokens with an older one (fitcore.auth.TokenVerifier).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from fitcore.auth import ALGORITHM, TokenSettings


class TokenIssuer:
    def __init__(self, private_key: Any, settings: TokenSettings, ttl_seconds: int) -> None:
        self._key = private_key
        self._settings = settings
        self.ttl_seconds = ttl_seconds

    def issue(self, *, user_id: int, email: str, name: str, role: str, token_version: int) -> str:
        now = int(time.time())
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": str(user_id),
            "email": email,
            "name": name,
            "role": role,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            "tv": token_version,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)
