"""GoalService over gRPC against an in-process monolith, on SQLite and PostgreSQL: every rule
and every error status of goals, their progress from the user's data, and the profile's
fitness_goal following the primary goal."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
from fitco.goals.v1 import goals_pb2, goals_pb2_grpc
from fitco.history.v1 import history_pb2
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2
from sqlalchemy import select, update

from fitrules.strength import epley_1rm
from monolith.domain.catalog import Catalog
from monolith.domain.goals import Goals
from monolith.models import GoalRow, HistoryRow, ProfileRow, UserRow, WorkoutSessionRow
from tests.conftest import RunningMonolith, UserSession, onboard, register
from tests.rpc import error_reason, expect_error, field_violations


@dataclass
class Env:
    m: RunningMonolith
    goals: goals_pb2_grpc.GoalServiceStub
    user: UserSession

    @property
    def today(self) -> date:
        return self.m.clock.now().date()  # the users below live in UTC unless a test says so

    def day(self, days: int) -> str:
        return (self.today + timedelta(days=days)).isoformat()

    def advance(self, days: float) -> None:
        self.m.clock.at += timedelta(days=days)

    def create(self, kind: str, target: float, days: int = 60, exercise_id: int = 0) -> Any:
        return self.goals.CreateGoal(
            goals_pb2.CreateGoalRequest(
                kind=kind, target_value=target, target_date=self.day(days), exercise_id=exercise_id
            ),
            metadata=self.user.md,
        ).goal

    def get(self, goal_id: int) -> Any:
        return self.goals.GetGoal(
            goals_pb2.GetGoalRequest(goal_id=goal_id), metadata=self.user.md
        ).goal

    def list(self, status: str = "") -> list[Any]:
        return list(
            self.goals.ListGoals(
                goals_pb2.ListGoalsRequest(status=status), metadata=self.user.md
            ).goals
        )

    def weigh(self, kg: float) -> Any:
        return self.m.client.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(weight_kg=kg), metadata=self.user.md
        ).metric

    def lift(self, exercise_id: int, kg: float, reps: int, days_ago: float = 0) -> None:
        self.m.client.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=exercise_id,
                sets=1,
                reps=reps,
                weight_kg=kg,
                performed_at=_ts(self.m.clock.now() - timedelta(days=days_ago)),
            ),
            metadata=self.user.md,
        )

    def fitness_goal(self) -> str:
        return str(
            self.m.client.users.GetProfile(
                user_pb2.GetProfileRequest(), metadata=self.user.md
            ).profile.fitness_goal
        )

    def status_in_db(self, goal_id: int) -> str:
        with self.m.app.db.transaction(write=False) as s:
            return str(s.scalar(select(GoalRow.status).where(GoalRow.id == goal_id)))


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


@pytest.fixture
def env(monolith: RunningMonolith) -> Env:
    user = register(monolith.client)
    onboard(monolith.client, user, goal="muscle_gain")  # 80 kg, 180 cm
    return Env(monolith, goals_pb2_grpc.GoalServiceStub(monolith.client.channel), user)


def _violations(call: Callable[[], Any]) -> dict[str, str]:
    return field_violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call))


def test_weight_loss_goal_progress_projection_and_achievement(env: Env) -> None:
    goal = env.create("weight_loss", 75, days=60)
    assert (goal.kind, goal.unit, goal.status, goal.primary) == (
        "weight_loss",
        "kg",
        "ACTIVE",
        True,
    )
    assert (goal.target_value, goal.target_date, goal.exercise_id) == (75, env.day(60), 0)
    p = goal.progress
    assert (p.start_value, p.current_value, p.percent) == (80, 80, 0)
    # One body metric (onboarding): no trend yet.
    assert (p.data_points, p.projected_date, p.on_track) == (1, "", False)
    assert "body weight" in p.basis
    assert env.fitness_goal() == "weight_loss"  # followed the primary goal (was muscle_gain)
    for kg in (79.5, 79.0, 78.5):
        env.advance(1)
        env.weigh(kg)
    p = env.get(goal.id).progress
    assert (p.current_value, p.data_points) == (78.5, 4)
    assert p.percent == pytest.approx(30.0)
    # -0.5 kg a day reaches 75 kg seven days after today's 78.5.
    assert p.projected_date == env.day(7)
    assert p.on_track is True
    assert [g.id for g in env.list()] == [goal.id]
    env.advance(1)
    reached = env.weigh(74.8)
    done = env.get(goal.id)
    assert (done.status, done.primary) == ("ACHIEVED", False)
    assert done.achieved_at.ToDatetime(tzinfo=UTC) == reached.measured_at.ToDatetime(tzinfo=UTC)
    assert (done.progress.percent, done.progress.on_track) == (100, True)
    assert done.progress.current_value == 74.8
    # No active goal is left: the profile keeps the last primary goal's kind.
    assert env.fitness_goal() == "weight_loss"
    assert env.list("ACTIVE") == []


def test_muscle_gain_goal_reached_and_the_profile_follows_the_next_primary(env: Env) -> None:
    endurance = env.create("endurance", 120)
    gain = env.create("muscle_gain", 82)
    assert env.fitness_goal() == "muscle_gain"
    assert [(g.id, g.primary) for g in env.list()] == [(gain.id, True), (endurance.id, False)]
    env.weigh(82.5)
    listed = env.list()
    assert [(g.id, g.status, g.primary) for g in listed] == [
        (gain.id, "ACHIEVED", False),
        (endurance.id, "ACTIVE", True),
    ]
    assert env.fitness_goal() == "endurance"


def test_a_new_weight_settles_goals_in_its_own_transaction(env: Env) -> None:
    goal = env.create("weight_loss", 79)
    env.weigh(78.9)
    assert env.status_in_db(goal.id) == "ACHIEVED"  # nobody read it: the metric settled it


def test_refresh_settles_goals_without_a_read(env: Env) -> None:
    goal = env.create("weight_loss", 70, days=2)
    env.advance(3)  # the target date passed: EXPIRED, once something settles it
    assert env.status_in_db(goal.id) == "ACTIVE"
    goals = Goals(env.m.app.db, Catalog(env.m.app.db, 60), env.m.clock)
    goals.refresh(env.user.id)
    assert env.status_in_db(goal.id) == "EXPIRED"
    second = env.create("weight_loss", 69, days=2)
    env.advance(3)
    with env.m.app.db.transaction() as s:
        goals.refresh_in(s, env.user.id)
    assert env.status_in_db(second.id) == "EXPIRED"


def test_create_validation(env: Env) -> None:
    def create(**fields: Any) -> dict[str, str]:
        request: dict[str, Any] = {
            "kind": "weight_loss",
            "target_value": 75.0,
            "target_date": env.day(30),
        }
        request.update(fields)
        return _violations(
            lambda: env.goals.CreateGoal(
                goals_pb2.CreateGoalRequest(**request), metadata=env.user.md
            )
        )

    assert "kind" in create(kind="flexibility")
    assert "target_date" in create(target_date=env.day(0))  # today is not after today
    assert "target_date" in create(target_date=env.day(-3))
    assert "target_date" in create(target_date=env.day(5 * 366))
    assert "target_date" in create(target_date="next week")
    assert "target_value" in create(target_value=81)  # a weight-loss target above 80 kg
    assert "target_value" in create(target_value=80)  # ... or at it
    assert "target_value" in create(kind="muscle_gain", target_value=79)
    assert "target_value" in create(target_value=10)  # body weight 20-400 kg
    assert "target_value" in create(kind="endurance", target_value=0.5)  # 1-10080 min
    assert "exercise_id" in create(exercise_id=1)  # only strength goals name an exercise
    assert "exercise_id" in create(kind="strength", target_value=100)
    assert "exercise_id" in create(kind="strength", target_value=100, exercise_id=99999)
    assert "exercise_id" in create(kind="strength", target_value=100, exercise_id=14)  # Plank
    assert "target_value" in create(kind="strength", target_value=1001, exercise_id=1)
    env.lift(1, 100, 5)  # Bench Press e1RM 116.7
    assert "target_value" in create(kind="strength", target_value=110, exercise_id=1)
    env.m.client.history.RecordExercise(
        history_pb2.RecordExerciseRequest(exercise_id=81, duration_seconds=3600),
        metadata=env.user.md,
    )
    assert "target_value" in create(kind="endurance", target_value=60)
    # The furthest date allowed, and a valid target: accepted.
    last = date(env.today.year + 5, env.today.month, env.today.day).isoformat()
    ok = env.goals.CreateGoal(
        goals_pb2.CreateGoalRequest(kind="endurance", target_value=61, target_date=last),
        metadata=env.user.md,
    ).goal
    assert ok.target_date == last
    assert [g.id for g in env.list()] == [ok.id]  # nothing refused was stored


def test_weight_unknown(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)  # never onboarded: no weight anywhere
    stub = goals_pb2_grpc.GoalServiceStub(c.channel)
    day = (monolith.clock.now().date() + timedelta(days=30)).isoformat()
    for kind in ("weight_loss", "muscle_gain"):
        err = expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            lambda kind=kind: stub.CreateGoal(  # type: ignore[misc]
                goals_pb2.CreateGoalRequest(kind=kind, target_value=70, target_date=day),
                metadata=user.md,
            ),
        )
        assert error_reason(err) == "WEIGHT_UNKNOWN" and "weight" in str(err.details())
    # Other kinds need no weight; the profile (created for it) follows the goal.
    goal = stub.CreateGoal(
        goals_pb2.CreateGoalRequest(kind="endurance", target_value=150, target_date=day),
        metadata=user.md,
    ).goal
    assert (goal.progress.start_value, goal.unit) == (0, "min/week")
    profile = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md).profile
    assert (profile.fitness_goal, profile.onboarded) == ("endurance", False)


def test_strength_goal(env: Env) -> None:
    env.lift(1, 150, 1, days_ago=60)  # older than 8 weeks: not counted at all
    env.lift(1, 80, 5, days_ago=10)  # e1RM 93.3
    env.lift(1, 85, 5, days_ago=3)  # e1RM 99.2: the best of the last 4 weeks
    env.lift(1, 100, 15, days_ago=2)  # more than 12 reps: no reliable estimate
    env.lift(2, 200, 5, days_ago=2)  # another exercise
    with env.m.app.db.transaction() as s:  # a served WOD's plan is not something done
        s.add(
            HistoryRow(
                user_id=env.user.id,
                exercise_id=1,
                performed_at=env.m.clock.now() - timedelta(days=1),
                day=env.today,
                sets=3,
                reps=5,
                weight_kg=140,
                source="wod",
                created_at=env.m.clock.now(),
            )
        )
    goal = env.create("strength", 110, days=60, exercise_id=1)
    assert (goal.exercise_id, goal.exercise_name, goal.unit) == (1, "Bench Press", "kg")
    assert goal.progress.start_value == pytest.approx(epley_1rm(85, 5))
    assert goal.progress.data_points == 2 and goal.progress.projected_date == ""
    assert "Epley" in goal.progress.basis
    assert env.fitness_goal() == "strength"
    env.lift(1, 90, 5)  # e1RM 105 today: three days with a best, rising
    p = env.get(goal.id).progress
    assert p.current_value == pytest.approx(105.0)
    # Percent is answered to one decimal.
    assert p.percent == pytest.approx(
        (105 - epley_1rm(85, 5)) / (110 - epley_1rm(85, 5)) * 100, abs=0.05
    )
    assert p.data_points == 3 and p.projected_date and p.on_track
    env.advance(0.1)
    env.lift(1, 95, 5)  # e1RM 110.8: reached
    done = env.get(goal.id)
    assert done.status == "ACHIEVED"
    assert done.achieved_at.ToDatetime(tzinfo=UTC) == env.m.clock.now()


def _session(env: Env, minutes: int, days_ago: float, status: str = "ENDED") -> None:
    start = env.m.clock.now() - timedelta(days=days_ago)
    with env.m.app.db.transaction() as s:
        s.add(
            WorkoutSessionRow(
                user_id=env.user.id,
                status=status,
                day=start.date(),
                started_at=start,
                ended_at=start + timedelta(minutes=minutes) if status == "ENDED" else None,
                duration_seconds=minutes * 60 if status == "ENDED" else 0,
            )
        )


def test_endurance_goal(env: Env) -> None:
    _session(env, 40, days_ago=2)
    _session(env, 45, days_ago=9)  # the week before: not in the last 7 days
    env.m.client.history.RecordExercise(
        history_pb2.RecordExerciseRequest(
            exercise_id=81, duration_seconds=1200, performed_at=_ts(env.m.clock.now())
        ),
        metadata=env.user.md,
    )
    goal = env.create("endurance", 150, days=30)
    p = goal.progress
    assert (goal.unit, p.start_value, p.current_value) == ("min/week", 60, 60)
    assert "minutes" in p.basis
    _session(env, 90, days_ago=0, status="ACTIVE")  # still open: not counted
    assert env.get(goal.id).progress.current_value == 60
    _session(env, 60, days_ago=1)
    p = env.get(goal.id).progress
    assert p.current_value == 120 and p.percent == pytest.approx(60 / 90 * 100, abs=0.05)
    # Weeks before the account existed say nothing: one point so far. A user of 4 weeks has
    # four (0, 0, 45 and 120 minutes): the least-squares line (+5.8 min a day, 102 today)
    # reaches 150 in 8.3 days, well before the target date.
    assert p.data_points == 1 and p.projected_date == ""
    with env.m.app.db.transaction() as s:
        s.execute(
            update(UserRow)
            .where(UserRow.id == env.user.id)
            .values(created_at=env.m.clock.now() - timedelta(days=40))
        )
    p = env.get(goal.id).progress
    assert (p.data_points, p.projected_date, p.on_track) == (4, env.day(8), True)
    _session(env, 30, days_ago=0.1)
    done = env.get(goal.id)
    assert (done.status, done.progress.percent) == ("ACHIEVED", 100)
    assert done.achieved_at.ToDatetime(tzinfo=UTC) == env.m.clock.now()


def test_expiry_and_the_primary_goal(env: Env) -> None:
    endurance = env.create("endurance", 150, days=30)
    loss = env.create("weight_loss", 70, days=5)
    assert env.fitness_goal() == "weight_loss"
    env.advance(5)
    assert env.get(loss.id).status == "ACTIVE"  # the target date is still today
    env.advance(1)
    # A refused request still commits what settling found: the goal expired.
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: env.create("weight_loss", 90, days=10),
    )
    assert env.status_in_db(loss.id) == "EXPIRED"
    assert env.fitness_goal() == "endurance"
    listed = env.list()
    assert [(g.id, g.status, g.primary) for g in listed] == [
        (loss.id, "EXPIRED", False),
        (endurance.id, "ACTIVE", True),
    ]
    assert listed[0].progress.on_track is False and not listed[0].HasField("achieved_at")
    assert [g.id for g in env.list("EXPIRED")] == [loss.id]
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: env.goals.UpdateGoal(
            goals_pb2.UpdateGoalRequest(
                goal_id=loss.id, target_date=wrappers_pb2.StringValue(value=env.day(30))
            ),
            metadata=env.user.md,
        ),
    )
    assert error_reason(err) == "GOAL_NOT_ACTIVE"


def test_reached_after_the_target_date_is_expired(env: Env) -> None:
    goal = env.create("weight_loss", 78, days=2)
    env.advance(3)
    env.weigh(77)  # nobody read the goal since: the date passed first
    assert env.get(goal.id).status == "EXPIRED"


def test_update_goal(env: Env) -> None:
    goal = env.create("weight_loss", 75, days=30)

    def update(**fields: Any) -> Any:
        return env.goals.UpdateGoal(
            goals_pb2.UpdateGoalRequest(goal_id=goal.id, **fields), metadata=env.user.md
        ).goal

    changed = update(target_value=wrappers_pb2.DoubleValue(value=72))
    assert (changed.target_value, changed.target_date) == (72, env.day(30))
    changed = update(target_date=wrappers_pb2.StringValue(value=env.day(90)))
    assert (changed.target_value, changed.target_date) == (72, env.day(90))
    assert changed.updated_at.ToDatetime(tzinfo=UTC) == env.m.clock.now()
    for fields, field in (
        ({"target_value": wrappers_pb2.DoubleValue(value=85)}, "target_value"),
        ({"target_value": wrappers_pb2.DoubleValue(value=15)}, "target_value"),
        ({"target_date": wrappers_pb2.StringValue(value=env.day(-1))}, "target_date"),
        ({"target_date": wrappers_pb2.StringValue(value=env.day(6 * 365))}, "target_date"),
    ):
        assert field in _violations(lambda fields=fields: update(**fields))  # type: ignore[misc]
    assert (env.get(goal.id).target_value, env.get(goal.id).target_date) == (72, env.day(90))
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: env.goals.UpdateGoal(
            goals_pb2.UpdateGoalRequest(
                goal_id=goal.id + 1000, target_value=wrappers_pb2.DoubleValue(value=70)
            ),
            metadata=env.user.md,
        ),
    )


def test_abandon_goal(env: Env) -> None:
    strength = env.create("strength", 60, exercise_id=16)
    loss = env.create("weight_loss", 75)
    assert env.fitness_goal() == "weight_loss"

    def abandon(goal_id: int) -> Any:
        return env.goals.AbandonGoal(
            goals_pb2.AbandonGoalRequest(goal_id=goal_id), metadata=env.user.md
        ).goal

    gone = abandon(loss.id)
    assert (gone.status, gone.primary) == ("ABANDONED", False)
    assert env.fitness_goal() == "strength"  # the next newest active goal
    assert env.get(strength.id).primary is True
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: abandon(loss.id))
    assert error_reason(err) == "GOAL_NOT_ACTIVE"
    abandon(strength.id)
    assert env.fitness_goal() == "strength"  # none active: unchanged
    err = expect_error(grpc.StatusCode.NOT_FOUND, lambda: abandon(loss.id + 1000))
    assert error_reason(err) == "GOAL_NOT_FOUND"


def test_list_and_get(env: Env) -> None:
    a = env.create("endurance", 100)
    b = env.create("weight_loss", 70)
    env.goals.AbandonGoal(goals_pb2.AbandonGoalRequest(goal_id=a.id), metadata=env.user.md)
    assert [g.id for g in env.list()] == [b.id, a.id]  # newest first
    assert [g.id for g in env.list("ABANDONED")] == [a.id]
    assert [g.id for g in env.list("ACTIVE")] == [b.id]
    assert env.list("ACHIEVED") == []
    assert "status" in _violations(lambda: env.list("DONE"))
    err = expect_error(grpc.StatusCode.NOT_FOUND, lambda: env.get(b.id + 1000))
    assert error_reason(err) == "GOAL_NOT_FOUND"
    assert env.get(b.id) == env.list("ACTIVE")[0]


def test_at_most_20_active_goals(env: Env) -> None:
    ids = [env.create("endurance", 100 + n).id for n in range(20)]
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: env.create("endurance", 200))
    assert error_reason(err) == "TOO_MANY_GOALS"
    env.goals.AbandonGoal(goals_pb2.AbandonGoalRequest(goal_id=ids[0]), metadata=env.user.md)
    env.create("endurance", 200)


def test_target_date_is_after_the_users_today(env: Env) -> None:
    env.m.clock.at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 01:00 on the 21st in Auckland
    kiwi = register(env.m.client)
    onboard(env.m.client, kiwi)
    with env.m.app.db.transaction() as s:
        s.execute(
            update(ProfileRow)
            .where(ProfileRow.user_id == kiwi.id)
            .values(time_zone="Pacific/Auckland")
        )
    request = goals_pb2.CreateGoalRequest(
        kind="weight_loss", target_value=75, target_date="2026-11-21"
    )
    assert "target_date" in _violations(lambda: env.goals.CreateGoal(request, metadata=kiwi.md))
    assert env.goals.CreateGoal(request, metadata=env.user.md).goal.target_date == "2026-11-21"


def test_concurrent_creates_respect_the_limit(env: Env) -> None:
    """The profile lock makes one user's goal writes take turns: two creates racing for the
    last free place cannot both get it."""
    for n in range(19):
        env.create("endurance", 100 + n)

    def attempt(target: float) -> str:
        try:
            env.create("endurance", target)
        except grpc.RpcError as err:
            return error_reason(err)  # type: ignore[arg-type]
        return "OK"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(attempt, [200, 201, 202, 203]))
    assert outcomes == ["OK", "TOO_MANY_GOALS", "TOO_MANY_GOALS", "TOO_MANY_GOALS"]
    assert len(env.list("ACTIVE")) == 20


def test_training_settles_goals_in_its_own_transaction(env: Env) -> None:
    """A logged session set reaching a strength target, and an ended session reaching an
    endurance target, achieve their goals at once (no read needed)."""
    training = training_pb2_grpc.TrainingServiceStub(env.m.client.channel)
    env.lift(1, 60, 5, days_ago=1)  # bench press: e1RM 70 kg
    strength = env.create("strength", 80, exercise_id=1)
    endurance = env.create("endurance", 30)
    session = training.StartSession(
        training_pb2.StartSessionRequest(), metadata=env.user.md
    ).session
    training.LogSet(
        training_pb2.LogSetRequest(
            session_id=session.id, exercise_id=1, reps=3, weight=75, client_set_id="heavy-1"
        ),
        metadata=env.user.md,
    )  # e1RM 82.5 kg
    assert env.status_in_db(strength.id) == "ACHIEVED"
    assert env.status_in_db(endurance.id) == "ACTIVE"
    env.advance(40 / (24 * 60))  # 40 minutes later
    training.EndSession(training_pb2.EndSessionRequest(session_id=session.id), metadata=env.user.md)
    assert env.status_in_db(endurance.id) == "ACHIEVED"
