"""Broken object level authorisation: another user can neither read nor change any per-user
resource (profile, preferences, body metrics, history entries, history days, served WODs, the
WOD), and ids of others answer NOT_FOUND (404), exactly like ids that do not exist, never
PERMISSION_DENIED (403): nothing tells Bob that Alice's entry 17 exists.

Every RPC whose access option is USER is a per-user RPC; `test_every_user_rpc_has_a_case` fails
when one is added without a case here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import ModuleType

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.events.v1 import events_pb2, events_pb2_grpc
from fitco.goals.v1 import goals_pb2, goals_pb2_grpc
from fitco.groups.v1 import groups_pb2
from fitco.history.v1 import history_pb2
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from fitco.nutrition.v1 import nutrition_pb2, nutrition_pb2_grpc
from fitco.system.v1 import system_pb2
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2

from fitcore.access import Access, access_of
from fitcore.eventbus import events_subject
from realtime.migrations import MIGRATIONS as REALTIME_MIGRATIONS
from tests.conftest import Client, Databases, RunningMonolith, UserSession, onboard, register
from tests.natsfix import NatsServer
from tests.rpc import error_reason, expect_error
from tests.service.group_members import Member, running_groups
from tests.service.inproc import RunningCoach, running_coach
from tests.service.premium import (
    billing_database,  # noqa: F401 - the premium_billing_url fixture
    running_billing,
)
from tests.service.realtime_fixtures import nats_publisher, realtime_env, running_realtime

# Each per-user RPC and the test(s) below that show another user cannot reach its data.
CASES = {
    "fitco.user.v1.UserService/GetProfile": "test_profile",
    "fitco.user.v1.UserService/CompleteOnboarding": "test_profile",
    "fitco.user.v1.UserService/UpdateProfile": "test_profile",
    "fitco.legacy.v1.LegacyService/GetProfile": "test_profile",
    "fitco.legacy.v1.LegacyService/CompleteOnboarding": "test_profile",
    "fitco.user.v1.UserService/GetPreferences": "test_preferences",
    "fitco.user.v1.UserService/UpdatePreferences": "test_preferences",
    "fitco.user.v1.UserService/RecordBodyMetric": "test_body_metrics",
    "fitco.user.v1.UserService/ListBodyMetrics": "test_body_metrics",
    "fitco.user.v1.UserService/ChangePassword": "test_account",
    "fitco.user.v1.UserService/Logout": "test_account",
    "fitco.history.v1.HistoryService/RecordExercise": "test_history_entries",
    "fitco.history.v1.HistoryService/ListHistory": "test_history_entries",
    "fitco.history.v1.HistoryService/DeleteHistoryEntry": "test_history_entries",
    "fitco.history.v1.HistoryService/ListExercisesOnDay": "test_history_days",
    "fitco.history.v1.HistoryService/GetServedWod": "test_served_wods_and_the_wod",
    "fitco.coach.v1.CoachService/GetWod": "test_served_wods_and_the_wod",
    "fitco.coach.v1.CoachService/RegenerateWod": "test_regenerating_the_wod",
    "fitco.training.v1.TrainingService/StartSession": "test_workout_sessions",
    "fitco.training.v1.TrainingService/LogSet": "test_workout_sessions",
    "fitco.training.v1.TrainingService/EndSession": "test_workout_sessions",
    "fitco.training.v1.TrainingService/ListSessions": "test_workout_sessions",
    "fitco.training.v1.TrainingService/GetSession": "test_workout_sessions",
    "fitco.training.v1.TrainingService/GetStats": "test_workout_sessions",
    "fitco.goals.v1.GoalService/CreateGoal": "test_goals",
    "fitco.goals.v1.GoalService/ListGoals": "test_goals",
    "fitco.goals.v1.GoalService/GetGoal": "test_goals",
    "fitco.goals.v1.GoalService/UpdateGoal": "test_goals",
    "fitco.goals.v1.GoalService/AbandonGoal": "test_goals",
    "fitco.nutrition.v1.NutritionService/GetNutrition": "test_nutrition",
    "fitco.events.v1.EventService/WatchEvents": "test_events",
    "fitco.groups.v1.GroupService/CreateGroup": "test_groups",
    "fitco.groups.v1.GroupService/ListGroups": "test_groups",
    "fitco.groups.v1.GroupService/GetGroup": "test_groups",
    "fitco.groups.v1.GroupService/JoinGroup": "test_groups",
    "fitco.groups.v1.GroupService/LeaveGroup": "test_groups",
    "fitco.groups.v1.GroupService/ListGroupMessages": "test_groups",
    "fitco.groups.v1.GroupService/Connect": "test_groups",
}
MODULES: tuple[ModuleType, ...] = (
    user_pb2,
    history_pb2,
    coach_pb2,
    catalog_pb2,
    legacy_pb2,
    system_pb2,
    goals_pb2,
    training_pb2,
    nutrition_pb2,
    events_pb2,
    groups_pb2,
)


def test_every_user_rpc_has_a_case() -> None:
    user_rpcs = {
        f"{service.full_name}/{method.name}"
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if access_of(method.GetOptions()) is Access.USER
    }
    assert user_rpcs == set(CASES), (
        "a per-user RPC without a BOLA case (or a case for one that is gone): "
        f"{sorted(user_rpcs ^ set(CASES))}"
    )


@dataclass
class Pair:
    c: Client
    alice: UserSession
    bob: UserSession


@pytest.fixture
def pair(monolith: RunningMonolith) -> Pair:
    c = monolith.client
    alice, bob = register(c, "Alice"), register(c, "Bob")
    onboard(c, alice, goal="muscle_gain")
    onboard(c, bob, goal="endurance")
    return Pair(c, alice, bob)


def _ts(monolith: RunningMonolith, delta: timedelta) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(monolith.clock.now() + delta)
    return out


def test_profile(pair: Pair) -> None:
    c, alice, bob = pair.c, pair.alice, pair.bob
    c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(weight=wrappers_pb2.DoubleValue(value=70)),
        metadata=alice.md,
    )
    before = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=alice.md).profile
    mine = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=bob.md).profile
    assert (mine.email, mine.name, mine.fitness_goal) == (bob.email, "Bob", "endurance")
    c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            name=wrappers_pb2.StringValue(value="Mallory"),
            weight=wrappers_pb2.DoubleValue(value=120),
        ),
        metadata=bob.md,
    )
    c.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(weight=121, height=199, fitness_goal="strength"),
        metadata=bob.md,
    )
    # The legacy paths (/profile, /profile/onboarding) too.
    legacy = legacy_pb2_grpc.LegacyServiceStub(c.channel)
    legacy.CompleteOnboarding(
        legacy_pb2.CompleteOnboardingRequest(weight=122, height=198, fitness_goal="strength"),
        metadata=bob.md,
    )
    seen = json.loads(legacy.GetProfile(legacy_pb2.GetProfileRequest(), metadata=bob.md).body.data)
    assert (seen["email"], seen["weight"]) == (bob.email, 122)
    assert c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=alice.md).profile == before


def test_preferences(pair: Pair) -> None:
    c, alice, bob = pair.c, pair.alice, pair.bob
    c.users.UpdatePreferences(
        user_pb2.UpdatePreferencesRequest(
            preferences=user_pb2.Preferences(equipment=["dumbbell"], training_days_per_week=4)
        ),
        metadata=alice.md,
    )
    theirs = c.users.GetPreferences(user_pb2.GetPreferencesRequest(), metadata=bob.md)
    assert list(theirs.preferences.equipment) == []  # Bob's defaults, not Alice's
    c.users.UpdatePreferences(
        user_pb2.UpdatePreferencesRequest(
            preferences=user_pb2.Preferences(equipment=["barbell"], training_days_per_week=7)
        ),
        metadata=bob.md,
    )
    alice_prefs = c.users.GetPreferences(
        user_pb2.GetPreferencesRequest(), metadata=alice.md
    ).preferences
    assert (list(alice_prefs.equipment), alice_prefs.training_days_per_week) == (["dumbbell"], 4)


def test_body_metrics(pair: Pair) -> None:
    c, alice, bob = pair.c, pair.alice, pair.bob
    mine = c.users.RecordBodyMetric(
        user_pb2.RecordBodyMetricRequest(weight_kg=71.5, note="alice"), metadata=alice.md
    ).metric
    c.users.RecordBodyMetric(
        user_pb2.RecordBodyMetricRequest(weight_kg=99, note="bob"), metadata=bob.md
    )
    theirs = c.users.ListBodyMetrics(user_pb2.ListBodyMetricsRequest(), metadata=bob.md).metrics
    assert mine.id not in {m.id for m in theirs}
    assert {m.note for m in theirs} <= {"", "bob"}
    alice_metrics = c.users.ListBodyMetrics(
        user_pb2.ListBodyMetricsRequest(), metadata=alice.md
    ).metrics
    assert {m.note for m in alice_metrics} <= {"", "alice"} and mine.id in {
        m.id for m in alice_metrics
    }
    assert (
        c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=alice.md).profile.weight == 71.5
    )


def _not_found_message(err: grpc.Call, entry_id: int) -> str:
    return re.sub(rf"\b{entry_id}\b", "<id>", str(err.details()))


def test_history_entries(monolith: RunningMonolith, pair: Pair) -> None:
    c, alice, bob = pair.c, pair.alice, pair.bob
    entry = c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(exercise_id=1, sets=3, reps=8, weight_kg=50),
        metadata=alice.md,
    ).entry
    c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(exercise_id=2, sets=3, reps=20), metadata=bob.md
    )
    listed = c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=bob.md).entries
    assert entry.id not in {e.id for e in listed} and [e.exercise_id for e in listed] == [2]
    # Alice's entry id, deleted by Bob: NOT_FOUND, worded exactly like an id nobody has.
    theirs = expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.history.DeleteHistoryEntry(
            history_pb2.DeleteHistoryEntryRequest(entry_id=entry.id), metadata=bob.md
        ),
    )
    missing_id = entry.id + 1_000_000
    nobodys = expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.history.DeleteHistoryEntry(
            history_pb2.DeleteHistoryEntryRequest(entry_id=missing_id), metadata=bob.md
        ),
    )
    assert _not_found_message(theirs, entry.id) == _not_found_message(nobodys, missing_id)
    assert error_reason(theirs) == error_reason(nobodys)
    alice_entries = c.history.ListHistory(
        history_pb2.ListHistoryRequest(), metadata=alice.md
    ).entries
    assert [e.id for e in alice_entries] == [entry.id]  # still there


def test_history_days(monolith: RunningMonolith, pair: Pair) -> None:
    c, alice, bob = pair.c, pair.alice, pair.bob
    yesterday = c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(
            exercise_id=16, sets=5, reps=5, performed_at=_ts(monolith, -timedelta(days=1))
        ),
        metadata=alice.md,
    ).entry.day
    day = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=yesterday), metadata=bob.md
    )
    assert list(day.exercise_ids) == [] and list(day.entries) == []
    alice_day = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=yesterday), metadata=alice.md
    )
    assert list(alice_day.exercise_ids) == [16]


@pytest.fixture
def coach(monolith: RunningMonolith) -> Iterator[RunningCoach]:
    with running_coach(monolith) as running:
        yield running


def test_served_wods_and_the_wod(
    monolith: RunningMonolith, pair: Pair, coach: RunningCoach
) -> None:
    """A WOD is keyed by (user, day) everywhere, the coach's caches included: Bob never gets
    Alice's, by either implementation, and cannot read hers by day."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    alice_wod = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=alice.md)  # legacy
    assert alice_wod.implementation == "legacy"
    err = expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=alice_wod.day), metadata=bob.md
        ),
    )
    assert error_reason(err) == "WOD_NOT_FOUND"
    # Through the coach (whose answer cache Alice's request could have filled): Bob's own.
    coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=alice.md)
    bob_wod = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=bob.md)
    assert bob_wod.implementation == "coach" and bob_wod.fitness_goal == "endurance"
    bob_served = c.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=bob_wod.day), metadata=bob.md
    ).wod
    assert [i.exercise_id for i in bob_served.items] == [e.id for e in bob_wod.exercises]
    alice_served = c.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=alice_wod.day), metadata=alice.md
    ).wod
    assert alice_served.id != bob_served.id
    assert [i.exercise_id for i in alice_served.items] == [e.id for e in alice_wod.exercises]
    assert [e.id for e in c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=bob.md).exercises] == [
        e.id for e in bob_wod.exercises
    ]


