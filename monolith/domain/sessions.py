"""Sessions: changing a password, logging out, and the per-user token version behind both.

Every token carries its user's token version (`tv`). A password change or a logout increments
the version in `users.token_version`, which revokes every token issued before: the services
refuse a token whose version is lower than the current one (fitcore.auth.TokenVerifier), the
monolith reading it here through a cache of at most `FITCO_TOKEN_VERSION_CACHE_SECONDS` (2 s),
the coach through `CheckToken`. So a logout ends every session of the user, not only the one
that asked: one integer per user, no deny-list to store, expire and look up per token
(adr/03-security-auth-and-validation.md, "Revoking tokens").

The changes themselves are conditional on the version the caller's token carries
(`UPDATE ... WHERE token_version = tv`), read fresh in the write transaction: a token that was
already revoked cannot log out again or change the password, even while a cache still accepts
it.

A password is verified and hashed outside any transaction, in the bounded hash pool, and a wrong
current password counts towards the same per-email login back-off as a failed login, so a
stolen token does not open an unthrottled way to guess the password.
"""

from __future__ import annotations

from sqlalchemy import select, update

from fitcore.auth import Principal, token_revoked
from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import FieldViolation, InvalidArgument, Validator
from fitcore.token_versions import DEFAULT_TTL_SECONDS, TokenVersionCache
from monolith.domain.accounts import MAX_PASSWORD, MIN_PASSWORD, TokenGrant
from monolith.domain.login_backoff import LoginBackoff, attempt_key
from monolith.domain.passwords import Passwords
from monolith.domain.tokens import TokenIssuer
from monolith.models import ProfileRow, UserRow


class Sessions:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        issuer: TokenIssuer,
        clock: Clock,
        backoff: LoginBackoff,
        *,
        cache_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._issuer = issuer
        self._clock = clock
        self._backoff = backoff
        # What the monolith's TokenVerifier asks on every authenticated RPC.
        self.versions = TokenVersionCache(self._read_version, cache_seconds)

    def _read_version(self, principal: Principal) -> int:
        with self._db.transaction(write=False) as s:
            version = s.scalar(select(UserRow.token_version).where(UserRow.id == principal.user_id))
        # No such account (any more): enough to refuse the token.
        return principal.token_version + 1 if version is None else int(version)

    def check_token(self, principal: Principal) -> int:
        """The current version, read fresh (not cached); TOKEN_REVOKED when the token is older."""
        version = self._read_version(principal)
        self.versions.note(principal.user_id, version)
        if principal.token_version < version:
            raise token_revoked()
        return version

    def logout(self, principal: Principal) -> None:
        """Revoke the caller's token, and with it every token of the user issued before."""
        version = principal.token_version
        with self._db.transaction() as s:
            bumped = s.execute(
                update(UserRow)
                .where(UserRow.id == principal.user_id, UserRow.token_version == version)
                .values(token_version=version + 1)
                .returning(UserRow.id)
            ).scalar_one_or_none()
        if bumped is None:
            raise token_revoked()
        self.versions.note(principal.user_id, version + 1)

    def change_password(self, principal: Principal, current: str, new: str) -> TokenGrant:
        v = Validator()
        v.check(bool(current), "current_password", "is required")
        v.check(
            MIN_PASSWORD <= len(new) <= MAX_PASSWORD,
            "new_password",
            f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        )
        if current and new:
            v.check(new != current, "new_password", "must differ from the current password")
        v.raise_if_any()
        now = self._clock.now()
        with self._db.transaction(write=False) as s:
            row = s.get(UserRow, principal.user_id)
            if row is None or row.token_version != principal.token_version:
                raise token_revoked()
            key = attempt_key(row.email)
            # Locked by failed logins (or failed changes): refused before any hashing.
            failures = self._backoff.check(s, key, now)
            profile = s.get(ProfileRow, row.id)
            onboarded = bool(profile and profile.onboarded)
            email, name, role = row.email, row.name, row.role
            old_hash = row.password_hash
        if not self._passwords.verify(old_hash, current):
            with self._db.transaction() as s:
                self._backoff.record_failure(s, key, now)
            raise InvalidArgument(
                [FieldViolation("current_password", "is not the current password")]
            )
        new_hash = self._passwords.hash(new)
        version = principal.token_version + 1
        with self._db.transaction() as s:
            changed = s.execute(
                update(UserRow)
                .where(
                    UserRow.id == principal.user_id,
                    UserRow.token_version == principal.token_version,
                )
                .values(password_hash=new_hash, token_version=version, updated_at=now)
                .returning(UserRow.id)
            ).scalar_one_or_none()
            if changed is None:  # a concurrent logout or change revoked this token
                raise token_revoked()
            if failures:
                self._backoff.reset(s, key)
        self.versions.note(principal.user_id, version)
        token = self._issuer.issue(
            user_id=principal.user_id, email=email, name=name, role=role, token_version=version
        )
        return TokenGrant(token, self._issuer.ttl_seconds, onboarded)
