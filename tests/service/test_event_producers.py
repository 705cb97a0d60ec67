"""The events the monolith and billing produce (issue #12), read back from a real NATS
JetStream, on SQLite and PostgreSQL: each type with its payload, written with its change and
on the bus milliseconds after the commit; once per transition, record, day or session; kept in
the outbox while the bus is down and published when it is back; and stored once when two
instances (or a retry) publish the same row.

The relays poll every 30 s here (FITCO_OUTBOX_POLL_SECONDS): an event on the bus within half a
second can only be the commit waking the relay.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc
from fitco.events.v1 import events_pb2
from fitco.goals.v1 import goals_pb2, goals_pb2_grpc
from fitco.groups.v1 import groups_pb2
from fitco.history.v1 import history_pb2
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from sqlalchemy import event, func, insert, select, update

from billing.app import build as build_billing
from billing.migrations import MIGRATIONS as BILLING_MIGRATIONS
from billing.models import SubscriptionRow
from devtools.ports import free_port
from fitcore.clock import FixedClock
from fitcore.config import Env
from fitcore.db import Database
from fitcore.eventbus import ACTIVITY_HEADER, SET_LOGGED, activity_subject
from fitcore.outbox import OUTBOX
from fitcore.timestamps import timestamp
from tests.conftest import (
    Databases,
    RunningMonolith,
    UserSession,
    make_env,
    onboard,
    register,
    running_monolith,
)
from tests.natsfix import NatsServer, start_nats
from tests.rpc import expect_error
from tests.service.billing_fakes import FakeProvider
from tests.service.bus_reader import BusReader, StoredEvent

BENCH, PUSH_UPS, PLANK, SQUATS = 1, 2, 14, 16


def _env(key_dir: Path, url: str, nats_url: str, **extra: str) -> Env:
    return make_env(
        key_dir, url, **{"FITCO_NATS_URL": nats_url, "FITCO_OUTBOX_POLL_SECONDS": "30", **extra}
    )


@contextmanager
def producing(env: Env, clock: FixedClock, key_dir: Path) -> Iterator[RunningMonolith]:
    """A monolith with its background work (the session sweep, the outbox relay) running."""
    with running_monolith(env, clock, key_dir) as m:
        m.app.start_background()
        yield m


@pytest.fixture(scope="module")
def bus(nats_server: NatsServer) -> Iterator[BusReader]:
    reader = BusReader(nats_server.url)
    yield reader
    reader.close()


@pytest.fixture
def mono(
    migrated_url: str, key_dir: Path, clock: FixedClock, nats_server: NatsServer
) -> Iterator[RunningMonolith]:
    with producing(_env(key_dir, migrated_url, nats_server.url), clock, key_dir) as m:
        yield m


@dataclass
class Producer:
    """A user of the monolith whose events are read back from the bus."""

    m: RunningMonolith
    bus: BusReader
    user: UserSession
    after: int  # the stream's last sequence when the user appeared

    def events(self, count: int, timeout: float = 5.0) -> list[StoredEvent]:
        return self.bus.wait_events(self.user.id, self.after, count, timeout)

    def settled(self, count: int) -> list[events_pb2.WatchEventsResponse]:
        """Exactly the user's events once `count` arrived and nothing more followed."""
        self.events(count)
        time.sleep(0.3)
        return [e.event for e in self.bus.events(self.user.id, self.after)]

    def advance(self, **delta: float) -> None:
        self.m.clock.at += timedelta(**delta)

    def goal(self, target: float, days: int = 30) -> Any:
        day = (self.m.clock.now() + timedelta(days=days)).date().isoformat()
        return (
            goals_pb2_grpc.GoalServiceStub(self.m.client.channel)
            .CreateGoal(
                goals_pb2.CreateGoalRequest(
                    kind="weight_loss", target_value=target, target_date=day
                ),
                metadata=self.user.md,
            )
            .goal
        )

    def weigh(self, kg: float) -> None:
        self.m.client.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(weight_kg=kg), metadata=self.user.md
        )

    @property
    def training(self) -> training_pb2_grpc.TrainingServiceStub:
        return training_pb2_grpc.TrainingServiceStub(self.m.client.channel)

    def start(self) -> int:
        req = training_pb2.StartSessionRequest()
        return int(self.training.StartSession(req, metadata=self.user.md).session.id)

    def log(self, session_id: int, exercise_id: int, cid: str = "", **values: float) -> Any:
        return self.training.LogSet(
            training_pb2.LogSetRequest(
                session_id=session_id,
                exercise_id=exercise_id,
                client_set_id=cid or uuid.uuid4().hex,
                **values,  # type: ignore[arg-type]
            ),
            metadata=self.user.md,
        )

    def end(self, session_id: int) -> training_pb2.WorkoutSession:
        req = training_pb2.EndSessionRequest(session_id=session_id)
        return self.training.EndSession(req, metadata=self.user.md).session

    def record(self, exercise_id: int, reps: int, kg: float = 0.0) -> None:
        self.m.client.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=exercise_id, sets=1, reps=reps, weight_kg=kg
            ),
            metadata=self.user.md,
        )


