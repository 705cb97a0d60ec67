"""WatchEvents (fitco.events.v1.EventService) on a real realtime service: real NATS with
JetStream (events published straight into FITCO_EVENTS, as the producers' outboxes do), a real
monolith for the users and their tokens, the generated sync stub over a real channel.

The module runs its own NATS server: user ids restart at 1 in every test database, so events
other modules stored for "user 1" must not show up in these replays.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import cast

import grpc
import jwt
import nats.errors
import pytest
from fitco.events.v1 import events_pb2, events_pb2_grpc
from fitco.user.v1 import user_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fitcore.config import Env
from fitcore.eventbus import EVENTS_PER_USER, EVENTS_STREAM, events_subject
from fitcore.keys import load_private_key
from realtime.events.dispatch import RESYNCS
from tests.conftest import RunningMonolith, UserSession, register, token_claims
from tests.natsfix import NatsServer, start_nats
from tests.rpc import error_reason, expect_error, field_violations
from tests.service.realtime_fixtures import (
    NatsPublisher,
    RunningRealtime,
    accounts_monolith,
    nats_publisher,
    own_bus,
    realtime_env,
    running_realtime,
)

Event = events_pb2.WatchEventsResponse
END = object()


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with own_bus(tmp_path_factory.mktemp("events-nats")) as server:
        yield server


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Iterator[RunningMonolith]:
    """The monolith: users, their tokens, and CheckToken for revocation."""
    with accounts_monolith(tmp_path_factory.mktemp("events-db"), key_dir) as running:
        yield running


def _env(key_dir: Path, bus: NatsServer, accounts: RunningMonolith, **extra: str) -> Env:
    return realtime_env(
        key_dir, bus.url, monolith_target=accounts.target, REALTIME_HEARTBEAT_SECONDS="1", **extra
    )


@pytest.fixture(scope="module")
def realtime(
    key_dir: Path, bus: NatsServer, accounts: RunningMonolith
) -> Iterator[RunningRealtime]:
    with running_realtime(_env(key_dir, bus, accounts), features=("events",)) as running:
        yield running


@pytest.fixture(scope="module")
def publisher(bus: NatsServer, realtime: RunningRealtime) -> Iterator[NatsPublisher]:
    with nats_publisher(bus.url) as pub:
        yield pub


@pytest.fixture
def stub(realtime: RunningRealtime) -> events_pb2_grpc.EventServiceStub:
    return events_pb2_grpc.EventServiceStub(realtime.channel)


@pytest.fixture
def user(accounts: RunningMonolith) -> UserSession:
    return register(accounts.client)


# -- helpers ---------------------------------------------------------------------------------


def goal_achieved(goal_id: int) -> Event:
    event = Event(
        type="GOAL_ACHIEVED",
        goal_achieved=events_pb2.GoalAchieved(
            goal_id=goal_id, kind="weight_loss", target_value=75, current_value=74.8, unit="kg"
        ),
    )
    event.time.FromDatetime(datetime.now(UTC))
    return event


def streak(days: int) -> Event:
    event = Event(type="STREAK", streak=events_pb2.Streak(days=days, day="2026-11-20"))
    event.time.FromDatetime(datetime.now(UTC))
    return event


def publish(publisher: NatsPublisher, user_id: int, event: Event) -> int:
    """Store an event as a producer does (id empty); its stream sequence."""
    return publisher.publish(events_subject(user_id), event.SerializeToString())


class Watching:
    """A WatchEvents call, read on a thread into a queue so the test can wait with timeouts.
    Opening returns once the server sent its headers: the watch is registered."""

    def __init__(
        self,
        stub: events_pb2_grpc.EventServiceStub,
        user: UserSession,
        after: str = "",
    ) -> None:
        self.call = stub.WatchEvents(
            events_pb2.WatchEventsRequest(after_event_id=after), metadata=user.md
        )
        self.call.initial_metadata()
        self.received: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.received.put(response)
        except grpc.RpcError as exc:
            self.received.put(exc)
        self.received.put(END)

    def next(self, timeout: float = 5.0, *, heartbeats: bool = False) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            item = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, Event):
                if item.type != "HEARTBEAT" or heartbeats:
                    return item
                continue
            raise AssertionError(f"the stream ended: {item!r}")

    def events(self, count: int, timeout: float = 10.0) -> list[Event]:
        return [self.next(timeout) for _ in range(count)]

    def quiet_for(self, seconds: float) -> None:
        """No event but heartbeats for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.received.get(timeout=left)
            except queue.Empty:
                return
            assert isinstance(item, Event) and item.type == "HEARTBEAT", item

    def end(self, timeout: float = 10.0) -> grpc.StatusCode:
        """Wait for the stream to end: its status (OK when it ended normally)."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            if item is END:
                return grpc.StatusCode.OK
            if isinstance(item, grpc.RpcError):
                return cast("grpc.Call", item).code()

    def close(self) -> None:
        self.call.cancel()
        self._reader.join(5)


def ids(events: list[Event]) -> list[int]:
    return [int(e.id) for e in events]


def expect_error_code(call: Iterator[Event]) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    return cast("grpc.Call", info.value)


def read_into(got: list[Event], call: Iterator[Event]) -> None:
    for event in call:
        got.append(event)


def refused(stub: events_pb2_grpc.EventServiceStub, user: UserSession) -> grpc.Call | None:
    """The refusal of a watch, None when it was accepted (it sends a heartbeat within 1 s)."""
    call = stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=user.md)
    try:
        next(call)
    except grpc.RpcError as exc:
        return cast("grpc.Call", exc)
    call.cancel()
    return None


def wait_for_health(realtime: RunningRealtime, status: int, seconds: float = 5.0) -> bool:
    """Whether the service's overall health reaches `status` within `seconds`."""
    health = health_pb2_grpc.HealthStub(realtime.channel)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == status:
            return True
        time.sleep(0.1)
    return False


