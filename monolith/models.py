"""SQLAlchemy models. The schema itself is made only by the Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from fitcore.dbnames import NAMING_CONVENTION
from fitcore.outbox import outbox_table

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Incremented by a logout or a password change; tokens carry the version they were issued
    # with (`tv`), older ones are refused (migration 0006).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The user's day a STREAK event was last sent for (one per day at most, migration 0009).
    last_streak_day: Mapped[date | None] = mapped_column(Date)

    profile: Mapped[ProfileRow | None] = relationship(back_populates="user", uselist=False)


class ProfileRow(Base):
    __tablename__ = "profiles"

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_cm: Mapped[float | None] = mapped_column(Float)
    fitness_goal: Mapped[str | None] = mapped_column(String(32))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str | None] = mapped_column(String(16))
    experience: Mapped[str | None] = mapped_column(String(16))
    activity_level: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    onboarded: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    user: Mapped[UserRow] = relationship(back_populates="profile")


class PreferencesRow(Base):
    __tablename__ = "preferences"

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    equipment: Mapped[list[str]] = mapped_column(JSON)
    training_days_per_week: Mapped[int] = mapped_column(Integer)
    session_minutes: Mapped[int] = mapped_column(Integer)
    avoid_muscle_group_ids: Mapped[list[int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BodyMetricRow(Base):
    __tablename__ = "body_metrics"
    __table_args__ = (Index("ix_body_metrics_user_measured", "user_id", "measured_at", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    weight_kg: Mapped[float] = mapped_column(Float)
    body_fat_percent: Mapped[float | None] = mapped_column(Float)
    waist_cm: Mapped[float | None] = mapped_column(Float)
    resting_heart_rate: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), default="")


class MuscleGroupRow(Base):
    __tablename__ = "muscle_groups"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    body_part: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text)
    size: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16))


class ExerciseRow(Base):
    __tablename__ = "exercises"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text)
    difficulty: Mapped[int] = mapped_column(Integer)
    equipment: Mapped[str] = mapped_column(String(32))
    equipment_needed: Mapped[list[str]] = mapped_column(JSON)
    mechanic: Mapped[str] = mapped_column(String(16))
    force: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    measure: Mapped[str] = mapped_column(String(16))
    met_value: Mapped[float] = mapped_column(Float)
    met_code: Mapped[str] = mapped_column(String(8))
    rm_bodyweight_ratio: Mapped[float] = mapped_column(Float)

    muscles: Mapped[list[ExerciseMuscleRow]] = relationship(
        order_by="ExerciseMuscleRow.muscle_group_id"
    )


class ExerciseMuscleRow(Base):
    __tablename__ = "exercise_muscle_groups"

    exercise_id: Mapped[int] = mapped_column(
        Id, ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True
    )
    muscle_group_id: Mapped[int] = mapped_column(
        Id, ForeignKey("muscle_groups.id", ondelete="RESTRICT"), primary_key=True
    )
    is_primary: Mapped[bool] = mapped_column(Boolean)
    intensity: Mapped[float] = mapped_column(Float)


class ServedWodRow(Base):
    __tablename__ = "served_wods"
    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_served_wods_user_day"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    implementation: Mapped[str] = mapped_column(String(16))
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "training", "recovery" or "deload" (migration 0007).
    kind: Mapped[str] = mapped_column(String(16), default="training", server_default="training")
    notes: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    # Times the day's WOD was replaced (premium regenerations, migration 0008); its version.
    regenerations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    items: Mapped[list[HistoryRow]] = relationship(order_by="HistoryRow.position")


class HistoryRow(Base):
    __tablename__ = "exercise_history"
    __table_args__ = (
        Index("ix_exercise_history_user_day", "user_id", "day"),
        Index("ix_exercise_history_user_performed", "user_id", "performed_at", "id"),
        Index(
            "ix_exercise_history_user_id_exercise_id_performed_at",
            "user_id",
            "exercise_id",
            "performed_at",
        ),
        UniqueConstraint("session_id", "client_set_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    exercise_id: Mapped[int] = mapped_column(Id, ForeignKey("exercises.id", ondelete="RESTRICT"))
    performed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)
    sets: Mapped[int] = mapped_column(Integer, default=0)
    reps: Mapped[int] = mapped_column(Integer, default=0)
    weight_kg: Mapped[float] = mapped_column(Float, default=0.0)
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    rest_seconds: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(500), default="")
    source: Mapped[str] = mapped_column(String(16))
    wod_id: Mapped[int | None] = mapped_column(Id, ForeignKey("served_wods.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A set logged in a workout session (source "session", migration 0007): idempotent on
    # (session_id, client_set_id).
    session_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("workout_sessions.id", ondelete="CASCADE")
    )
    client_set_id: Mapped[str | None] = mapped_column(String(64))
    rpe: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class BootstrapClaimRow(Base):
    """Row 1 exists once the first admin was bootstrapped (see migration 0004)."""

    __tablename__ = "bootstrap_claim"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginAttemptRow(Base):
    """Consecutive failed logins per email key, for the login back-off (migration 0005).

    `key` is a hash of the normalised email, made the same way whether or not an account has
    that email, so the table (and the back-off) does not tell which emails are registered."""

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GoalRow(Base):
    """A fitness goal (migration 0007). Progress is measured when read, not stored."""

    __tablename__ = "goals"
    __table_args__ = (Index("ix_goals_user_id_status_id", "user_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    target_value: Mapped[float] = mapped_column(Float)
    target_date: Mapped[date] = mapped_column(Date)
    exercise_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("exercises.id", ondelete="RESTRICT")
    )
    start_value: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    achieved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A GOAL_OFF_TRACK event was sent and the goal has not been back on track since
    # (migration 0009): the event is sent once per fall from on track.
    off_track: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WorkoutSessionRow(Base):
    """A workout session (migration 0007); its sets are exercise_history rows."""

    __tablename__ = "workout_sessions"
    __table_args__ = (
        Index("ix_workout_sessions_user_id_started_at_id", "user_id", "started_at", "id"),
        # At most one active session per user, enforced by the database.
        Index(
            "uq_workout_sessions_one_active",
            "user_id",
            unique=True,
            sqlite_where=text("status = 'ACTIVE'"),
            postgresql_where=text("status = 'ACTIVE'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(8))
    from_wod: Mapped[bool] = mapped_column(Boolean, default=False)
    wod_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("served_wods.id", ondelete="SET NULL")
    )
    day: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    auto_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Filled when the session ends (what EndSession computed, kept so lists and stats agree).
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    calories: Mapped[float] = mapped_column(Float, default=0.0)
    volume_kg: Mapped[float] = mapped_column(Float, default=0.0)
    set_count: Mapped[int] = mapped_column(Integer, default=0)
    body_weight_kg: Mapped[float] = mapped_column(Float, default=0.0)


# Events written with the changes that cause them, for the relay to publish (fitcore.outbox,
# migration 0009).
EVENT_OUTBOX = outbox_table(Base.metadata)