def test_regenerating_the_wod(
    monolith: RunningMonolith, pair: Pair, premium_billing_url: str
) -> None:
    """RegenerateWod replaces the caller's own WOD only (keyed by user everywhere, the coach's
    caches included): Bob's regeneration leaves Alice's WOD as it was served, and her
    allowance untouched."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    with (
        running_billing(monolith, premium_billing_url) as billing,
        running_coach(monolith, FITCO_BILLING_TARGET=billing.target) as coach,
    ):
        billing.upgrade(alice)
        billing.upgrade(bob)
        alice_wod = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=alice.md)
        coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=bob.md)
        new = coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=bob.md)
        assert new.regenerations_left == 2 and new.wod.fitness_goal == "endurance"
        again = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=alice.md)
        assert [e.id for e in again.exercises] == [e.id for e in alice_wod.exercises]
        alice_served = c.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=alice_wod.day), metadata=alice.md
        ).wod
        assert alice_served.regenerations == 0
        assert [i.exercise_id for i in alice_served.items] == [e.id for e in alice_wod.exercises]
        bob_served = c.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=new.wod.day), metadata=bob.md
        ).wod
        assert bob_served.regenerations == 1 and bob_served.id != alice_served.id
        assert [i.exercise_id for i in bob_served.items] == [e.id for e in new.wod.exercises]
        mine = coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=alice.md)
        assert mine.regenerations_left == 2  # Bob's regeneration was not counted as hers


def test_nutrition(monolith: RunningMonolith, pair: Pair, coach: RunningCoach) -> None:
    """The coach computes each plan from the caller's own profile and metrics (read with the
    caller's token): Bob never gets a plan from Alice's data, nor Alice from his."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    nutrition = nutrition_pb2_grpc.NutritionServiceStub(coach.channel)
    year = monolith.clock.now().year
    c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            birth_year=wrappers_pb2.Int32Value(value=year - 30),
            sex=wrappers_pb2.StringValue(value="male"),
        ),
        metadata=alice.md,
    )
    c.users.RecordBodyMetric(
        user_pb2.RecordBodyMetricRequest(weight_kg=80, body_fat_percent=20), metadata=alice.md
    )
    alice_plan = nutrition.GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=alice.md)
    assert (alice_plan.bmr_formula, alice_plan.goal) == ("katch_mcardle", "muscle_gain")
    # Bob's profile lacks what Alice's has: his own refusal, never her numbers.
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: nutrition.GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=bob.md),
    )
    assert error_reason(err) == "PROFILE_INCOMPLETE" and "birth_year, sex" in str(err.details())
    c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            birth_year=wrappers_pb2.Int32Value(value=year - 50),
            sex=wrappers_pb2.StringValue(value="female"),
        ),
        metadata=bob.md,
    )
    c.users.RecordBodyMetric(user_pb2.RecordBodyMetricRequest(weight_kg=99), metadata=bob.md)
    bob_plan = nutrition.GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=bob.md)
    assert (bob_plan.bmr_formula, bob_plan.goal, bob_plan.age) == (
        "mifflin_st_jeor",
        "endurance",
        50,
    )
    assert bob_plan.weight_kg == 99
    again = nutrition.GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=alice.md)
    assert again == alice_plan


