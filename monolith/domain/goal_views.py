"""A goal as the API shows it: the stored goal with its progress measured from the user's data
(`monolith.domain.goal_data`) by the rules of `monolith.domain.goal_progress`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from monolith.domain import goal_progress as gp
from monolith.domain.catalog import CatalogSnapshot
from monolith.domain.common import as_utc
from monolith.domain.goal_data import Reading
from monolith.models import GoalRow


@dataclass(frozen=True)
class ProgressView:
    start_value: float
    current_value: float
    percent: float
    on_track: bool
    projected_date: date | None
    basis: str
    data_points: int


@dataclass(frozen=True)
class GoalView:
    id: int
    kind: str
    target_value: float
    unit: str
    target_date: date
    exercise_id: int
    exercise_name: str
    status: str
    progress: ProgressView
    primary: bool
    created_at: datetime
    updated_at: datetime
    achieved_at: datetime | None


def goal_view(
    row: GoalRow, reading: Reading, today: date, *, primary: bool, catalog: CatalogSnapshot
) -> GoalView:
    kind = gp.KINDS[row.kind]
    # A measure nobody can read any more (no weight at all) shows where the goal started.
    current = reading.current if reading.current is not None else row.start_value
    p = gp.progress(
        kind,
        row.status,
        row.start_value,
        current,
        row.target_value,
        reading.points,
        today,
        row.target_date,
    )
    exercise = catalog.by_id.get(row.exercise_id or 0)
    return GoalView(
        id=row.id,
        kind=row.kind,
        target_value=row.target_value,
        unit=kind.unit,
        target_date=row.target_date,
        exercise_id=row.exercise_id or 0,
        exercise_name=exercise.name if exercise else "",
        status=row.status,
        progress=ProgressView(
            start_value=row.start_value,
            current_value=current,
            percent=p.percent,
            on_track=p.on_track,
            projected_date=p.projected_date,
            basis=reading.basis,
            data_points=len(reading.points),
        ),
        primary=primary,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        achieved_at=as_utc(row.achieved_at) if row.achieved_at else None,
    )
