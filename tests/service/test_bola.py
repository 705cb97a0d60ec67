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
from types import ModuleType

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from fitco.system.v1 import system_pb2
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2

from fitcore.access import Access, access_of
from tests.conftest import Client, RunningMonolith, UserSession, onboard, register
from tests.rpc import error_reason, expect_error
from tests.service.inproc import RunningCoach, running_coach

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
}
MODULES: tuple[ModuleType, ...] = (
    user_pb2,
    history_pb2,
    coach_pb2,
    catalog_pb2,
    legacy_pb2,
    system_pb2,
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
