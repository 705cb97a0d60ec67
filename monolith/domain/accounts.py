"""Accounts: users, authentication, profile, body metrics and preferences.

Passwords are hashed and verified outside any transaction: Argon2 takes tens of milliseconds
and must not hold a pooled connection or, on SQLite, the write lock while it runs. Rows that
several requests may create or change at once (profile, preferences, login attempts) are
written with INSERT ... ON CONFLICT and, for read-modify-write, locked first.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fitcore.auth import ROLE_ADMIN, ROLE_USER, ROLES
from fitcore.clock import Clock
from fitcore.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Validator,
)
from monolith.db import Database, dialect_insert
from monolith.domain.common import (
    as_utc,
    decode_page_token,
    encode_page_token,
    newest_first_page,
    page_size,
    token_id,
)
from monolith.domain.login_backoff import LoginBackoff, attempt_key
from monolith.domain.passwords import Passwords
from monolith.domain.tokens import TokenIssuer
from monolith.models import (
    BodyMetricRow,
    BootstrapClaimRow,
    PreferencesRow,
    ProfileRow,
    UserRow,
)

GOALS = ("weight_loss", "muscle_gain", "endurance", "strength", "general_fitness")
# Values older clients are known to send for the same goals.
GOAL_ALIASES = {
    "lose_weight": "weight_loss",
    "weightloss": "weight_loss",
    "build_muscle": "muscle_gain",
    "gain_muscle": "muscle_gain",
    "hypertrophy": "muscle_gain",
    "stamina": "endurance",
    "fitness": "general_fitness",
}
SEXES = ("male", "female")
EXPERIENCE = ("beginner", "intermediate", "advanced")
EQUIPMENT = (
    "bodyweight",
    "dumbbell",
    "barbell",
    "kettlebell",
    "cable",
    "machine",
    "cardio_machine",
    "jump_rope",
    "pull_up_bar",
    "bench",
    "pool",
)
# For new passwords (registration, password change); login accepts any stored password, so
# accounts made when the minimum was 10 keep working.
MAX_EMAIL = 254
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


@dataclass(frozen=True)
class ProfileView:
    email: str
    name: str
    weight: float
    height: float
    fitness_goal: str
    onboarded: bool
    birth_year: int
    sex: str
    experience: str


@dataclass
class ProfileChanges:
    name: str | None = None
    weight: float | None = None
    height: float | None = None
    fitness_goal: str | None = None
    birth_year: int | None = None
    sex: str | None = None
    experience: str | None = None


@dataclass(frozen=True)
class MetricView:
    id: int
    measured_at: datetime
    weight_kg: float
    body_fat_percent: float
    waist_cm: float
    resting_heart_rate: int
    note: str


@dataclass(frozen=True)
class MetricInput:
    weight_kg: float
    measured_at: datetime | None = None
    body_fat_percent: float = 0.0
    waist_cm: float = 0.0
    resting_heart_rate: int = 0
    note: str = ""


@dataclass(frozen=True)
class PreferencesView:
    equipment: list[str] = field(default_factory=list)
    training_days_per_week: int = 3
    session_minutes: int = 45
    avoid_muscle_group_ids: list[int] = field(default_factory=list)


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


def _check_name(name: str, v: Validator) -> str:
    name = name.strip()
    v.check(bool(name), "name", "is required")
    v.check(len(name) <= 200, "name", "must be at most 200 characters")
    return name


def normalize_goal(raw: str) -> str:
    goal = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return GOAL_ALIASES.get(goal, goal)


def _check_body(
    v: Validator, weight: float | None, height: float | None, goal: str | None
) -> str | None:
    if weight is not None:
        v.check(20 <= weight <= 400, "weight", "must be between 20 and 400 kg")
    if height is not None:
        v.check(100 <= height <= 250, "height", "must be between 100 and 250 cm")
    if goal is None:
        return None
    normalized = normalize_goal(goal)
    v.check(normalized in GOALS, "fitness_goal", f"must be one of {', '.join(GOALS)}")
    return normalized


def _check_person(
    v: Validator, now: datetime, birth_year: int | None, sex: str | None, experience: str | None
) -> None:
    if birth_year:
        v.check(
            1900 <= birth_year <= now.year - 13,
            "birth_year",
            f"must be between 1900 and {now.year - 13}",
        )
    if sex:
        v.check(sex in SEXES, "sex", "must be 'male' or 'female' (or empty)")
    if experience:
        v.check(experience in EXPERIENCE, "experience", f"must be one of {', '.join(EXPERIENCE)}")


def _bootstrapped(s: Session) -> bool:
    """Whether the first admin exists (bootstrapped, or made some other way)."""
    return s.get(BootstrapClaimRow, 1) is not None or bool(
        s.scalar(select(exists().where(UserRow.role == ROLE_ADMIN)))
    )


def _user_view(row: UserRow) -> UserView:
    return UserView(row.id, row.email, row.name, row.role, as_utc(row.created_at))


def _profile_view(user: UserRow, profile: ProfileRow | None) -> ProfileView:
    if profile is None:
        return ProfileView(user.email, user.name, 0.0, 0.0, "", False, 0, "", "")
    return ProfileView(
        email=user.email,
        name=user.name,
        weight=profile.weight_kg or 0.0,
        height=profile.height_cm or 0.0,
        fitness_goal=profile.fitness_goal or "",
        onboarded=profile.onboarded,
        birth_year=profile.birth_year or 0,
        sex=profile.sex or "",
        experience=profile.experience or "",
    )


def _metric_view(row: BodyMetricRow) -> MetricView:
    return MetricView(
        id=row.id,
        measured_at=as_utc(row.measured_at),
        weight_kg=row.weight_kg,
        body_fat_percent=row.body_fat_percent or 0.0,
        waist_cm=row.waist_cm or 0.0,
        resting_heart_rate=row.resting_heart_rate or 0,
        note=row.note,
    )


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
        name = _check_name(name, v)
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
        name = _check_name(name, v)
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
        name = _check_name(name, v)
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

    # -- profile ------------------------------------------------------------------------

    def _user(self, s: Session, user_id: int) -> UserRow:
        user = s.get(UserRow, user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    @staticmethod
    def _locked_profile(s: Session, user_id: int, now: datetime) -> ProfileRow:
        """The user's profile, created empty if missing, locked until the transaction ends.

        Insert-if-missing instead of get-or-create, so two first writes do not both insert;
        the lock (SELECT ... FOR UPDATE; on SQLite the write transaction's lock) makes a
        concurrent read-modify-write wait instead of overwriting this one."""
        s.execute(
            dialect_insert(s, ProfileRow)
            .values(user_id=user_id, onboarded=False, updated_at=now)
            .on_conflict_do_nothing(index_elements=[ProfileRow.user_id])
        )
        return s.scalars(
            select(ProfileRow)
            .where(ProfileRow.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()

    def get_profile(self, user_id: int) -> ProfileView:
        with self._db.transaction(write=False) as s:
            user = self._user(s, user_id)
            return _profile_view(user, s.get(ProfileRow, user_id))

    def complete_onboarding(
        self,
        user_id: int,
        weight: float,
        height: float,
        fitness_goal: str,
        birth_year: int = 0,
        sex: str = "",
        experience: str = "",
    ) -> ProfileView:
        v = Validator()
        now = self._clock.now()
        v.check(weight != 0, "weight", "is required")
        v.check(height != 0, "height", "is required")
        v.check(bool(fitness_goal.strip()), "fitness_goal", "is required")
        goal = _check_body(v, weight or None, height or None, fitness_goal or None)
        _check_person(v, now, birth_year or None, sex or None, experience or None)
        v.raise_if_any()
        with self._db.transaction() as s:
            user = self._user(s, user_id)
            profile = self._locked_profile(s, user_id, now)
            profile.weight_kg = weight
            profile.height_cm = height
            profile.fitness_goal = goal
            profile.birth_year = birth_year or profile.birth_year
            profile.sex = sex or profile.sex
            profile.experience = experience or profile.experience
            profile.onboarded = True
            profile.updated_at = now
            s.add(BodyMetricRow(user_id=user_id, measured_at=now, weight_kg=weight, note=""))
            s.flush()
            return _profile_view(user, profile)

    def update_profile(self, user_id: int, changes: ProfileChanges) -> ProfileView:
        v = Validator()
        now = self._clock.now()
        if changes.name is not None:
            changes.name = _check_name(changes.name, v)
        goal = _check_body(v, changes.weight, changes.height, changes.fitness_goal)
        _check_person(v, now, changes.birth_year, changes.sex, changes.experience)
        v.raise_if_any()
        with self._db.transaction() as s:
            user = self._user(s, user_id)
            profile = self._locked_profile(s, user_id, now)
            if changes.name is not None:
                user.name = changes.name
                user.updated_at = now
            if changes.weight is not None and changes.weight != profile.weight_kg:
                profile.weight_kg = changes.weight
                s.add(BodyMetricRow(user_id=user_id, measured_at=now, weight_kg=changes.weight))
            if changes.height is not None:
                profile.height_cm = changes.height
            if goal is not None:
                profile.fitness_goal = goal
            if changes.birth_year is not None:
                profile.birth_year = changes.birth_year or None
            if changes.sex is not None:
                profile.sex = changes.sex or None
            if changes.experience is not None:
                profile.experience = changes.experience or None
            profile.onboarded = bool(
                profile.weight_kg and profile.height_cm and profile.fitness_goal
            )
            profile.updated_at = now
            s.flush()
            return _profile_view(user, profile)

    # -- body metrics -------------------------------------------------------------------

    def record_metric(self, user_id: int, metric: MetricInput) -> MetricView:
        v = Validator()
        now = self._clock.now()
        measured_at = as_utc(metric.measured_at) if metric.measured_at else now
        v.check(20 <= metric.weight_kg <= 400, "weight_kg", "must be between 20 and 400 kg")
        v.check(
            measured_at <= now + timedelta(minutes=5), "measured_at", "must not be in the future"
        )
        v.check(measured_at.year >= 1900, "measured_at", "must be after 1900")
        v.check(
            metric.body_fat_percent == 0 or 2 <= metric.body_fat_percent <= 75,
            "body_fat_percent",
            "must be between 2 and 75",
        )
        v.check(
            metric.waist_cm == 0 or 30 <= metric.waist_cm <= 250,
            "waist_cm",
            "must be between 30 and 250 cm",
        )
        v.check(
            metric.resting_heart_rate == 0 or 25 <= metric.resting_heart_rate <= 220,
            "resting_heart_rate",
            "must be between 25 and 220 bpm",
        )
        v.check(len(metric.note) <= 500, "note", "must be at most 500 characters")
        v.raise_if_any()
        with self._db.transaction() as s:
            self._user(s, user_id)
            # Lock the profile first: one user's measurements then take turns, so the newest
            # (by measured_at) is the weight left on the profile whatever the commit order.
            profile = s.scalars(
                select(ProfileRow)
                .where(ProfileRow.user_id == user_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()
            row = BodyMetricRow(
                user_id=user_id,
                measured_at=measured_at,
                weight_kg=metric.weight_kg,
                body_fat_percent=metric.body_fat_percent or None,
                waist_cm=metric.waist_cm or None,
                resting_heart_rate=metric.resting_heart_rate or None,
                note=metric.note,
            )
            s.add(row)
            # The newest measurement is the profile's current weight.
            latest = s.scalar(
                select(BodyMetricRow.measured_at)
                .where(BodyMetricRow.user_id == user_id)
                .order_by(BodyMetricRow.measured_at.desc())
                .limit(1)
            )
            if profile is not None and (latest is None or as_utc(latest) <= measured_at):
                profile.weight_kg = metric.weight_kg
            s.flush()
            return _metric_view(row)

    def list_metrics(
        self,
        user_id: int,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> tuple[list[MetricView], str]:
        rows, next_token = newest_first_page(
            self._db, BodyMetricRow, BodyMetricRow.measured_at, user_id, start, end, size, token
        )
        return [_metric_view(r) for r in rows], next_token

    # -- preferences --------------------------------------------------------------------

    def get_preferences(self, user_id: int) -> PreferencesView:
        with self._db.transaction(write=False) as s:
            self._user(s, user_id)
            row = s.get(PreferencesRow, user_id)
            if row is None:
                return PreferencesView()
            return PreferencesView(
                list(row.equipment),
                row.training_days_per_week,
                row.session_minutes,
                [int(x) for x in row.avoid_muscle_group_ids],
            )

    def update_preferences(
        self, user_id: int, prefs: PreferencesView, known_muscle_groups: set[int]
    ) -> PreferencesView:
        v = Validator()
        equipment = sorted({e.strip().lower() for e in prefs.equipment})
        for i, item in enumerate(equipment):
            v.check(item in EQUIPMENT, f"preferences.equipment[{i}]", f"unknown equipment {item!r}")
        days = prefs.training_days_per_week or 3
        minutes = prefs.session_minutes or 45
        v.check(1 <= days <= 7, "preferences.training_days_per_week", "must be between 1 and 7")
        v.check(10 <= minutes <= 180, "preferences.session_minutes", "must be 10 to 180")
        avoid = sorted(set(prefs.avoid_muscle_group_ids))
        for i, mg in enumerate(avoid):
            v.check(
                mg in known_muscle_groups,
                f"preferences.avoid_muscle_group_ids[{i}]",
                f"unknown muscle group {mg}",
            )
        v.raise_if_any()
        values = {
            "equipment": equipment,
            "training_days_per_week": days,
            "session_minutes": minutes,
            "avoid_muscle_group_ids": avoid,
            "updated_at": self._clock.now(),
        }
        with self._db.transaction() as s:
            self._user(s, user_id)
            # One atomic upsert: a concurrent first write updates instead of failing.
            s.execute(
                dialect_insert(s, PreferencesRow)
                .values(user_id=user_id, **values)
                .on_conflict_do_update(index_elements=[PreferencesRow.user_id], set_=values)
            )
        return PreferencesView(equipment, days, minutes, avoid)
