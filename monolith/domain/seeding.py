"""Many users, fast, for load tests (`./fit seed users N --out FILE`, issue #13).

Each seeded user is what a registered and onboarded user is: an account (role user, a real
argon2 password hash) and a complete profile with its first body weight, as
Profiles.complete_onboarding leaves it. What makes it fast: the password is hashed once and the
hash reused for every account (hashing is deliberately slow: ~50 ms each), and users are
written in batches, one transaction per batch. Users whose email exists are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from fitcore.auth import ROLE_USER
from fitcore.clock import Clock
from fitcore.db import Database
from fitcore.errors import Validator
from monolith.domain.accounts import normalize_email
from monolith.domain.profiles import GOALS
from monolith.models import BodyMetricRow, ProfileRow, UserRow

BATCH = 500
EMAIL_DOMAIN = "seed.example.com"


@dataclass(frozen=True)
class SeedUser:
    email: str
    name: str
    weight_kg: float
    height_cm: float
    fitness_goal: str


@dataclass(frozen=True)
class SeedResult:
    created: int
    kept: int


def seed_user(n: int) -> SeedUser:
    """The n-th seeded user: the same email every run (so a run keeps what an earlier one
    made), bodies and goals spread like a real population's."""
    return SeedUser(
        email=f"user{n:07d}@{EMAIL_DOMAIN}",
        name=f"Seed User {n}",
        weight_kg=float(55 + (n * 7) % 50),
        height_cm=float(155 + (n * 11) % 40),
        fitness_goal=GOALS[n % len(GOALS)],
    )


def _batches(
    users: Sequence[tuple[str, SeedUser]], size: int
) -> Iterator[Sequence[tuple[str, SeedUser]]]:
    for start in range(0, len(users), size):
        yield users[start : start + size]


def seed_users(
    db: Database, clock: Clock, users: Sequence[SeedUser], password_hash: str, batch: int = BATCH
) -> SeedResult:
    """Create the users that do not exist yet, onboarded, all with `password_hash`."""
    v = Validator()
    normalized = [(normalize_email(u.email, v), u) for u in users]
    v.raise_if_any()
    created = kept = 0
    for chunk in _batches(normalized, batch):
        wanted = dict(chunk)
        with db.transaction() as s:
            existing = set(s.scalars(select(UserRow.email).where(UserRow.email.in_(wanted))))
            now = clock.now()
            new = [(email, u) for email, u in wanted.items() if email not in existing]
            rows = [
                UserRow(
                    email=email,
                    name=u.name,
                    role=ROLE_USER,
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                    token_version=0,
                )
                for email, u in new
            ]
            s.add_all(rows)
            s.flush()  # the ids
            for row, (_, u) in zip(rows, new, strict=True):
                s.add(
                    ProfileRow(
                        user_id=row.id,
                        weight_kg=u.weight_kg,
                        height_cm=u.height_cm,
                        fitness_goal=u.fitness_goal,
                        onboarded=True,
                        updated_at=now,
                    )
                )
                s.add(
                    BodyMetricRow(user_id=row.id, measured_at=now, weight_kg=u.weight_kg, note="")
                )
        created += len(rows)
        kept += len(existing)
    return SeedResult(created, kept)
