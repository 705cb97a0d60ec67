"""The exercise catalog, held in memory as contract messages.

The catalog is reference data changed only by migrations, so the monolith loads it once and
re-reads it at most every `ttl_seconds`. Messages are built once and reused, which keeps the
catalog RPCs and both WOD implementations free of per-request queries.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from fitco.catalog.v1 import catalog_pb2
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from fitcore.db import Database
from fitcore.errors import NotFound
from monolith.models import ExerciseRow, MuscleGroupRow


class CatalogSnapshot:
    """An immutable view of the catalog with lookups by id."""

    def __init__(
        self,
        exercises: tuple[catalog_pb2.Exercise, ...],
        muscle_groups: tuple[catalog_pb2.MuscleGroup, ...],
        version: str,
    ) -> None:
        self.exercises = exercises
        self.muscle_groups = muscle_groups
        self.version = version
        self.by_id: dict[int, catalog_pb2.Exercise] = {e.id: e for e in exercises}
        self.group_ids: frozenset[int] = frozenset(g.id for g in muscle_groups)

    def exercise(self, exercise_id: int) -> catalog_pb2.Exercise:
        found = self.by_id.get(exercise_id)
        if found is None:
            raise NotFound(f"exercise {exercise_id} not found", reason="EXERCISE_NOT_FOUND")
        return found

    def filtered(
        self, muscle_group_id: int = 0, equipment: str = "", difficulty: int = 0
    ) -> list[catalog_pb2.Exercise]:
        return [
            e
            for e in self.exercises
            if (not muscle_group_id or any(m.id == muscle_group_id for m in e.muscle_groups))
            and (not equipment or e.equipment == equipment)
            and (not difficulty or e.difficulty == difficulty)
        ]


def load_snapshot(db: Database) -> CatalogSnapshot:
    with db.transaction(write=False) as s:
        groups = list(s.scalars(select(MuscleGroupRow).order_by(MuscleGroupRow.id)))
        rows = list(
            s.scalars(
                select(ExerciseRow)
                .options(selectinload(ExerciseRow.muscles))
                .order_by(ExerciseRow.id)
            )
        )
    group_msgs = {
        g.id: catalog_pb2.MuscleGroup(
            id=g.id,
            name=g.name,
            body_part=g.body_part,
            description=g.description,
            size=g.size,
            region=g.region,
        )
        for g in groups
    }
    exercises = []
    for row in rows:
        impacts = sorted(
            row.muscles, key=lambda m: (not m.is_primary, -m.intensity, m.muscle_group_id)
        )
        exercises.append(
            catalog_pb2.Exercise(
                id=row.id,
                name=row.name,
                description=row.description,
                difficulty=row.difficulty,
                equipment=row.equipment,
                instructions=row.instructions,
                equipment_needed=list(row.equipment_needed),
                mechanic=row.mechanic,
                force=row.force,
                category=row.category,
                measure=row.measure,
                met_value=row.met_value,
                met_code=row.met_code,
                rm_bodyweight_ratio=row.rm_bodyweight_ratio,
                muscle_groups=[
                    catalog_pb2.MuscleGroupImpact(
                        id=m.muscle_group_id,
                        name=group_msgs[m.muscle_group_id].name,
                        body_part=group_msgs[m.muscle_group_id].body_part,
                        description=group_msgs[m.muscle_group_id].description,
                        is_primary=m.is_primary,
                        intensity=m.intensity,
                    )
                    for m in impacts
                ],
            )
        )
    digest = hashlib.sha256()
    for msg in [*group_msgs.values(), *exercises]:
        digest.update(msg.SerializeToString(deterministic=True))
    return CatalogSnapshot(tuple(exercises), tuple(group_msgs.values()), digest.hexdigest()[:16])


class Catalog:
    def __init__(
        self,
        db: Database,
        ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._snapshot: CatalogSnapshot | None = None
        self._loaded_at = 0.0

    def snapshot(self) -> CatalogSnapshot:
        snap = self._snapshot
        if snap is not None and self._monotonic() - self._loaded_at < self._ttl:
            return snap
        with self._lock:
            if self._snapshot is None or self._monotonic() - self._loaded_at >= self._ttl:
                self._snapshot = load_snapshot(self._db)
                self._loaded_at = self._monotonic()
            return self._snapshot