def producer(m: RunningMonolith, bus: BusReader) -> Producer:
    user = register(m.client)
    onboard(m.client, user)  # 80 kg
    return Producer(m, bus, user, bus.last_seq())


def outbox_rows(db: Database) -> int:
    with db.transaction(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(OUTBOX)) or 0)


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- goals ------------------------------------------------------------------------------------


def test_goal_achieved_by_a_body_weight_is_on_the_bus_at_once(
    mono: RunningMonolith, bus: BusReader
) -> None:
    p = producer(mono, bus)
    goal = p.goal(78)
    p.weigh(78)
    sent = time.monotonic()
    [stored] = p.events(1, timeout=2)
    assert time.monotonic() - sent < 0.5  # the commit woke the relay (it polls every 30 s)
    ev = stored.event
    assert (ev.type, ev.id, ev.WhichOneof("payload")) == ("GOAL_ACHIEVED", "", "goal_achieved")
    assert ev.time == timestamp(mono.clock.now())
    assert ev.goal_achieved == events_pb2.GoalAchieved(
        goal_id=goal.id, kind="weight_loss", target_value=78, current_value=78, unit="kg"
    )
    assert stored.msg_id.startswith("monolith-")
    assert [e.type for e in p.settled(1)] == ["GOAL_ACHIEVED"]
    assert outbox_rows(mono.app.db) == 0


def test_off_track_is_sent_once_per_fall(mono: RunningMonolith, bus: BusReader) -> None:
    """Weights a day apart: no trend (2 points), rising (off track: sent), still rising (not
    again), falling fast (on track), flat (off track again: sent)."""
    p = producer(mono, bus)
    goal = p.goal(75, days=30)
    stub = goals_pb2_grpc.GoalServiceStub(mono.client.channel)
    on_track = []
    for kg in (80.5, 81, 81.2, 77, 82):
        p.advance(days=1)
        p.weigh(kg)
        got = stub.GetGoal(goals_pb2.GetGoalRequest(goal_id=goal.id), metadata=p.user.md)
        on_track.append(got.goal.progress.on_track)
    assert on_track == [False, False, False, True, False]
    events = p.settled(2)
    assert [e.type for e in events] == ["GOAL_OFF_TRACK", "GOAL_OFF_TRACK"]
    first, second = (e.goal_off_track for e in events)
    assert first == events_pb2.GoalOffTrack(
        goal_id=goal.id,
        kind="weight_loss",
        target_value=75,
        current_value=81,
        unit="kg",
        percent=0.0,  # moving away from the target
        target_date=goal.target_date,
        projected_date="",  # the trend goes the wrong way
    )
    assert (second.current_value, second.percent) == (82, 0.0)
    assert second.projected_date > goal.target_date  # a trend too flat to make it
    assert events[0].time == timestamp(datetime(2026, 11, 22, 9, 30, tzinfo=UTC))


# -- training ---------------------------------------------------------------------------------