# -- delivery --------------------------------------------------------------------------------


def test_live_events_reach_the_watcher_with_their_stream_ids(
    realtime: RunningRealtime,
    stub: events_pb2_grpc.EventServiceStub,
    publisher: NatsPublisher,
    user: UserSession,
) -> None:
    health = health_pb2_grpc.HealthStub(realtime.channel)
    ready = health.Check(health_pb2.HealthCheckRequest(service="fitco.events.v1.EventService"))
    assert ready.status == health_pb2.HealthCheckResponse.SERVING
    watching = Watching(stub, user)
    try:
        sent = [goal_achieved(7), streak(3)]
        seqs = [publish(publisher, user.id, e) for e in sent]
        got = watching.events(2)
        assert ids(got) == seqs
        for event, published in zip(got, sent, strict=True):
            expected = Event()
            expected.CopyFrom(published)
            expected.id = event.id
            assert event == expected
    finally:
        watching.close()


def test_resume_gets_exactly_the_missed_events_then_live_ones(
    stub: events_pb2_grpc.EventServiceStub, publisher: NatsPublisher, user: UserSession
) -> None:
    seqs = [publish(publisher, user.id, goal_achieved(i)) for i in range(4)]
    watching = Watching(stub, user, after=str(seqs[0]))
    try:
        assert ids(watching.events(3)) == seqs[1:]
        later = publish(publisher, user.id, streak(2))
        assert ids(watching.events(1)) == [later]
        watching.quiet_for(1.5)  # nothing twice
    finally:
        watching.close()
    # Resuming after the last one: nothing but what comes next.
    again = Watching(stub, user, after=str(later))
    try:
        newest = publish(publisher, user.id, streak(3))
        assert ids(again.events(1)) == [newest]
    finally:
        again.close()


def test_events_stored_during_the_replay_come_once_and_in_order(
    stub: events_pb2_grpc.EventServiceStub, publisher: NatsPublisher, user: UserSession
) -> None:
    before = [publish(publisher, user.id, goal_achieved(i)) for i in range(400)]
    during: list[int] = []
    watching = Watching(stub, user, after=str(before[0]))
    # Published while the watcher is being replayed the 399 missed ones.
    writer = threading.Thread(
        target=lambda: during.extend(publish(publisher, user.id, streak(i)) for i in range(100))
    )
    writer.start()
    try:
        got = watching.events(399 + 100, timeout=20)
        writer.join()
        assert ids(got) == before[1:] + during
        watching.quiet_for(1.5)
    finally:
        writer.join()
        watching.close()


