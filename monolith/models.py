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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


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

    items: Mapped[list[HistoryRow]] = relationship(order_by="HistoryRow.position")


class HistoryRow(Base):
    __tablename__ = "exercise_history"
    __table_args__ = (
        Index("ix_exercise_history_user_day", "user_id", "day"),
        Index("ix_exercise_history_user_performed", "user_id", "performed_at", "id"),
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