def test_account(pair: Pair) -> None:
    """Changing a password or logging out acts on the caller's account only."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    c.users.ChangePassword(
        user_pb2.ChangePasswordRequest(
            current_password=bob.password, new_password="bob's new passphrase"
        ),
        metadata=bob.md,
    )
    fresh = c.users.Login(user_pb2.LoginRequest(email=bob.email, password="bob's new passphrase"))
    c.users.Logout(
        user_pb2.LogoutRequest(), metadata=(("authorization", f"Bearer {fresh.access_token}"),)
    )
    assert c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=alice.md).profile.name == (
        "Alice"
    )
    c.users.Login(user_pb2.LoginRequest(email=alice.email, password=alice.password))


def test_goals(monolith: RunningMonolith, pair: Pair) -> None:
    """Bob can neither read, change nor abandon Alice's goal (NOT_FOUND, worded like an id
    nobody has), does not see it listed, and his goals move only his profile's fitness_goal."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    goals = goals_pb2_grpc.GoalServiceStub(c.channel)
    day = (monolith.clock.now().date() + timedelta(days=30)).isoformat()
    mine = goals.CreateGoal(
        goals_pb2.CreateGoalRequest(kind="weight_loss", target_value=75, target_date=day),
        metadata=alice.md,
    ).goal
    theirs = goals.CreateGoal(
        goals_pb2.CreateGoalRequest(
            kind="strength", target_value=100, target_date=day, exercise_id=1
        ),
        metadata=bob.md,
    ).goal
    missing = mine.id + 1_000_000

    def bob_tries(what: str, goal_id: int) -> grpc.Call:
        def call() -> object:
            if what == "get":
                return goals.GetGoal(goals_pb2.GetGoalRequest(goal_id=goal_id), metadata=bob.md)
            if what == "update":
                return goals.UpdateGoal(
                    goals_pb2.UpdateGoalRequest(
                        goal_id=goal_id, target_value=wrappers_pb2.DoubleValue(value=60)
                    ),
                    metadata=bob.md,
                )
            return goals.AbandonGoal(goals_pb2.AbandonGoalRequest(goal_id=goal_id), metadata=bob.md)

        return expect_error(grpc.StatusCode.NOT_FOUND, call)

    for what in ("get", "update", "abandon"):
        alices, nobodys = bob_tries(what, mine.id), bob_tries(what, missing)
        assert _not_found_message(alices, mine.id) == _not_found_message(nobodys, missing)
        assert error_reason(alices) == error_reason(nobodys) == "GOAL_NOT_FOUND"
    listed = goals.ListGoals(goals_pb2.ListGoalsRequest(), metadata=bob.md).goals
    assert [g.id for g in listed] == [theirs.id]
    still = goals.GetGoal(goals_pb2.GetGoalRequest(goal_id=mine.id), metadata=alice.md).goal
    assert (still.status, still.target_value, still.primary) == ("ACTIVE", 75, True)
    profile = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=alice.md).profile
    assert profile.fitness_goal == "weight_loss"
    bob_profile = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=bob.md).profile
    assert bob_profile.fitness_goal == "strength"


