"""TrainingService over gRPC on SQLite and PostgreSQL: sessions, sets (which are exercise
history), idempotent and concurrent set logging, one active session per user, auto-closing,
pagination and statistics in the user's time zone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2

from fitrules.energy import kcal
from monolith.domain import workout_sets
from monolith.domain.catalog import Catalog
from monolith.domain.workout_store import SessionStore
from monolith.domain.workouts import Workouts
from tests.conftest import RunningMonolith, UserSession, onboard, register
from tests.rpc import error_reason, expect_error, field_violations
from tests.service.test_concurrent_writes import slow_reads, together

BENCH, PUSH_UPS, PLANK, SQUATS, DEADLIFTS = 1, 2, 14, 16, 17
FRIDAY = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # the `clock` fixture's time


@dataclass
class Trainee:
    m: RunningMonolith
    user: UserSession
    stub: training_pb2_grpc.TrainingServiceStub

    def start(self, from_wod: bool = False) -> training_pb2.WorkoutSession:
        return self.stub.StartSession(
            training_pb2.StartSessionRequest(from_wod=from_wod), metadata=self.user.md
        ).session

    def log(
        self, session_id: int, exercise_id: int = BENCH, cid: str = "", **values: float
    ) -> training_pb2.LogSetResponse:
        return self.stub.LogSet(
            training_pb2.LogSetRequest(
                session_id=session_id,
                exercise_id=exercise_id,
                client_set_id=cid or uuid.uuid4().hex,
                **values,  # type: ignore[arg-type]
            ),
            metadata=self.user.md,
        )

    def end(self, session_id: int) -> training_pb2.WorkoutSession:
        return self.stub.EndSession(
            training_pb2.EndSessionRequest(session_id=session_id), metadata=self.user.md
        ).session

    def get(self, session_id: int) -> training_pb2.WorkoutSession:
        return self.stub.GetSession(
            training_pb2.GetSessionRequest(session_id=session_id), metadata=self.user.md
        ).session

    def stats(self, period: str = "") -> training_pb2.GetStatsResponse:
        return self.stub.GetStats(
            training_pb2.GetStatsRequest(period=period), metadata=self.user.md
        )

    def history(self) -> list[history_pb2.HistoryEntry]:
        return list(
            self.m.client.history.ListHistory(
                history_pb2.ListHistoryRequest(page_size=500), metadata=self.user.md
            ).entries
        )

    def record(self, exercise_id: int, at: datetime, sets: int, reps: int, kg: float) -> None:
        self.m.client.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=exercise_id,
                sets=sets,
                reps=reps,
                weight_kg=kg,
                performed_at=_ts(at),
            ),
            metadata=self.user.md,
        )

    def advance(self, **delta: float) -> None:
        self.m.clock.at += timedelta(**delta)


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


def _trainee(m: RunningMonolith, *, weight: float | None = None) -> Trainee:
    user = register(m.client)
    onboard(m.client, user)  # 80 kg on the profile
    if weight is not None:
        m.client.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(weight_kg=weight), metadata=user.md
        )
    return Trainee(m, user, training_pb2_grpc.TrainingServiceStub(m.client.channel))


@pytest.fixture
def t(monolith: RunningMonolith) -> Trainee:
    return _trainee(monolith, weight=75)


def test_a_session_from_start_to_end(t: Trainee) -> None:
    started = t.start()
    assert (started.status, started.from_wod, started.day) == ("ACTIVE", False, "2026-11-20")
    assert started.started_at.ToDatetime(tzinfo=UTC) == FRIDAY
    assert not started.HasField("ended_at")
    t.advance(minutes=2)
    first = t.log(started.id, BENCH, reps=8, weight=60, rpe=7.5)
    assert first.created
    assert (first.set.exercise_name, first.set.reps, first.set.weight) == ("Bench Press", 8, 60)
    assert first.set.estimated_1rm_kg == 76.0  # Epley: 60 x (1 + 8/30)
    assert first.set.rpe == 7.5
    t.advance(minutes=2)
    t.log(started.id, BENCH, reps=8, weight=60)
    t.advance(minutes=10)
    t.log(started.id, PLANK, duration_seconds=60)
    # While active: totals so far.
    live = t.get(started.id)
    assert (live.status, live.set_count, live.volume_kg) == ("ACTIVE", 3, 960)
    assert live.duration_seconds == 14 * 60
    t.advance(minutes=1)
    ended = t.end(started.id)
    assert (ended.status, ended.auto_closed) == ("ENDED", False)
    assert ended.ended_at.ToDatetime(tzinfo=UTC) == FRIDAY + timedelta(minutes=15)
    assert (ended.duration_seconds, ended.set_count, ended.volume_kg) == (900, 3, 960)
    # Bench 2 + 2 minutes, the plank 5 (a 10-minute gap is capped), at the latest body
    # metric (75 kg), not the profile's onboarding weight (80 kg).
    expected = kcal(6.0, 75, 4) + kcal(2.8, 75, 5)
    assert ended.calories == round(expected) == 50
    assert "75 kg" in ended.calories_basis and "MET x 3.5 x kg / 200" in ended.calories_basis
    assert [s.exercise_id for s in ended.sets] == [BENCH, BENCH, PLANK]
    assert [s.performed_at.ToDatetime(tzinfo=UTC) for s in ended.sets] == [
        FRIDAY + timedelta(minutes=m) for m in (2, 4, 14)
    ]
    assert t.get(started.id) == ended
    # Ending again changes nothing.
    t.advance(minutes=30)
    assert t.end(started.id) == ended
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION, lambda: t.log(started.id, BENCH, reps=5)
    )
    assert error_reason(err) == "SESSION_NOT_ACTIVE"


def test_sets_are_exercise_history(t: Trainee) -> None:
    """A set logged yesterday is yesterday's history: the WOD does not repeat it today."""
    t.m.clock.at = FRIDAY - timedelta(days=1)
    session = t.start()
    t.log(session.id, SQUATS, reps=5, weight=100, rpe=8)
    t.end(session.id)
    t.m.clock.at = FRIDAY
    [entry] = t.history()
    assert (entry.source, entry.exercise_id, entry.day) == ("session", SQUATS, "2026-11-19")
    assert (entry.sets, entry.reps, entry.weight_kg, entry.rpe) == (1, 5, 100, 8)
    assert entry.session_id == session.id
    yesterday = t.m.client.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day="2026-11-19"), metadata=t.user.md
    )
    assert list(yesterday.exercise_ids) == [SQUATS]
    wod = t.m.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=t.user.md)
    assert SQUATS not in {e.id for e in wod.exercises}


