"""Accounts: users, sign-in (registration, login, admin bootstrap and admin-created users).

Passwords are hashed and verified outside any transaction: Argon2 takes tens of milliseconds
and must not hold a pooled connection or, on SQLite, the write lock while it runs. The profile,
body metrics and preferences live in `monolith.domain.profiles` and `.preferences`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fitcore.auth import ROLE_ADMIN, ROLE_USER, ROLES
from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    Unauthenticated,
    Validator,
)
from monolith.domain.common import (
    as_utc,
    decode_page_token,
    encode_page_token,
    page_size,
    token_id,
)
from monolith.domain.login_backoff import LoginBackoff, attempt_key
from monolith.domain.passwords import Passwords
from monolith.domain.tokens import TokenIssuer
from monolith.models import (
    BootstrapClaimRow,
    ProfileRow,
    UserRow,
)

MAX_EMAIL = 254
# For new passwords (registration, password change); login accepts any stored password, so
# accounts made when the minimum was 10 keep working.
MIN_PASSWORD = 12
MAX_PASSWORD = 128


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class NewAccount:
    user: UserView
    password: str


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    onboarded: bool


def normalize_email(raw: str, v: Validator, field_name: str = "email") -> str:
    raw = raw.strip()
    if not raw:
        v.add(field_name, "is required")
        return ""
    try:
        email = validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        v.add(field_name, f"not a valid email address: {exc}")
        return ""
    # Lower-casing can lengthen some characters: the column holds 254.
    v.check(len(email) <= MAX_EMAIL, field_name, f"must be at most {MAX_EMAIL} characters")
    return email


def check_name(name: str, v: Validator) -> str:
    name = name.strip()
    v.check(bool(name), "name", "is required")
    v.check(len(name) <= 200, "name", "must be at most 200 characters")
    return name


def _bootstrapped(s: Session) -> bool:
    """Whether the first admin exists (bootstrapped, or made some other way)."""
    return s.get(BootstrapClaimRow, 1) is not None or bool(
        s.scalar(select(exists().where(UserRow.role == ROLE_ADMIN)))
    )


def _user_view(row: UserRow) -> UserView:
    return UserView(row.id, row.email, row.name, row.role, as_utc(row.created_at))


class Accounts:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        issuer: TokenIssuer,
        bootstrap_key: str,
        clock: Clock,
        backoff: LoginBackoff | None = None,
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._issuer = issuer
        self._bootstrap_key = bootstrap_key
        self._clock = clock
        self._backoff = backoff or LoginBackoff()

    # -- accounts -----------------------------------------------------------------------

    def _insert_user(
        self, session: Session, email: str, name: str, role: str, password_hash: str
    ) -> UserRow:
        if session.scalar(select(exists().where(UserRow.email == email))):
            raise AlreadyExists(f"a user with email {email} already exists", reason="EMAIL_TAKEN")
        now = self._clock.now()
        row = UserRow(
            email=email,
            name=name,
            role=role,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
            token_version=0,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:  # a concurrent insert of the same email
            raise AlreadyExists(
                f"a user with email {email} already exists", reason="EMAIL_TAKEN"
            ) from exc
        return row

    def _grant(self, user: UserRow, onboarded: bool) -> TokenGrant:
        token = self._issuer.issue(
            user_id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            token_version=user.token_version,
        )
        return TokenGrant(token, self._issuer.ttl_seconds, onboarded)

    def register(self, email: str, name: str, password: str) -> tuple[UserView, TokenGrant]:
        v = Validator()
        email = normalize_email(email, v)
        name = check_name(name, v)
        v.check(
            MIN_PASSWORD <= len(password) <= MAX_PASSWORD,
            "password",
            f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        )
        v.raise_if_any()
        password_hash = self._passwords.hash(password)
        with self._db.transaction() as s:
            row = self._insert_user(s, email, name, ROLE_USER, password_hash)
            return _user_view(row), self._grant(row, onboarded=False)

    def login(self, email: str, password: str) -> TokenGrant:
        if not email.strip() or not password:
            raise InvalidArgument(
                [
                    FieldViolation(f, "is required")
                    for f, val in (("email", email.strip()), ("password", password))
                    if not val
                ]
            )
        lookup = email.strip().lower()
        key = attempt_key(lookup)
        now = self._clock.now()
        # Read, then let the transaction go before verifying. A locked email is refused here,
        # before any hashing, and the same way whether or not an account has it.
        with self._db.transaction(write=False) as s:
            failures = self._backoff.check(s, key, now)
            row = s.scalar(select(UserRow).where(UserRow.email == lookup))
            profile = s.get(ProfileRow, row.id) if row else None
            onboarded = bool(profile and profile.onboarded)
        if not self._passwords.verify(row.password_hash if row else None, password):
            with self._db.transaction() as s:
                self._backoff.record_failure(s, key, now)
            raise Unauthenticated("invalid email or password", reason="BAD_CREDENTIALS")
        assert row is not None
        new_hash = self._rehash(row.password_hash, password)
        if failures or new_hash:
            with self._db.transaction() as s:
                if failures:
                    self._backoff.reset(s, key)
                if new_hash:
                    # Only if unchanged since we read it: never undo a concurrent change.
                    s.execute(
                        update(UserRow)
                        .where(UserRow.id == row.id, UserRow.password_hash == row.password_hash)
                        .values(password_hash=new_hash)
                    )
        return self._grant(row, onboarded=onboarded)

    def _rehash(self, password_hash: str, password: str) -> str | None:
        """A hash with the current parameters when the stored one is older, else None."""
        if not self._passwords.needs_rehash(password_hash):
            return None
        try:
            return self._passwords.hash(password)
        except ResourceExhausted:
            return None  # busy: the login still succeeds, a later one upgrades the hash

    def bootstrap_admin(self, presented_key: str, email: str, name: str) -> NewAccount:
        if not presented_key or not hmac.compare_digest(
            presented_key.encode(), self._bootstrap_key.encode()
        ):
            raise Unauthenticated("missing or wrong bootstrap key", reason="BAD_BOOTSTRAP_KEY")
        taken = AlreadyExists("an admin already exists", reason="ADMIN_EXISTS")
        # Once done, every later call is ALREADY_EXISTS whatever it carries, at the cost of a
        # read: no validation, no hashing (the transaction below decides races).
        with self._db.transaction(write=False) as s:
            if _bootstrapped(s):
                raise taken
        v = Validator()
        email = normalize_email(email, v)
        name = check_name(name, v)
        v.raise_if_any()
        password = self._passwords.generate()
        password_hash = self._passwords.hash(password)
        try:
            with self._db.transaction() as s:
                if _bootstrapped(s):
                    raise taken
                row = self._insert_user(s, email, name, ROLE_ADMIN, password_hash)
                # Row 1 can exist once: a concurrent bootstrap fails here and rolls back.
                s.add(BootstrapClaimRow(id=1, user_id=row.id, claimed_at=self._clock.now()))
                s.flush()
                return NewAccount(_user_view(row), password)
        except IntegrityError as exc:
            raise taken from exc

    def create_user(self, email: str, name: str, role: str) -> NewAccount:
        v = Validator()
        email = normalize_email(email, v)
        name = check_name(name, v)
        role = role.strip().lower() or ROLE_USER
        v.check(role in ROLES, "role", "must be 'user' or 'admin'")
        v.raise_if_any()
        password = self._passwords.generate()
        password_hash = self._passwords.hash(password)
        with self._db.transaction() as s:
            row = self._insert_user(s, email, name, role, password_hash)
            return NewAccount(_user_view(row), password)

    def list_users(self, size: int, token: str) -> tuple[list[UserView], str]:
        limit = page_size(size, 100, 500)
        after = decode_page_token(token)
        with self._db.transaction(write=False) as s:
            q = select(UserRow).order_by(UserRow.id).limit(limit + 1)
            if after:
                q = q.where(UserRow.id > token_id(after, 0))
            rows = list(s.scalars(q))
        more = len(rows) > limit
        rows = rows[:limit]
        return [_user_view(r) for r in rows], encode_page_token([rows[-1].id]) if more else ""