def test_workout_sessions(pair: Pair) -> None:
    """Alice's session and sets: Bob's ids for them answer NOT_FOUND, worded like ids nobody
    has; his lists, stats and his own active session know nothing of hers."""
    c, alice, bob = pair.c, pair.alice, pair.bob
    training = training_pb2_grpc.TrainingServiceStub(c.channel)
    session = training.StartSession(training_pb2.StartSessionRequest(), metadata=alice.md).session
    logged = training.LogSet(
        training_pb2.LogSetRequest(
            session_id=session.id, exercise_id=1, reps=5, weight=90, client_set_id="a-1"
        ),
        metadata=alice.md,
    ).set
    missing = session.id + 1_000_000
    calls = {
        "GetSession": lambda sid: training.GetSession(
            training_pb2.GetSessionRequest(session_id=sid), metadata=bob.md
        ),
        "LogSet": lambda sid: training.LogSet(
            training_pb2.LogSetRequest(
                session_id=sid, exercise_id=1, reps=5, weight=90, client_set_id="a-1"
            ),
            metadata=bob.md,
        ),
        "EndSession": lambda sid: training.EndSession(
            training_pb2.EndSessionRequest(session_id=sid), metadata=bob.md
        ),
    }
    for name, call in calls.items():
        theirs = expect_error(grpc.StatusCode.NOT_FOUND, partial(call, session.id))
        nobodys = expect_error(grpc.StatusCode.NOT_FOUND, partial(call, missing))
        assert _not_found_message(theirs, session.id) == _not_found_message(nobodys, missing), name
        assert error_reason(theirs) == error_reason(nobodys), name
    # Bob's own session starts although Alice's is active; his list and stats are his.
    bobs = training.StartSession(training_pb2.StartSessionRequest(), metadata=bob.md).session
    listed = training.ListSessions(training_pb2.ListSessionsRequest(), metadata=bob.md).sessions
    assert [s.id for s in listed] == [bobs.id]
    stats = training.GetStats(training_pb2.GetStatsRequest(), metadata=bob.md)
    assert (stats.streak_days, list(stats.personal_records)) == (0, [])
    assert not stats.muscle_group_sets
    # Alice's session is untouched: still active, with her one set.
    mine = training.GetSession(
        training_pb2.GetSessionRequest(session_id=session.id), metadata=alice.md
    ).session
    assert (mine.status, [s.id for s in mine.sets]) == ("ACTIVE", [logged.id])
    alice_stats = training.GetStats(training_pb2.GetStatsRequest(), metadata=alice.md)
    assert [r.exercise_id for r in alice_stats.personal_records] == [1]


