"""Seed the exercise catalog (legacy ids 1-20 kept) from data/catalog_v1.json.

Idempotent: rows that already exist (by id) are left alone, so re-running on a database that
was seeded by hand does not duplicate anything. Downgrade removes exactly the seeded ids.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DATA = Path(__file__).resolve().parent.parent / "data" / "catalog_v1.json"

muscle_groups = sa.table(
    "muscle_groups",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("body_part", sa.String),
    sa.column("description", sa.Text),
    sa.column("size", sa.String),
    sa.column("region", sa.String),
)
exercises = sa.table(
    "exercises",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("instructions", sa.Text),
    sa.column("difficulty", sa.Integer),
    sa.column("equipment", sa.String),
    sa.column("equipment_needed", sa.JSON),
    sa.column("mechanic", sa.String),
    sa.column("force", sa.String),
    sa.column("category", sa.String),
    sa.column("measure", sa.String),
    sa.column("met_value", sa.Float),
    sa.column("met_code", sa.String),
    sa.column("rm_bodyweight_ratio", sa.Float),
)
links = sa.table(
    "exercise_muscle_groups",
    sa.column("exercise_id", sa.Integer),
    sa.column("muscle_group_id", sa.Integer),
    sa.column("is_primary", sa.Boolean),
    sa.column("intensity", sa.Float),
)

EXERCISE_FIELDS = [c.name for c in exercises.columns]
GROUP_FIELDS = [c.name for c in muscle_groups.columns]


def _load() -> dict[str, Any]:
    with DATA.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def upgrade() -> None:
    bind = op.get_bind()
    data = _load()
    have_groups = {r[0] for r in bind.execute(sa.select(muscle_groups.c.id))}
    have_exercises = {r[0] for r in bind.execute(sa.select(exercises.c.id))}
    new_groups = [
        {k: g[k] for k in GROUP_FIELDS} for g in data["muscle_groups"] if g["id"] not in have_groups
    ]
    new_exercises = [e for e in data["exercises"] if e["id"] not in have_exercises]
    if new_groups:
        op.bulk_insert(muscle_groups, new_groups)
    if new_exercises:
        op.bulk_insert(exercises, [{k: e[k] for k in EXERCISE_FIELDS} for e in new_exercises])
        op.bulk_insert(
            links,
            [
                {
                    "exercise_id": e["id"],
                    "muscle_group_id": m["muscle_group_id"],
                    "is_primary": m["is_primary"],
                    "intensity": m["intensity"],
                }
                for e in new_exercises
                for m in e["muscles"]
            ],
        )


def downgrade() -> None:
    data = _load()
    exercise_ids = [e["id"] for e in data["exercises"]]
    group_ids = [g["id"] for g in data["muscle_groups"]]
    op.execute(links.delete().where(links.c.exercise_id.in_(exercise_ids)))
    op.execute(exercises.delete().where(exercises.c.id.in_(exercise_ids)))
    op.execute(muscle_groups.delete().where(muscle_groups.c.id.in_(group_ids)))
