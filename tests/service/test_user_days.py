"""The user's days: the profile's time zone (and activity level) and what follows from it —
history days, the legacy WOD's today and yesterday — plus the legacy WOD's reads in one
transaction. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2
from sqlalchemy import event

from fitrules.days import day_bounds, zone
from tests.conftest import RunningMonolith, UserSession, onboard, register
from tests.rpc import expect_error, field_violations

NEW_YORK = "America/New_York"
# 03:00 UTC on 10 March 2026 is still 9 March in New York (UTC-5 before the DST change).
EARLY_UTC = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)


def _set_zone(m: RunningMonolith, user: UserSession, name: str) -> user_pb2.Profile:
    resp = m.client.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(time_zone=wrappers_pb2.StringValue(value=name)),
        metadata=user.md,
    )
    return resp.profile


@pytest.fixture
def user(monolith: RunningMonolith) -> UserSession:
    u = register(monolith.client)
    onboard(monolith.client, u)
    monolith.clock.at = EARLY_UTC
    return u


def test_time_zone_and_activity_level_are_kept_and_cleared(
    monolith: RunningMonolith, user: UserSession
) -> None:
    profile = _set_zone(monolith, user, NEW_YORK)
    assert profile.time_zone == NEW_YORK
    profile = monolith.client.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(activity_level=wrappers_pb2.StringValue(value="moderate")),
        metadata=user.md,
    ).profile
    assert (profile.time_zone, profile.activity_level) == (NEW_YORK, "moderate")
    profile = _set_zone(monolith, user, "")
    assert (profile.time_zone, profile.activity_level) == ("", "moderate")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "New_York", "EST5EDT/x"])
def test_unknown_time_zones_are_field_violations(
    monolith: RunningMonolith, user: UserSession, name: str
) -> None:
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: _set_zone(monolith, user, name))
    assert "time_zone" in field_violations(err)


def test_history_days_are_the_users_days(monolith: RunningMonolith, user: UserSession) -> None:
    def record_day() -> str:
        entry = monolith.client.history.RecordExercise(
            history_pb2.RecordExerciseRequest(exercise_id=1, sets=3, reps=10, weight_kg=40),
            metadata=user.md,
        ).entry
        return entry.day

    assert record_day() == "2026-03-10"  # no zone: UTC
    _set_zone(monolith, user, NEW_YORK)
    assert record_day() == "2026-03-09"
    days = monolith.client.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day="2026-03-09"), metadata=user.md
    )
    assert days.exercise_ids == [1]


def test_the_legacy_wod_is_for_the_users_today_and_avoids_their_yesterday(
    monolith: RunningMonolith, user: UserSession
) -> None:
    _set_zone(monolith, user, NEW_YORK)
    # Yesterday in New York is 8 March: everything but six exercises was done then.
    catalog = monolith.app.legacy._catalog.snapshot()
    ids = sorted(e.id for e in catalog.exercises)
    keep = set(ids[:6])
    at = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)  # 15:00 in New York on the 8th
    for exercise_id in ids[6:]:
        monolith.client.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=exercise_id, sets=1, reps=5, performed_at=_ts(at)
            ),
            metadata=user.md,
        )
    wod = monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
    assert wod.day == "2026-03-09"
    assert wod.time_zone == NEW_YORK
    assert {e.id for e in wod.exercises} == keep


def test_the_legacy_wod_reads_in_one_transaction(
    monolith: RunningMonolith, user: UserSession
) -> None:
    """A first call of the day: one read transaction and one write (recording the WOD); a
    later call: one read transaction."""
    monolith.app.legacy._catalog.snapshot()
    begins: list[int] = []
    engine = monolith.app.db.engine

    def on_begin(_conn: object) -> None:
        begins.append(1)

    event.listen(engine, "begin", on_begin)
    try:
        monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        first = len(begins)
        monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
        second = len(begins) - first
    finally:
        event.remove(engine, "begin", on_begin)
    # Plus the token check's read of the user's token version (cached for 2 s after).
    assert first <= 3, first
    assert second <= 1, second


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


def test_a_day_is_a_calendar_day_across_dst() -> None:
    start, end = day_bounds(date(2026, 3, 8), zone(NEW_YORK))  # spring forward: 23 hours
    assert end - start == timedelta(hours=23)
    assert zone("Not/A_Zone") is UTC