def test_events(monolith: RunningMonolith, pair: Pair, nats_server: NatsServer) -> None:
    """Bob's event stream never carries Alice's events: not live, and not when he resumes
    from the id of one of hers (he gets his own events after it)."""
    alice, bob = pair.alice, pair.bob
    env = realtime_env(
        monolith.key_dir,
        nats_server.url,
        monolith_target=monolith.target,
        REALTIME_HEARTBEAT_SECONDS="1",
    )
    with (
        running_realtime(env, features=("events",)) as realtime,
        nats_publisher(nats_server.url) as bus,
    ):
        events = events_pb2_grpc.EventServiceStub(realtime.channel)

        def first_event(after: str) -> events_pb2.WatchEventsResponse:
            request = events_pb2.WatchEventsRequest(after_event_id=after)
            call = events.WatchEvents(request, metadata=bob.md, timeout=10)
            try:
                return next(e for e in call if e.type != "HEARTBEAT")
            finally:
                call.cancel()

        def publish(user: UserSession, days: int) -> int:
            event = events_pb2.WatchEventsResponse(
                type="STREAK", streak=events_pb2.Streak(days=days)
            )
            return bus.publish(events_subject(user.id), event.SerializeToString())

        live = events.WatchEvents(events_pb2.WatchEventsRequest(), metadata=bob.md, timeout=10)
        live.initial_metadata()  # watching
        hers = publish(alice, 1)
        his = publish(bob, 2)
        try:
            got = next(e for e in live if e.type != "HEARTBEAT")
        finally:
            live.cancel()
        assert (got.id, got.streak.days) == (str(his), 2)
        resumed = first_event(str(hers - 1))
        assert (resumed.id, resumed.streak.days) == (str(his), 2)