def test_one_active_session_per_user(t: Trainee) -> None:
    first = t.start()
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, t.start)
    assert error_reason(err) == "SESSION_ALREADY_ACTIVE"
    assert f"session {first.id} " in str(err.details())
    t.end(first.id)
    assert t.start().id != first.id


def test_concurrent_starts_make_one_session(monolith: RunningMonolith) -> None:
    t = _trainee(monolith)
    with slow_reads(monolith.app.db.engine, "workout_sessions"):
        codes = together(8, lambda _: t.start())
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}, codes
    listed = t.stub.ListSessions(training_pb2.ListSessionsRequest(), metadata=t.user.md)
    assert [s.status for s in listed.sessions] == ["ACTIVE"]
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, t.start)
    assert f"session {listed.sessions[0].id} " in str(err.details())


def test_start_from_todays_wod(t: Trainee) -> None:
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: t.start(from_wod=True))
    assert error_reason(err) == "NO_WOD_TODAY"
    assert "GET /v1/wod" in str(err.details())
    assert not t.stub.ListSessions(training_pb2.ListSessionsRequest(), metadata=t.user.md).sessions
    wod = t.m.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=t.user.md)
    session = t.start(from_wod=True)
    assert (session.from_wod, session.wod_day) == (True, wod.day)
    assert list(session.planned_exercise_ids) == [e.id for e in wod.exercises]
    listed = t.stub.ListSessions(training_pb2.ListSessionsRequest(), metadata=t.user.md)
    assert list(listed.sessions[0].planned_exercise_ids) == [e.id for e in wod.exercises]


