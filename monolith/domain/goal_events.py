"""The goal events on the user's event stream (fitcore.outbox, adr/10-real-time.md), written in
the transaction that settles the goal:

- GOAL_ACHIEVED when an ACTIVE goal is settled ACHIEVED (`monolith.domain.goals`).
- GOAL_OFF_TRACK when an ACTIVE goal's trend stops reaching its target by the target date:
  once per fall, the goal's `off_track` flag remembering it was sent until the goal is back on
  track. Evaluated where the user's data changes (a body weight, a logged set, an ended
  session: `Goals.refresh_in`), not on reads. A goal whose data makes no trend yet (fewer than
  MIN_TREND_POINTS points) is neither on nor off track: a new goal is not "off track" for
  lack of data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from fitco.events.v1 import events_pb2
from sqlalchemy.orm import Session

from fitcore.outbox import add_event
from fitcore.timestamps import timestamp
from monolith.domain import goal_progress as gp
from monolith.domain.goal_data import Readings
from monolith.models import GoalRow


def achieved(s: Session, row: GoalRow, current: float, now: datetime) -> None:
    """GOAL_ACHIEVED for `row`, reached with `current`."""
    payload = events_pb2.GoalAchieved(
        goal_id=row.id,
        kind=row.kind,
        target_value=row.target_value,
        current_value=current,
        unit=gp.KINDS[row.kind].unit,
    )
    ev = events_pb2.WatchEventsResponse(
        type="GOAL_ACHIEVED", time=timestamp(now), goal_achieved=payload
    )
    add_event(s, row.user_id, ev)


def watch_tracks(s: Session, active: Iterable[GoalRow], readings: Readings, now: datetime) -> None:
    """Send GOAL_OFF_TRACK for the ACTIVE goals that just went off track; clear the flag of
    those back on track."""
    for row in active:
        reading = readings.of(row.kind, row.exercise_id)
        if reading.current is None or not gp.has_trend(reading.points):
            continue
        kind = gp.KINDS[row.kind]
        progress = gp.progress(
            kind,
            gp.ACTIVE,
            row.start_value,
            reading.current,
            row.target_value,
            reading.points,
            readings.today,
            row.target_date,
        )
        if progress.on_track:
            row.off_track = False
            continue
        if row.off_track:
            continue  # sent already, and not back on track since
        row.off_track = True
        payload = events_pb2.GoalOffTrack(
            goal_id=row.id,
            kind=row.kind,
            target_value=row.target_value,
            current_value=reading.current,
            unit=kind.unit,
            percent=progress.percent,
            target_date=row.target_date.isoformat(),
            projected_date=progress.projected_date.isoformat() if progress.projected_date else "",
        )
        ev = events_pb2.WatchEventsResponse(
            type="GOAL_OFF_TRACK", time=timestamp(now), goal_off_track=payload
        )
        add_event(s, row.user_id, ev)