def test_groups(
    monolith: RunningMonolith, pair: Pair, nats_server: NatsServer, databases: Databases
) -> None:
    """Alice's group does not exist for Bob: every group RPC answers NOT_FOUND for it, worded
    like a group nobody has, and Connect refuses it; his list and his own group show nothing
    of hers. Only her invitation code lets him in."""
    alice, bob = pair.alice, pair.bob
    url = databases.new()
    REALTIME_MIGRATIONS.upgrade(url)
    with running_groups(monolith, monolith.key_dir, nats_server.url, url) as svc:
        hers = svc.create(alice, "Alice's")
        svc.create(alice, "Alice's other")
        alice_live = svc.connect(alice, hers.id)
        alice_live.welcome()
        alice_live.chat("private")
        assert alice_live.message().chat.text == "private"
        missing = hers.id + 1_000_000
        calls = {
            "GetGroup": lambda gid: svc.stub.GetGroup(
                groups_pb2.GetGroupRequest(group_id=gid), metadata=bob.md
            ),
            "ListGroupMessages": lambda gid: svc.messages(bob, gid),
            "LeaveGroup": lambda gid: svc.stub.LeaveGroup(
                groups_pb2.LeaveGroupRequest(group_id=gid), metadata=bob.md
            ),
        }
        for name, call in calls.items():
            theirs = expect_error(grpc.StatusCode.NOT_FOUND, partial(call, hers.id))
            nobodys = expect_error(grpc.StatusCode.NOT_FOUND, partial(call, missing))
            assert _not_found_message(theirs, hers.id) == _not_found_message(nobodys, missing)
            assert error_reason(theirs) == error_reason(nobodys) == "GROUP_NOT_FOUND", name
        for group_id in (hers.id, missing):
            bob_live = Member(svc.rt.target, bob, group_id)
            refused = bob_live.ended()
            bob_live.close()
            assert (refused.code, refused.reason) == (grpc.StatusCode.NOT_FOUND, "GROUP_NOT_FOUND")
        bobs = svc.create(bob, "Bob's")
        assert [
            g.id
            for g in svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=bob.md).groups
        ] == [bobs.id]
        assert svc.messages(bob, bobs.id) == []
        expect_error(grpc.StatusCode.NOT_FOUND, lambda: svc.join(bob, "WRONG-CODE-0000"))
        # With the code, he is a member of that one group (and sees its history).
        assert svc.join(bob, hers.invitation_code).id == hers.id
        assert "private" in [m.chat.text for m in svc.messages(bob, hers.id)]
        assert len(svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=bob.md).groups) == 2
        alice_live.close()