def test_log_set_rules(t: Trainee) -> None:
    session = t.start()

    def violations(**request: float) -> dict[str, str]:
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: t.log(session.id, **request),  # type: ignore[arg-type]
        )
        return field_violations(err)

    assert set(violations(exercise_id=424242, reps=5)) == {"exercise_id"}
    assert set(violations(exercise_id=BENCH, weight=50)) == {"reps"}  # neither reps nor time
    assert set(violations(exercise_id=PLANK, reps=3)) == {"duration_seconds"}  # a timed one
    # The contract's limits (fitcore.validation) before the domain's rules.
    assert set(violations(exercise_id=BENCH, reps=500, weight=-1, rpe=11)) == {
        "reps",
        "weight",
        "rpe",
    }
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: t.log(session.id, BENCH, cid="not a valid id!", reps=5),
    )
    err = expect_error(grpc.StatusCode.NOT_FOUND, lambda: t.log(session.id + 999, reps=5))
    assert error_reason(err) == "SESSION_NOT_FOUND"
    # A bodyweight exercise may be logged with reps only, a timed one with a duration.
    assert t.log(session.id, PUSH_UPS, reps=20).created
    assert t.log(session.id, PLANK, duration_seconds=45).created
    assert t.get(session.id).set_count == 2


def test_a_retried_set_is_logged_once(t: Trainee) -> None:
    session = t.start()
    first = t.log(session.id, BENCH, cid="set-1", reps=8, weight=60, rpe=8)
    t.advance(seconds=30)
    again = t.log(session.id, BENCH, cid="set-1", reps=8, weight=60, rpe=8)
    assert (first.created, again.created) == (True, False)
    assert again.set == first.set
    err = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: t.log(session.id, BENCH, cid="set-1", reps=9, weight=60, rpe=8),
    )
    assert error_reason(err) == "CLIENT_SET_ID_REUSED"
    # The same client id in another session is another set.
    t.end(session.id)
    other = t.start()
    assert t.log(other.id, BENCH, cid="set-1", reps=8, weight=60, rpe=8).created
    # A retry after the session ended still answers the stored set.
    assert t.log(session.id, BENCH, cid="set-1", reps=8, weight=60, rpe=8).set == first.set
    assert len(t.history()) == 2


def test_concurrent_retries_of_one_set_log_it_once(monolith: RunningMonolith) -> None:
    t = _trainee(monolith)
    session = t.start()
    answers: list[training_pb2.LogSetResponse] = []

    def retry(_: int) -> None:
        answers.append(t.log(session.id, SQUATS, cid="same-set", reps=5, weight=100))

    with slow_reads(monolith.app.db.engine, "exercise_history"):
        codes = together(10, retry)
    assert codes == [grpc.StatusCode.OK] * 10
    assert sorted(a.created for a in answers) == [False] * 9 + [True]
    assert len({a.set.id for a in answers}) == 1
    assert [e.exercise_id for e in t.history()] == [SQUATS]
    assert t.end(session.id).set_count == 1


def test_a_session_holds_a_bounded_number_of_sets(
    t: Trainee, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workout_sets, "MAX_SETS_PER_SESSION", 3)
    session = t.start()
    for _ in range(3):
        t.log(session.id, PUSH_UPS, reps=10)
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: t.log(session.id, reps=5))
    assert error_reason(err) == "SESSION_FULL"
    assert t.get(session.id).set_count == 3


def test_a_session_left_open_is_closed_with_what_was_logged(t: Trainee) -> None:
    session = t.start()
    t.advance(minutes=10)
    t.log(session.id, SQUATS, cid="a", reps=5, weight=100)
    t.advance(hours=3, minutes=49)
    assert t.get(session.id).status == "ACTIVE"  # 3 h 59 min since the start: still open
    t.advance(minutes=2)
    err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: t.log(session.id, reps=5))
    assert error_reason(err) == "SESSION_NOT_ACTIVE"
    closed = t.get(session.id)
    assert (closed.status, closed.auto_closed, closed.set_count) == ("ENDED", True, 1)
    assert closed.ended_at.ToDatetime(tzinfo=UTC) == FRIDAY + timedelta(minutes=10)
    assert (closed.duration_seconds, closed.volume_kg) == (600, 500)
    assert closed.calories == round(kcal(5.0, 75, 5))  # 10 min since the start, capped at 5
    # Retrying a set it holds still answers that set; a new session can start.
    assert not t.log(session.id, SQUATS, cid="a", reps=5, weight=100).created
    assert t.start().status == "ACTIVE"