def test_heartbeats_carry_the_position_and_resuming_after_one_misses_nothing(
    stub: events_pb2_grpc.EventServiceStub, publisher: NatsPublisher, user: UserSession
) -> None:
    old = publish(publisher, user.id, goal_achieved(1))
    watching = Watching(stub, user)  # live only
    try:
        beat = watching.next(heartbeats=True)
        assert beat.type == "HEARTBEAT" and beat.HasField("heartbeat")
        start = int(beat.id)
        assert start >= old  # the stream's position when the watch began
        live = publish(publisher, user.id, streak(5))
        assert ids([watching.next()]) == [live]
        beat = watching.next(heartbeats=True)
        assert beat.type == "HEARTBEAT" and beat.id == str(live)
    finally:
        watching.close()
    missed = publish(publisher, user.id, streak(6))
    resumed = Watching(stub, user, after=beat.id)
    try:
        assert ids([resumed.next()]) == [missed]
    finally:
        resumed.close()
    from_start = Watching(stub, user, after=str(start))
    try:
        assert ids(from_start.events(2)) == [live, missed]  # never `old`: before the watch
    finally:
        from_start.close()


def test_another_users_events_are_never_seen(
    accounts: RunningMonolith,
    stub: events_pb2_grpc.EventServiceStub,
    publisher: NatsPublisher,
    user: UserSession,
) -> None:
    other = register(accounts.client, "Other")
    mine, theirs = Watching(stub, user), Watching(stub, other)
    try:
        their_seq = publish(publisher, other.id, goal_achieved(99))
        my_seq = publish(publisher, user.id, goal_achieved(1))
        assert ids([mine.next()]) == [my_seq]
        assert ids([theirs.next()]) == [their_seq]
        mine.quiet_for(1.5)
    finally:
        mine.close()
        theirs.close()
    # Resuming after the other user's event id replays only the caller's own events.
    resumed = Watching(stub, user, after=str(their_seq - 1))
    try:
        assert ids([resumed.next()]) == [my_seq]
        resumed.quiet_for(1.5)
    finally:
        resumed.close()


def test_an_event_reaches_watchers_on_every_instance(
    key_dir: Path,
    bus: NatsServer,
    accounts: RunningMonolith,
    stub: events_pb2_grpc.EventServiceStub,
    publisher: NatsPublisher,
    user: UserSession,
) -> None:
    with running_realtime(_env(key_dir, bus, accounts), features=("events",)) as second:
        other_stub = events_pb2_grpc.EventServiceStub(second.channel)
        here, there = Watching(stub, user), Watching(other_stub, user)
        try:
            seq = publish(publisher, user.id, goal_achieved(3))
            assert ids([here.next()]) == ids([there.next()]) == [seq]
        finally:
            here.close()
            there.close()


# -- errors and limits ----------------------------------------------------------------------


def test_a_missing_invalid_expired_or_revoked_token_is_unauthenticated(
    accounts: RunningMonolith,
    key_dir: Path,
    stub: events_pb2_grpc.EventServiceStub,
    user: UserSession,
) -> None:
    request = events_pb2.WatchEventsRequest()
    err = expect_error_code(stub.WatchEvents(request))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    garbage = (("authorization", "Bearer not-a-jwt"),)
    err = expect_error_code(stub.WatchEvents(request, metadata=garbage))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MALFORMED")
    now = int(time.time())
    expired = jwt.encode(
        token_claims(user.id, iat=now - 3600, nbf=now - 3600, exp=now - 600),
        load_private_key(Env({"FITCO_DATA_DIR": str(key_dir)})),
        algorithm="EdDSA",
    )
    err = expect_error_code(
        stub.WatchEvents(request, metadata=(("authorization", f"Bearer {expired}"),))
    )
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
    accounts.client.users.Logout(user_pb2.LogoutRequest(), metadata=user.md)
    deadline = time.monotonic() + 5  # the token version cache keeps an answer for 2 s
    while (refusal := refused(stub, user)) is None:
        assert time.monotonic() < deadline, "a revoked token still watches"
        time.sleep(0.2)
    err = refusal
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


def test_invalid_and_future_ids_are_invalid_arguments(
    stub: events_pb2_grpc.EventServiceStub, publisher: NatsPublisher, user: UserSession
) -> None:
    last = publish(publisher, user.id, goal_achieved(1))

    def first(after: str) -> Event:
        request = events_pb2.WatchEventsRequest(after_event_id=after)
        return next(stub.WatchEvents(request, metadata=user.md))

    for bad in ("abc", "-1", "1.5", "1" * 21):
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, partial(first, bad))
        assert "after_event_id" in field_violations(err), bad
    for future in (last + 1000, 10**19):
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, partial(first, str(future)))
        assert field_violations(err) == {"after_event_id": "is not an id this service gave"}


