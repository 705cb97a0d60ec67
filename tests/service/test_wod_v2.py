"""WOD v2 through both implementations (the monolith's legacy CoachService and the coach):
answers legacy clients can render, kind/notes/time zone, the user's day, and loads that
progress from what was logged."""

from __future__ import annotations

from datetime import timedelta

from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.wrappers_pb2 import StringValue

from tests.conftest import Client, RunningMonolith, UserSession, onboard, register
from tests.service.inproc import running_coach

BENCH = 1
# Every muscle group but the chest, front delts and triceps (1, 2, 3, 7): with a barbell and a
# bench, only Bench Press, Incline and Close-Grip Bench Press and Dips remain, so every WOD
# holds the Bench Press.
CHEST_ONLY_AVOID = [g for g in range(1, 21) if g not in (1, 2, 3, 7)]


def _timed_and_reps_are_renderable(wod: coach_pb2.GetWodResponse) -> bool:
    """Checks the legacy rule on every exercise; True when the WOD holds a timed exercise."""
    timed = False
    for e in wod.exercises:
        assert e.suggested_reps > 0, e
        if e.suggested_duration_seconds:
            timed = True
            assert e.suggested_reps == 1, e
    return timed


def _chest_only(c: Client, user: UserSession) -> None:
    c.users.UpdatePreferences(
        user_pb2.UpdatePreferencesRequest(
            preferences=user_pb2.Preferences(
                equipment=["barbell", "bench"],
                training_days_per_week=3,
                session_minutes=90,
                avoid_muscle_group_ids=CHEST_ONLY_AVOID,
            )
        ),
        metadata=user.md,
    )


def test_legacy_answers_carry_reps_for_every_exercise(monolith: RunningMonolith) -> None:
    c = monolith.client
    for _ in range(30):  # random WODs: until one holds a hold or a cardio bout
        user = register(c)
        onboard(c, user)
        wod = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert wod.implementation == "legacy"
        assert (wod.kind, wod.time_zone) == ("training", "UTC")
        if _timed_and_reps_are_renderable(wod):
            return
    raise AssertionError("no legacy WOD with a timed exercise in 30 tries")


def test_coach_wod_has_kind_notes_zone_and_renderable_reps(monolith: RunningMonolith) -> None:
    c = monolith.client
    with running_coach(monolith) as coach:
        timed = False
        for _ in range(10):
            user = register(c)
            onboard(c, user, goal="weight_loss")  # circuits ending with cardio
            wod = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
            assert wod.implementation == "coach" and wod.kind == "training"
            assert wod.notes == ["Training day 1 of 3 this week."]
            assert wod.time_zone == "UTC"
            timed = _timed_and_reps_are_renderable(wod) or timed
            for e in wod.exercises:
                if e.suggested_weight:
                    assert 0 < e.percent_1rm <= 1
                    assert e.estimated_1rm_kg >= e.suggested_weight
            # What was recorded carries the kind and notes, for every implementation to serve.
            served = c.history.GetServedWod(
                history_pb2.GetServedWodRequest(day=wod.day), metadata=user.md
            ).wod
            assert (served.kind, list(served.notes)) == ("training", list(wod.notes))
            # The legacy implementation serves the same WOD, kind and notes included.
            legacy = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
            assert (legacy.kind, list(legacy.notes)) == (wod.kind, list(wod.notes))
            assert [e.id for e in legacy.exercises] == [e.id for e in wod.exercises]
        assert timed


def test_coach_uses_the_users_day(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    # 09:30 UTC on 2026-11-20 is 22:30 on the 19th in Pago Pago (UTC-11).
    c.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(
            weight=80, height=180, fitness_goal="muscle_gain", time_zone="Pacific/Pago_Pago"
        ),
        metadata=user.md,
    )
    with running_coach(monolith) as coach:
        wod = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert (wod.day, wod.time_zone) == ("2026-11-19", "Pacific/Pago_Pago")
        again = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert again == wod  # the hot path keys on the user's day too


def test_coach_follows_a_time_zone_change_it_had_in_memory(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    onboard(c, user)
    with running_coach(monolith, FITCO_COACH_ANSWER_TTL_SECONDS="0") as coach:
        utc = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert (utc.day, utc.time_zone) == ("2026-11-20", "UTC")
        c.users.UpdateProfile(
            user_pb2.UpdateProfileRequest(time_zone=StringValue(value="Pacific/Pago_Pago")),
            metadata=user.md,
        )
        # The coach still has UTC in memory; the profile it reads says otherwise: its day.
        moved = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert (moved.day, moved.time_zone) == ("2026-11-19", "Pacific/Pago_Pago")


def test_coach_progresses_the_load_from_logged_sets(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    onboard(c, user)
    _chest_only(c, user)
    with running_coach(monolith) as coach:
        first = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        assert {e.id for e in first.exercises} <= {1, 24, 60, 61}  # the chest-only case holds
        bench = next(e for e in first.exercises if e.id == BENCH)
        assert bench.suggested_weight > 0 and bench.suggested_reps > 0
        performed = timestamp_pb2.Timestamp()
        performed.FromDatetime(monolith.clock.now())
        c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=BENCH,
                sets=bench.sets,
                reps=bench.suggested_reps,
                weight_kg=bench.suggested_weight,
                performed_at=performed,
            ),
            metadata=user.md,
        )
        start = monolith.clock.at
        try:
            monolith.clock.at = start + timedelta(days=2)
            later = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        finally:
            monolith.clock.at = start
    again = next(e for e in later.exercises if e.id == BENCH)
    assert again.suggested_weight > bench.suggested_weight
    assert "All sets reached" in again.reason