@pytest.mark.parametrize("read", ["start", "end", "list", "stats"])
def test_every_rpc_closes_a_session_left_open(t: Trainee, read: str) -> None:
    session = t.start()
    t.advance(hours=4, seconds=1)
    if read == "start":
        assert t.start().id != session.id
    elif read == "end":
        assert t.end(session.id).auto_closed
    elif read == "list":
        listed = t.stub.ListSessions(training_pb2.ListSessionsRequest(), metadata=t.user.md)
        assert [(s.status, s.auto_closed) for s in listed.sessions] == [("ENDED", True)]
    else:
        assert t.stats().sessions == 1
    closed = t.get(session.id)
    assert (closed.status, closed.auto_closed, closed.duration_seconds) == ("ENDED", True, 0)
    assert closed.ended_at == closed.started_at  # no sets: closed at its start


def test_close_stale_closes_any_users_sessions_in_batches(monolith: RunningMonolith) -> None:
    db = monolith.app.db
    workouts = Workouts(db, SessionStore(db, Catalog(db)), monolith.clock)
    workouts.close_stale(monolith.clock.now() + timedelta(days=365))  # earlier tests' leftovers
    old = [_trainee(monolith) for _ in range(2)]
    old_sessions = [o.start() for o in old]
    old[0].advance(minutes=3)
    old[0].log(old_sessions[0].id, PUSH_UPS, reps=10)
    monolith.clock.at += timedelta(hours=3)
    fresh = _trainee(monolith)
    fresh_session = fresh.start()
    later = monolith.clock.now() + timedelta(hours=1, minutes=30)
    assert workouts.close_stale(later, limit=1) == 1
    assert workouts.close_stale(later, limit=1) == 1
    assert workouts.close_stale(later, limit=1) == 0
    first, second = (o.get(s.id) for o, s in zip(old, old_sessions, strict=True))
    assert (first.status, first.auto_closed, first.set_count) == ("ENDED", True, 1)
    assert first.ended_at.ToDatetime(tzinfo=UTC) == FRIDAY + timedelta(minutes=3)
    assert (second.status, second.auto_closed) == ("ENDED", True)
    assert fresh.get(fresh_session.id).status == "ACTIVE"


def test_list_sessions_newest_first_in_pages(t: Trainee) -> None:
    ids = []
    for n in range(3):
        session = t.start()
        t.advance(minutes=1)
        t.log(session.id, PUSH_UPS, reps=10 + n)
        if n < 2:
            t.end(session.id)
        ids.append(session.id)
        t.advance(hours=1)
    stub, md = t.stub, t.user.md
    page = stub.ListSessions(training_pb2.ListSessionsRequest(page_size=2), metadata=md)
    rest = stub.ListSessions(
        training_pb2.ListSessionsRequest(page_size=2, page_token=page.next_page_token),
        metadata=md,
    )
    assert page.next_page_token and not rest.next_page_token
    listed = [*page.sessions, *rest.sessions]
    assert [s.id for s in listed] == ids[::-1]
    assert [s.status for s in listed] == ["ACTIVE", "ENDED", "ENDED"]
    assert all(s.set_count == 1 and not s.sets for s in listed)
    # The default page holds them all; a forged token is INVALID_ARGUMENT, not a crash.
    assert len(stub.ListSessions(training_pb2.ListSessionsRequest(), metadata=md).sessions) == 3
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListSessions(
            training_pb2.ListSessionsRequest(page_token="bm90LWEta2V5"), metadata=md
        ),
    )