def test_ids_whose_successors_were_dropped_by_the_per_user_cap_are_expired(
    stub: events_pb2_grpc.EventServiceStub, publisher: NatsPublisher, user: UserSession
) -> None:
    seqs = [publish(publisher, user.id, streak(i)) for i in range(EVENTS_PER_USER + 2)]
    # The first two were dropped to keep 1,000: after the first, the second may be missing.
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: next(
            stub.WatchEvents(
                events_pb2.WatchEventsRequest(after_event_id=str(seqs[0])), metadata=user.md
            )
        ),
    )
    assert error_reason(err) == "EVENTS_EXPIRED"
    # After the second, nothing is missing: the 1,000 kept ones come back.
    watching = Watching(stub, user, after=str(seqs[1]))
    try:
        assert ids(watching.events(EVENTS_PER_USER, timeout=30)) == seqs[2:]
    finally:
        watching.close()


def test_a_sixth_stream_of_a_user_is_refused_until_one_closes(
    stub: events_pb2_grpc.EventServiceStub, user: UserSession
) -> None:
    open_ = [Watching(stub, user) for _ in range(5)]
    try:
        err = expect_error_code(stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=user.md))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(err) == "TOO_MANY_WATCHERS"
        open_.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the cancelled stream
            try:
                open_.append(Watching(stub, user))
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        for watching in open_:
            watching.close()


def test_failures_are_unavailable_or_internal_without_leaking(
    realtime: RunningRealtime,
    stub: events_pb2_grpc.EventServiceStub,
    user: UserSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = realtime.app.features["events"].log  # type: ignore[attr-defined]

    async def bus_down() -> None:
        raise nats.errors.TimeoutError

    async def bug() -> None:
        raise RuntimeError("secret detail: password=hunter2")

    monkeypatch.setattr(log, "state", bus_down)
    err = expect_error_code(stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=user.md))
    assert (err.code(), error_reason(err)) == (
        grpc.StatusCode.UNAVAILABLE,
        "EVENT_BUS_UNAVAILABLE",
    )
    monkeypatch.setattr(log, "state", bug)
    md = (*user.md, ("x-request-id", "req-events-1"))
    err = expect_error_code(stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=md))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error (request id req-events-1)"
    # The refused watches were let go: the user's five streams are all there.
    monkeypatch.undo()
    open_ = [Watching(stub, user) for _ in range(5)]
    for watching in open_:
        watching.close()


def test_a_client_that_stops_reading_is_closed_slow_consumer_and_resumes(
    key_dir: Path, bus: NatsServer, accounts: RunningMonolith, user: UserSession
) -> None:
    env = _env(key_dir, bus, accounts, REALTIME_WATCHER_QUEUE="4", REALTIME_STUCK_SECONDS="0.5")
    with (
        running_realtime(env, features=("events",)) as realtime,
        nats_publisher(bus.url) as pub,
    ):
        # A client that grants the server little room: what it does not read stays on the
        # server (without BDP probing the window does not grow).
        narrow = grpc.insecure_channel(
            realtime.target,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)],
        )
        stub = events_pb2_grpc.EventServiceStub(narrow)
        call = stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=user.md, timeout=20)
        call.initial_metadata()
        bulky = "x" * 3000
        seqs = []
        for n in range(300):
            event = Event(
                type="PERSONAL_RECORD",
                personal_record=events_pb2.PersonalRecord(exercise_id=n, exercise_name=bulky),
            )
            seqs.append(publish(pub, user.id, event))
        time.sleep(1.5)
        # Stuck writing to a client that reads nothing, the stream could not close itself: it
        # was ended from outside, and its slot is free although the client has not read yet.
        dispatcher = realtime.app.features["events"].dispatcher  # type: ignore[attr-defined]
        assert dispatcher.watcher_count == 0
        got: list[Event] = []
        with pytest.raises(grpc.RpcError) as info:
            read_into(got, call)  # reading only now
        err = cast("grpc.Call", info.value)
        assert (err.code(), error_reason(err)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "SLOW_CONSUMER",
        )
        received = [e for e in got if e.type != "HEARTBEAT"]
        assert ids(received) == seqs[: len(received)] and len(received) < len(seqs)
        last = received[-1].id if received else str(seqs[0] - 1)
        resumed = Watching(stub, user, after=last)
        try:
            rest = resumed.events(len(seqs) - len(received), timeout=30)
            assert ids(received + rest) == seqs
        finally:
            resumed.close()
            narrow.close()


