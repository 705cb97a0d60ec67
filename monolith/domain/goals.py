"""Fitness goals: set, list, read, change and abandon them; their status follows the data.

Status: a goal is ACTIVE until its target is reached (ACHIEVED, `achieved_at` = when the data
point that reached it was measured), its target date passes unreached (EXPIRED) or the user
gives it up (ABANDONED). Goals are settled — ACTIVE ones measured and moved on when their data
says so — at the start of every RPC and by `refresh` (after a body metric or a session), in the
same transaction that persists the change.

The primary goal is the newest ACTIVE one; whenever the goals change, the profile's
`fitness_goal` (what the legacy clients and the WOD read) follows it. When no active goal is
left it keeps its value.

Every RPC runs in one write transaction, reads included: a read may settle a goal, and the
decision and its write belong to one snapshot. The user's profile row is locked first (as
`monolith.domain.profiles` does), so one user's goal changes and body-weight writes take turns
and cannot both pass the limit of MAX_ACTIVE_GOALS. A refused request still commits what it
settled (the refusal is raised after the commit) and writes nothing else.

Settling a goal ACHIEVED, and a goal falling off track after new data, are events on the
user's event stream, written in the same transaction (`goal_events`).

Beside this module: `goal_checks` (the rules of a new or changed goal), `goal_data` (measuring
the user's data), `goal_events` (the events), `goal_progress` (the maths, pure) and
`goal_views` (a goal as answered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fitcore.clock import Clock
from fitcore.db import Database, dialect_insert
from fitcore.errors import FailedPrecondition, NotFound, ServiceError, Validator
from fitrules.days import local_day, zone
from monolith.domain import goal_checks as checks
from monolith.domain import goal_events
from monolith.domain import goal_progress as gp
from monolith.domain.catalog import Catalog
from monolith.domain.common import as_utc, user_or_not_found
from monolith.domain.goal_checks import GoalChanges, NewGoal
from monolith.domain.goal_data import Readings
from monolith.domain.goal_views import GoalView, goal_view
from monolith.models import GoalRow, ProfileRow

# At most this many ACTIVE goals per user, so nothing a user does grows without bound.
MAX_ACTIVE_GOALS = 20
# ListGoals answers at most this many (newest first): finished goals pile up over the years.
MAX_LISTED = 100

T = TypeVar("T")


@dataclass
class _Ctx:
    """One RPC's transaction: the user, their locked profile (None when they have none), the
    time, and the readings of their data."""

    s: Session
    user_id: int
    now: datetime
    profile: ProfileRow | None
    readings: Readings
    active: list[GoalRow]

    @property
    def today(self) -> date:
        return self.readings.today


class Goals:
    def __init__(self, db: Database, catalog: Catalog, clock: Clock) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock

    # -- RPCs ---------------------------------------------------------------------------

    def create_goal(self, user_id: int, new: NewGoal) -> GoalView:
        return self._run(user_id, lambda ctx: self._create(ctx, new), create_profile=True)

    def list_goals(self, user_id: int, status: str = "") -> list[GoalView]:
        v = Validator()
        v.check(status in ("", *gp.STATUSES), "status", f"must be one of {', '.join(gp.STATUSES)}")
        v.raise_if_any()

        def work(ctx: _Ctx) -> list[GoalView]:
            q = select(GoalRow).where(GoalRow.user_id == user_id)
            if status:
                q = q.where(GoalRow.status == status)
            rows = list(ctx.s.scalars(q.order_by(GoalRow.id.desc()).limit(MAX_LISTED)))
            ctx.readings.want(r.exercise_id for r in rows if r.exercise_id)
            return [self._view(ctx, row) for row in rows]

        return self._run(user_id, work)

    def get_goal(self, user_id: int, goal_id: int) -> GoalView:
        return self._run(user_id, lambda ctx: self._view(ctx, self._owned(ctx, goal_id)))

    def update_goal(self, user_id: int, goal_id: int, changes: GoalChanges) -> GoalView:
        def work(ctx: _Ctx) -> GoalView:
            row = self._active(ctx, goal_id)
            kind = gp.KINDS[row.kind]
            v = Validator()
            day = checks.check_date(v, changes.target_date, ctx.today)
            if changes.target_value is not None and checks.check_range(
                v, kind, changes.target_value
            ):
                current = ctx.readings.of(row.kind, row.exercise_id).current
                checks.check_direction(
                    v, kind, changes.target_value, row.start_value if current is None else current
                )
            v.raise_if_any()
            if changes.target_value is not None:
                row.target_value = changes.target_value
            if day is not None:
                row.target_date = day
            row.updated_at = ctx.now
            return self._view(ctx, row)

        return self._run(user_id, work)

    def abandon_goal(self, user_id: int, goal_id: int) -> GoalView:
        def work(ctx: _Ctx) -> GoalView:
            row = self._active(ctx, goal_id)
            row.status, row.updated_at = gp.ABANDONED, ctx.now
            ctx.active.remove(row)
            self._follow_primary(ctx)
            return self._view(ctx, row)

        return self._run(user_id, work)

    def refresh(self, user_id: int) -> None:
        """Settle the user's active goals now (call after a body metric is recorded or a
        workout session ended: a goal reached is ACHIEVED at once, not on its next read)."""
        self._run(user_id, lambda ctx: None)

    def refresh_in(self, s: Session, user_id: int) -> None:
        """`refresh` inside the caller's write transaction (which should hold the user's
        profile lock already, or take no other lock after this); the data changed, so the
        goals left active are also judged on or off track (GOAL_OFF_TRACK)."""
        ctx = self._context(s, user_id, create_profile=False)
        self._settle(ctx)
        goal_events.watch_tracks(s, ctx.active, ctx.readings, ctx.now)

    # -- transactions, settling ---------------------------------------------------------

    def _run(self, user_id: int, work: Callable[[_Ctx], T], create_profile: bool = False) -> T:
        refused: ServiceError
        with self._db.transaction() as s:
            ctx = self._context(s, user_id, create_profile=create_profile)
            self._settle(ctx)
            try:
                return work(ctx)
            except ServiceError as exc:
                # Nothing was written after settling: commit what settling changed.
                refused = exc
        raise refused

    def _context(self, s: Session, user_id: int, create_profile: bool) -> _Ctx:
        now = self._clock.now()
        user_or_not_found(s, user_id)
        if create_profile:
            s.execute(
                dialect_insert(s, ProfileRow)
                .values(user_id=user_id, onboarded=False, updated_at=now)
                .on_conflict_do_nothing(index_elements=[ProfileRow.user_id])
            )
        profile = s.scalars(
            select(ProfileRow)
            .where(ProfileRow.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        active = list(
            s.scalars(
                select(GoalRow)
                .where(GoalRow.user_id == user_id, GoalRow.status == gp.ACTIVE)
                .order_by(GoalRow.id.desc())
            )
        )
        tz = zone(profile.time_zone if profile else None)
        wanted = {g.exercise_id for g in active if g.exercise_id}
        readings = Readings(s, user_id, now, tz, self._catalog.snapshot(), wanted)
        return _Ctx(s, user_id, now, profile, readings, active)

    def _settle(self, ctx: _Ctx) -> None:
        """Move ACTIVE goals the data has reached (ACHIEVED) or whose date passed (EXPIRED)."""
        changed = False
        for row in list(ctx.active):
            reading = ctx.readings.of(row.kind, row.exercise_id)
            direction = gp.KINDS[row.kind].direction
            if reading.current is not None and gp.reached(
                reading.current, row.target_value, direction
            ):
                at = max(as_utc(reading.at or ctx.now), as_utc(row.created_at))
                # Reached only after the target date: the date passed unreached first.
                reached_in_time = local_day(at, ctx.readings.tz) <= row.target_date
                row.status = gp.ACHIEVED if reached_in_time else gp.EXPIRED
                row.achieved_at = at if reached_in_time else None
                if reached_in_time:
                    goal_events.achieved(ctx.s, row, reading.current, ctx.now)
            elif ctx.today > row.target_date:
                row.status = gp.EXPIRED
            else:
                continue
            row.updated_at = ctx.now
            ctx.active.remove(row)
            changed = True
        if changed:
            self._follow_primary(ctx)

    def _follow_primary(self, ctx: _Ctx) -> None:
        """The profile's fitness_goal becomes the primary (newest active) goal's kind."""
        if not ctx.active:
            return
        kind = ctx.active[0].kind
        if ctx.profile is None:
            # A user without a profile has no lock to take turns on either; insert-if-missing
            # so a concurrent first write of the profile is not lost.
            ctx.s.execute(
                dialect_insert(ctx.s, ProfileRow)
                .values(user_id=ctx.user_id, onboarded=False, updated_at=ctx.now)
                .on_conflict_do_nothing(index_elements=[ProfileRow.user_id])
            )
            ctx.profile = ctx.s.get_one(ProfileRow, ctx.user_id, with_for_update=True)
        if ctx.profile.fitness_goal != kind:
            ctx.profile.fitness_goal = kind
            ctx.profile.updated_at = ctx.now

    def _owned(self, ctx: _Ctx, goal_id: int) -> GoalRow:
        row = ctx.s.scalar(
            select(GoalRow).where(GoalRow.id == goal_id, GoalRow.user_id == ctx.user_id)
        )
        if row is None:
            raise NotFound(f"goal {goal_id} not found", reason="GOAL_NOT_FOUND")
        return row

    def _active(self, ctx: _Ctx, goal_id: int) -> GoalRow:
        row = self._owned(ctx, goal_id)
        if row.status != gp.ACTIVE:
            raise FailedPrecondition(
                f"goal {goal_id} is {row.status}, not ACTIVE", reason="GOAL_NOT_ACTIVE"
            )
        return row

    # -- creating -----------------------------------------------------------------------

    def _create(self, ctx: _Ctx, new: NewGoal) -> GoalView:
        v = Validator()
        kind = checks.check_kind(v, new.kind)
        checks.check_exercise(v, self._catalog.snapshot(), new.kind, new.exercise_id)
        day = checks.check_date(v, new.target_date, ctx.today)
        if kind is not None:
            checks.check_range(v, kind, new.target_value)
        v.raise_if_any()
        assert kind is not None
        assert day is not None
        reading = ctx.readings.of(kind.name, new.exercise_id)
        if reading.current is None:
            raise FailedPrecondition(
                "your body weight is unknown: record a weight first", reason="WEIGHT_UNKNOWN"
            )
        checks.check_direction(v, kind, new.target_value, reading.current)
        v.raise_if_any()
        if len(ctx.active) >= MAX_ACTIVE_GOALS:
            raise FailedPrecondition(
                f"at most {MAX_ACTIVE_GOALS} active goals: abandon one first",
                reason="TOO_MANY_GOALS",
            )
        row = GoalRow(
            user_id=ctx.user_id,
            kind=kind.name,
            target_value=new.target_value,
            target_date=day,
            exercise_id=new.exercise_id or None,
            start_value=reading.current,
            status=gp.ACTIVE,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.s.add(row)
        ctx.s.flush()
        ctx.active.insert(0, row)
        self._follow_primary(ctx)
        return self._view(ctx, row)

    def _view(self, ctx: _Ctx, row: GoalRow) -> GoalView:
        return goal_view(
            row,
            ctx.readings.of(row.kind, row.exercise_id),
            ctx.today,
            primary=bool(ctx.active) and ctx.active[0].id == row.id,
            catalog=self._catalog.snapshot(),
        )