def test_stats_of_the_week_month_and_year(t: Trainee) -> None:
    """Friday 20 November 2026 (UTC): the week started on Monday the 16th."""
    t.record(BENCH, datetime(2026, 11, 12, 18, tzinfo=UTC), sets=3, reps=3, kg=100)  # 110 e1RM
    t.record(DEADLIFTS, datetime(2026, 11, 5, 18, tzinfo=UTC), sets=1, reps=5, kg=150)
    t.record(SQUATS, datetime(2026, 11, 18, 18, tzinfo=UTC), sets=3, reps=5, kg=100)
    t.record(PUSH_UPS, datetime(2026, 11, 19, 18, tzinfo=UTC), sets=2, reps=20, kg=0)
    # A served WOD is not training: its exercises count nowhere.
    t.m.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=t.user.md)
    session = t.start()
    for _ in range(3):
        t.advance(minutes=2)
        t.log(session.id, BENCH, reps=5, weight=80)
    t.advance(minutes=4)
    ended = t.end(session.id)
    # Another session still open: not counted until it ends.
    t.log(t.start().id, PUSH_UPS, reps=10)

    week = t.stats()
    assert (week.period, week.start_day, week.end_day) == ("WEEK", "2026-11-16", "2026-11-20")
    assert week.time_zone == "UTC"
    assert (week.sessions, week.duration_seconds, week.volume_kg) == (1, 600, 1200)
    assert week.calories == ended.calories > 0
    assert week.streak_days == 3  # 18th, 19th, 20th
    records = [
        (r.exercise_id, r.estimated_1rm_kg, r.weight, r.reps, r.day, r.set_in_period)
        for r in week.personal_records
    ]
    assert records == [
        (SQUATS, 116.7, 100, 5, "2026-11-18", True),
        (BENCH, 110.0, 100, 3, "2026-11-12", False),  # the all-time best, from last week
    ]
    assert week.personal_records[0].exercise_name == "Squats"
    sets = [(m.week_start, m.muscle_group_name, m.sets) for m in week.muscle_group_sets]
    assert sets == [  # most first
        ("2026-11-16", "Pectoralis Major", 6),  # 3 bench + 2 push-ups + 1 in the open session
        ("2026-11-16", "Quadriceps", 3),  # squats' primary movers, one set each
        ("2026-11-16", "Gluteus Maximus", 3),
    ]

    month = t.stats("MONTH")
    assert (month.start_day, month.sessions) == ("2026-11-01", 1)
    assert [(r.exercise_id, r.set_in_period) for r in month.personal_records] == [
        (DEADLIFTS, True),  # 175
        (SQUATS, True),
        (BENCH, True),
    ]
    weeks = {m.week_start for m in month.muscle_group_sets}
    assert weeks == {"2026-11-02", "2026-11-09", "2026-11-16"}
    year = t.stats("YEAR")  # the free plan sees the last 4 weeks (premium: since 1 January)
    assert (year.start_day, year.history_limited_to_weeks) == ("2026-10-24", 4)


def test_stats_count_training_not_served_wods(t: Trainee) -> None:
    t.m.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=t.user.md)
    stats = t.stats("YEAR")
    assert (stats.sessions, stats.streak_days, stats.calories) == (0, 0, 0)
    assert not stats.personal_records and not stats.muscle_group_sets
    # Nothing yet today: a streak up to yesterday still stands.
    t.record(PUSH_UPS, FRIDAY - timedelta(days=1), sets=1, reps=10, kg=0)
    t.record(PUSH_UPS, FRIDAY - timedelta(days=2), sets=1, reps=10, kg=0)
    assert t.stats().streak_days == 2
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: t.stats("DECADE"),
    )
    assert set(field_violations(err)) == {"period"}


def test_days_are_the_users_days(t: Trainee) -> None:
    """Auckland is UTC+13 in November: 12:00 UTC on Sunday the 22nd is 01:00 on Monday the
    23rd there, a new week."""
    t.m.client.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(time_zone=wrappers_pb2.StringValue(value="Pacific/Auckland")),
        metadata=t.user.md,
    )
    t.m.clock.at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # Sunday 23:00 in Auckland
    sunday = t.start()
    t.log(sunday.id, BENCH, reps=5, weight=80)
    t.end(sunday.id)
    t.m.clock.at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    monday = t.start()
    t.log(monday.id, SQUATS, reps=5, weight=100)
    t.advance(minutes=5)
    t.end(monday.id)
    assert (sunday.day, monday.day) == ("2026-11-22", "2026-11-23")
    assert {e.day for e in t.history()} == {"2026-11-22", "2026-11-23"}
    week = t.stats()
    assert (week.start_day, week.end_day) == ("2026-11-23", "2026-11-23")
    assert (week.time_zone, week.sessions, week.streak_days) == ("Pacific/Auckland", 1, 2)
    assert {m.week_start for m in week.muscle_group_sets} == {"2026-11-23"}
    assert [r.exercise_id for r in week.personal_records] == [SQUATS]


def test_calories_need_a_body_weight(monolith: RunningMonolith) -> None:
    user = register(monolith.client)  # never onboarded: no weight anywhere
    t = Trainee(monolith, user, training_pb2_grpc.TrainingServiceStub(monolith.client.channel))
    session = t.start()
    t.advance(minutes=3)
    t.log(session.id, PUSH_UPS, reps=20)
    ended = t.end(session.id)
    assert (ended.calories, ended.set_count, ended.duration_seconds) == (0, 1, 180)
    assert "no body weight" in ended.calories_basis
    assert date.fromisoformat(ended.day) == FRIDAY.date()