# -- the bus failing, the server stopping ----------------------------------------------------


def test_a_watcher_survives_a_nats_restart_and_gets_what_was_stored_meanwhile(
    tmp_path: Path, key_dir: Path, accounts: RunningMonolith, user: UserSession
) -> None:
    server = start_nats(tmp_path / "nats")
    port = server.port
    try:
        # Reconnecting every 2 s: the events below are stored before it is back.
        env = realtime_env(
            key_dir,
            server.url,
            monolith_target=accounts.target,
            REALTIME_NATS_RECONNECT_SECONDS="2",
        )
        with running_realtime(env, features=("events",)) as realtime:
            stub = events_pb2_grpc.EventServiceStub(realtime.channel)
            with nats_publisher(server.url) as pub:
                first = publish(pub, user.id, goal_achieved(1))
            watching = Watching(stub, user)
            try:
                with nats_publisher(server.url) as pub:
                    live = publish(pub, user.id, streak(1))
                assert ids([watching.next()]) == [live]
                resyncs = RESYNCS.labels("reconnect")._value.get()
                server.stop()
                assert wait_for_health(realtime, health_pb2.HealthCheckResponse.NOT_SERVING)
                server = start_nats(tmp_path / "nats", port)
                # Stored before the realtime service is back: their live copies reach nobody;
                # the resync after the reconnect reads them from the log.
                with nats_publisher(server.url) as pub:
                    meanwhile = [publish(pub, user.id, streak(i)) for i in (2, 3)]
                    assert ids(watching.events(2, timeout=15)) == meanwhile
                    after = publish(pub, user.id, streak(4))
                    assert ids([watching.next()]) == [after]
                assert RESYNCS.labels("reconnect")._value.get() > resyncs
                assert wait_for_health(realtime, health_pb2.HealthCheckResponse.SERVING)
                watching.quiet_for(1.5)
                assert first < live < meanwhile[0]  # one store: ids go on after the restart
            finally:
                watching.close()
    finally:
        server.stop()


def test_ids_older_than_the_stream_keeps_are_expired(
    tmp_path: Path, key_dir: Path, accounts: RunningMonolith, user: UserSession
) -> None:
    server = start_nats(tmp_path / "nats")
    try:
        with (
            running_realtime(
                realtime_env(key_dir, server.url, monolith_target=accounts.target),
                features=("events",),
            ) as realtime,
            nats_publisher(server.url) as pub,
        ):
            stub = events_pb2_grpc.EventServiceStub(realtime.channel)
            seqs = [publish(pub, user.id, streak(i)) for i in range(3)]
            # What max_age does to old messages: everything before the third is gone.
            pub.call(pub.js.purge_stream(EVENTS_STREAM, seq=seqs[2]))
            err = expect_error(
                grpc.StatusCode.FAILED_PRECONDITION,
                lambda: next(
                    stub.WatchEvents(
                        events_pb2.WatchEventsRequest(after_event_id=str(seqs[0])),
                        metadata=user.md,
                    )
                ),
            )
            assert error_reason(err) == "EVENTS_EXPIRED"
            watching = Watching(stub, user, after=str(seqs[1]))
            try:
                assert ids(watching.events(1)) == [seqs[2]]
            finally:
                watching.close()
    finally:
        server.stop()


def test_stopping_the_server_ends_streams_with_ok(
    key_dir: Path, bus: NatsServer, accounts: RunningMonolith, user: UserSession
) -> None:
    with running_realtime(_env(key_dir, bus, accounts), features=("events",)) as realtime:
        watching = Watching(events_pb2_grpc.EventServiceStub(realtime.channel), user)
        realtime.loop.run(realtime.app.stop())
        assert watching.end() == grpc.StatusCode.OK


def test_a_stream_ends_with_ok_after_its_maximum_duration(
    key_dir: Path, bus: NatsServer, accounts: RunningMonolith, user: UserSession
) -> None:
    env = _env(key_dir, bus, accounts, REALTIME_STREAM_MAX_SECONDS="1.5")
    with running_realtime(env, features=("events",)) as realtime:
        watching = Watching(events_pb2_grpc.EventServiceStub(realtime.channel), user)
        started = time.monotonic()
        assert watching.end() == grpc.StatusCode.OK
        assert 1.4 < time.monotonic() - started < 5