def test_records_sets_and_an_ended_session(mono: RunningMonolith, bus: BusReader) -> None:
    p = producer(mono, bus)
    activity = bus.subscribe(activity_subject(p.user.id))
    session = p.start()
    first = p.log(session, BENCH, cid="a", reps=5, weight=100)  # first loaded set: a record
    assert not p.log(session, BENCH, cid="a", reps=5, weight=100).created  # a retry
    lighter = p.log(session, BENCH, reps=5, weight=90)
    p.advance(minutes=3)
    top = p.log(session, BENCH, reps=6, weight=100)  # Epley 120 > 116.7
    plank = p.log(session, PLANK, duration_seconds=60)  # no load: never a record
    p.advance(minutes=2)
    ended = p.end(session)

    events = p.settled(3)
    assert [e.type for e in events] == ["PERSONAL_RECORD", "PERSONAL_RECORD", "SESSION_ENDED"]
    assert events[0].personal_record == events_pb2.PersonalRecord(
        exercise_id=BENCH,
        exercise_name="Bench Press",
        estimated_one_rep_max=116.7,
        previous_estimated_one_rep_max=0,
        reps=5,
        weight=100,
        set_id=first.set.id,
        session_id=session,
    )
    second = events[1].personal_record
    assert (second.estimated_one_rep_max, second.previous_estimated_one_rep_max) == (120, 116.7)
    assert (second.set_id, second.reps) == (top.set.id, 6)
    assert events[2].session_ended == events_pb2.SessionEnded(
        session_id=session,
        duration_seconds=ended.duration_seconds,
        calories=ended.calories,
        volume_kg=ended.volume_kg,
        set_count=4,
        auto_closed=False,
    )
    assert events[2].time == timestamp(mono.clock.now())

    # Every new set (not the retry) went to the user's live groups, in order.
    got = [activity.get(timeout=5) for _ in range(4)]
    assert all(m.headers == {ACTIVITY_HEADER: SET_LOGGED} for m in got)
    sets = [groups_pb2.SetLogged.FromString(m.data) for m in got]
    assert [s.set_id for s in sets] == [first.set.id, lighter.set.id, top.set.id, plank.set.id]
    assert sets[0] == groups_pb2.SetLogged(
        session_id=session,
        set_id=first.set.id,
        exercise_id=BENCH,
        exercise_name="Bench Press",
        reps=5,
        weight=100,
    )
    assert sets[3].duration_seconds == 60
    time.sleep(0.2)
    assert activity.empty()


def test_a_streak_once_a_day_from_day_two(mono: RunningMonolith, bus: BusReader) -> None:
    p = producer(mono, bus)
    p.record(SQUATS, reps=5, kg=100)  # day 1, a logged exercise: a streak of 1
    p.advance(days=1)
    session = p.start()
    p.log(session, PUSH_UPS, reps=20)  # day 2 by a session set: STREAK 2
    p.log(session, PUSH_UPS, reps=15)
    p.record(SQUATS, reps=5, kg=100)
    p.end(session)
    p.advance(days=1)
    p.record(SQUATS, reps=5, kg=100)  # day 3 by a logged exercise: STREAK 3
    p.advance(days=2)
    p.log(p.start(), PUSH_UPS, reps=20)  # a day was missed: a streak of 1 again
    events = p.settled(3)
    streaks = [(e.streak.days, e.streak.day) for e in events if e.type == "STREAK"]
    assert streaks == [(2, "2026-11-21"), (3, "2026-11-22")]
    assert [e.type for e in events] == ["STREAK", "SESSION_ENDED", "STREAK"]


