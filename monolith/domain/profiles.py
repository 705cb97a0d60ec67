"""The user's profile (onboarding, body data, goal) and body metrics over time.

Rows that several requests may create or change at once are written with INSERT ... ON
CONFLICT and locked first for a read-modify-write (see `Profiles._locked_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fitcore.clock import Clock
from fitcore.db import Database, dialect_insert
from fitcore.errors import Validator
from fitrules.days import is_known_zone
from monolith.domain.accounts import check_name
from monolith.domain.common import (
    AfterUserData,
    as_utc,
    newest_first_page,
    no_hook,
    user_or_not_found,
)
from monolith.models import (
    BodyMetricRow,
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
# Daily activity outside training, for energy estimates (the factors: fitrules.nutrition).
ACTIVITY_LEVELS = ("sedentary", "light", "moderate", "active", "very_active")


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
    activity_level: str = ""
    time_zone: str = ""


@dataclass
class ProfileChanges:
    name: str | None = None
    weight: float | None = None
    height: float | None = None
    fitness_goal: str | None = None
    birth_year: int | None = None
    sex: str | None = None
    experience: str | None = None
    activity_level: str | None = None
    time_zone: str | None = None


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


def _check_habits(v: Validator, activity_level: str | None, time_zone: str | None) -> None:
    if activity_level:
        v.check(
            activity_level in ACTIVITY_LEVELS,
            "activity_level",
            f"must be one of {', '.join(ACTIVITY_LEVELS)}",
        )
    if time_zone:
        v.check(
            is_known_zone(time_zone),
            "time_zone",
            "must be an IANA time zone name such as Europe/Paris",
        )


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


def _profile_view(user: UserRow, profile: ProfileRow | None) -> ProfileView:
    if profile is None:
        return ProfileView(user.email, user.name, 0.0, 0.0, "", False, 0, "", "", "", "")
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
        activity_level=profile.activity_level or "",
        time_zone=profile.time_zone or "",
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


class Profiles:
    def __init__(self, db: Database, clock: Clock, after_weight: AfterUserData = no_hook) -> None:
        self._db = db
        self._clock = clock
        # Goals follow the body weight (weight_loss, muscle_gain): settled in the same
        # transaction as each new weight.
        self._after_weight = after_weight

    # -- profile ------------------------------------------------------------------------

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
            user = user_or_not_found(s, user_id)
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
        activity_level: str = "",
        time_zone: str = "",
    ) -> ProfileView:
        v = Validator()
        now = self._clock.now()
        v.check(weight != 0, "weight", "is required")
        v.check(height != 0, "height", "is required")
        v.check(bool(fitness_goal.strip()), "fitness_goal", "is required")
        goal = _check_body(v, weight or None, height or None, fitness_goal or None)
        _check_person(v, now, birth_year or None, sex or None, experience or None)
        _check_habits(v, activity_level or None, time_zone or None)
        v.raise_if_any()
        with self._db.transaction() as s:
            user = user_or_not_found(s, user_id)
            profile = self._locked_profile(s, user_id, now)
            profile.weight_kg = weight
            profile.height_cm = height
            profile.fitness_goal = goal
            profile.birth_year = birth_year or profile.birth_year
            profile.sex = sex or profile.sex
            profile.experience = experience or profile.experience
            profile.activity_level = activity_level or profile.activity_level
            profile.time_zone = time_zone or profile.time_zone
            profile.onboarded = True
            profile.updated_at = now
            s.add(BodyMetricRow(user_id=user_id, measured_at=now, weight_kg=weight, note=""))
            s.flush()
            self._after_weight(s, user_id)
            return _profile_view(user, profile)

    def update_profile(self, user_id: int, changes: ProfileChanges) -> ProfileView:
        v = Validator()
        now = self._clock.now()
        if changes.name is not None:
            changes.name = check_name(changes.name, v)
        goal = _check_body(v, changes.weight, changes.height, changes.fitness_goal)
        _check_person(v, now, changes.birth_year, changes.sex, changes.experience)
        _check_habits(v, changes.activity_level, changes.time_zone)
        v.raise_if_any()
        with self._db.transaction() as s:
            user = user_or_not_found(s, user_id)
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
            if changes.activity_level is not None:
                profile.activity_level = changes.activity_level or None
            if changes.time_zone is not None:
                profile.time_zone = changes.time_zone or None
            profile.onboarded = bool(
                profile.weight_kg and profile.height_cm and profile.fitness_goal
            )
            profile.updated_at = now
            s.flush()
            if changes.weight is not None:
                self._after_weight(s, user_id)
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
            user_or_not_found(s, user_id)
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
            self._after_weight(s, user_id)
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