def test_sessions_closed_automatically_are_ended_events(
    mono: RunningMonolith, bus: BusReader
) -> None:
    swept, lazy = producer(mono, bus), producer(mono, bus)
    left_open = swept.start()
    swept.log(left_open, PUSH_UPS, reps=10)
    forgotten = lazy.start()
    mono.clock.at += timedelta(hours=5)
    # Read by its user: closed before the answer (lazily).
    lazy.training.GetSession(
        training_pb2.GetSessionRequest(session_id=forgotten), metadata=lazy.user.md
    )
    [closed] = [e.event for e in lazy.events(1)]
    assert closed.session_ended == events_pb2.SessionEnded(
        session_id=forgotten, auto_closed=True
    )  # no sets: it ended when it started
    # Never read again: closed by the sweep.
    mono.app.session_sweep.run_once()
    [closed] = [e.event for e in swept.events(1)]
    assert (closed.session_ended.session_id, closed.session_ended.auto_closed) == (left_open, True)
    assert closed.session_ended.set_count == 1
    assert closed.time == timestamp(mono.clock.now())


# -- billing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing_url(databases: Databases) -> str:
    url = databases.new()
    BILLING_MIGRATIONS.upgrade(url)
    return url


def test_subscription_changes(
    migrated_url: str,
    billing_url: str,
    key_dir: Path,
    clock: FixedClock,
    nats_server: NatsServer,
    bus: BusReader,
) -> None:
    with running_monolith(make_env(key_dir, migrated_url), clock, key_dir) as m:
        env = _env(
            key_dir,
            migrated_url,
            nats_server.url,
            BILLING_DATABASE_URL=billing_url,
            FITCO_MONOLITH_TARGET=m.target,
            FITCO_BILLING_GRACE_SECONDS="1",
        )
        app = build_billing(env, clock=clock, address="127.0.0.1:0", provider=FakeProvider())
        app.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        try:
            stub = billing_pb2_grpc.BillingServiceStub(channel)

            def checkout(user: UserSession, token: str) -> Any:
                return stub.Checkout(
                    billing_pb2.CheckoutRequest(
                        plan_id="premium_monthly", payment_method_token=token
                    ),
                    metadata=(*user.md, ("idempotency-key", uuid.uuid4().hex)),
                )

            user = register(m.client)
            p = Producer(m, bus, user, bus.last_seq())
            sub = checkout(user, "tok_visa").subscription
            [activated] = [e.event for e in p.events(1, timeout=2)]
            assert activated.subscription_changed == events_pb2.SubscriptionChanged(
                change="ACTIVATED",
                status="active",
                plan_id="premium_monthly",
                current_period_end=sub.current_period_end,
            )
            # The renewal is declined: past due.
            with app.db.transaction() as s:
                s.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id == sub.id)
                    .values(payment_method_token="tok_chargeDeclined")
                )
            clock.at = sub.current_period_end.ToDatetime(tzinfo=UTC) + timedelta(minutes=1)
            app.renewals.run_due()
            stub.CancelSubscription(billing_pb2.CancelSubscriptionRequest(), metadata=user.md)
            events = p.settled(3)
            changes = [
                (e.subscription_changed.change, e.subscription_changed.status) for e in events
            ]
            assert changes == [
                ("ACTIVATED", "active"),
                ("PAST_DUE", "past_due"),
                ("CANCELED", "canceled"),
            ]
            assert {e.type for e in events} == {"SUBSCRIPTION_CHANGED"}
            assert events[2].time == timestamp(clock.now())
            assert events[2].subscription_changed.current_period_end == sub.current_period_end

            # A checkout whose payment fails never made the user premium: no event.
            other = Producer(m, bus, register(m.client), bus.last_seq())
            expect_error(
                grpc.StatusCode.FAILED_PRECONDITION,
                lambda: checkout(other.user, "tok_chargeDeclined"),
            )
            assert other.settled(0) == []
        finally:
            channel.close()
            app.stop()


# -- the relay: the bus down, two instances, a retried row ------------------------------------


def test_events_made_while_the_bus_is_down_are_published_when_it_is_back(
    migrated_url: str,
    key_dir: Path,
    clock: FixedClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fitcore.outbox")
    port, store = free_port(), tmp_path / "nats"
    server = start_nats(store, port)
    reader = BusReader(server.url)
    try:
        with producing(_env(key_dir, migrated_url, server.url), clock, key_dir) as m:
            p = producer(m, reader)
            p.goal(79)
            p.weigh(79)
            assert [e.event.type for e in p.events(1)] == ["GOAL_ACHIEVED"]
            reader.close()
            server.stop()

            def warnings() -> list[logging.LogRecord]:
                return [
                    r
                    for r in caplog.records
                    if r.name == "fitcore.outbox" and r.levelno >= logging.WARNING
                ]

            wait_until(lambda: len(warnings()) == 1)  # the relay noticed the outage
            goal = p.goal(78)
            started = time.monotonic()
            p.weigh(78)  # the user's change does not wait for the bus
            assert time.monotonic() - started < 1.0
            assert outbox_rows(m.app.db) == 1
            # With the bus down the relay leaves the database alone (it keeps reconnecting).
            relay_begins: list[str] = []

            def count_begin(_conn: object) -> None:
                if threading.current_thread().name.startswith("outbox-"):
                    relay_begins.append(threading.current_thread().name)

            event.listen(m.app.db.engine, "begin", count_begin)
            time.sleep(2.5)
            event.remove(m.app.db.engine, "begin", count_begin)
            assert relay_begins == []

            server = start_nats(store, port)  # the same store: the stream is still there
            reader = BusReader(server.url)
            events = reader.wait_events(p.user.id, p.after, 2, timeout=15)
            assert [e.event.goal_achieved.goal_id for e in events[1:]] == [goal.id]
            wait_until(lambda: outbox_rows(m.app.db) == 0)
            # One warning for the whole outage (not one per reconnection attempt).
            assert [r.getMessage() for r in warnings()] == [
                "event bus unreachable: events wait in the outbox until it is back"
            ]
    finally:
        reader.close()
        server.stop()


def test_two_instances_on_one_database_publish_each_row_once(
    migrated_url: str,
    key_dir: Path,
    clock: FixedClock,
    nats_server: NatsServer,
    bus: BusReader,
) -> None:
    """Rows written through both instances while neither relay runs, then both relays
    started together: every event is stored once (PostgreSQL: the rows are shared out; SQLite:
    both may publish a row, JetStream keeps one)."""
    env = _env(key_dir, migrated_url, nats_server.url)
    with running_monolith(env, clock, key_dir) as a, running_monolith(env, clock, key_dir) as b:
        users = [producer(m, bus) for m in (a, b, a, b)]
        goals: dict[int, set[int]] = {}
        for p in users:
            goals[p.user.id] = {p.goal(target).id for target in (79.5, 79, 78.5, 78, 77.5)}
            p.weigh(77)  # five goals reached at once
        assert outbox_rows(a.app.db) == 20
        a.app.relay.start()
        b.app.relay.start()
        for p in users:
            events = p.settled(5)
            assert [e.type for e in events] == ["GOAL_ACHIEVED"] * 5
            assert {e.goal_achieved.goal_id for e in events} == goals[p.user.id]
        wait_until(lambda: outbox_rows(a.app.db) == 0)


def test_a_row_published_again_is_stored_once(
    migrated_url: str,
    key_dir: Path,
    clock: FixedClock,
    nats_server: NatsServer,
    bus: BusReader,
) -> None:
    """A relay that published a row but died before deleting it publishes it again after a
    restart: JetStream stores it once (the message id is the row's identity)."""
    env = _env(key_dir, migrated_url, nats_server.url, FITCO_OUTBOX_POLL_SECONDS="0.1")
    with running_monolith(env, clock, key_dir) as m:
        p = producer(m, bus)
        p.goal(79)
        p.weigh(79)
        with m.app.db.transaction(write=False) as s:
            [row] = s.execute(select(OUTBOX)).mappings().all()
        m.app.relay.start()
        [stored] = p.events(1)
        wait_until(lambda: outbox_rows(m.app.db) == 0)
        with m.app.db.transaction() as s:  # as if the delete had never happened
            s.execute(insert(OUTBOX).values(**row))
        wait_until(lambda: outbox_rows(m.app.db) == 0)
        p.settled(1)
        assert [e.seq for e in bus.events(p.user.id, p.after)] == [stored.seq]
        assert stored.msg_id.startswith(f"monolith-{row['id']}-")
