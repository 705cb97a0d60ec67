"""Live group sessions: the realtime service in process (groups feature) with a monolith for
accounts and tokens, real NATS and a real database (SQLite and PostgreSQL).

REST: create, list, get, join (by code, idempotent, GROUP_FULL), leave (OWNER_CANNOT_LEAVE),
recent messages with paging; others' groups are NOT_FOUND; following the owner's WOD (and no
group when the coach is down). Connect: welcome, three members seeing chat and cues in one
order, owner-only cues, leave / half-close (LEFT), a dropped or killed member (DROPPED), idle
(IDLE), rate limits and flooding, replacement (REPLACED), the connections a user may hold,
logged sets from the activity subject (SET_LOGGED, once), a gap filled from the database,
two instances sharing the groups, and a shutdown announced to the others.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import grpc
import pytest
from fitco.coach.v1 import coach_pb2
from fitco.groups.v1 import groups_pb2
from fitco.training.v1 import training_pb2, training_pb2_grpc
from google.protobuf import timestamp_pb2
from sqlalchemy import update

from fitcore.clients import code_of
from fitcore.clock import FixedClock
from fitcore.eventbus import ACTIVITY_HEADER, SET_LOGGED, activity_subject
from realtime.groups import messages
from realtime.groups.models import GroupMemberRow
from realtime.migrations import MIGRATIONS
from tests.conftest import (
    Databases,
    RunningMonolith,
    UserSession,
    make_env,
    onboard,
    running_monolith,
)
from tests.natsfix import NatsServer, start_nats
from tests.rpc import error_reason, expect_error, field_violations
from tests.service.group_members import Ended, GroupsService, Member, running_groups, wait_for
from tests.service.inproc import running_coach
from tests.service.realtime_fixtures import nats_publisher


@pytest.fixture(scope="module")
def realtime_url(databases: Databases) -> str:
    url = databases.new()
    MIGRATIONS.upgrade(url)
    return url


@pytest.fixture
def svc(
    monolith: RunningMonolith, key_dir: Path, nats_server: NatsServer, realtime_url: str
) -> Iterator[GroupsService]:
    # No coach answers here (a test that needs one starts it).
    with running_groups(
        monolith, key_dir, nats_server.url, realtime_url, FITCO_COACH_TARGET="127.0.0.1:1"
    ) as running:
        yield running


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


# -- REST --------------------------------------------------------------------------------------


def test_create_join_list_get_and_leave(svc: GroupsService) -> None:
    owner, sam, tia = svc.user("Olga"), svc.user("Sam"), svc.user("Tia")
    group = svc.create(owner, "Lunch lifts")
    assert (group.role, group.member_count, group.max_members) == ("OWNER", 1, 20)
    assert group.owner_user_id == owner.id and not group.HasField("wod")
    assert len(group.invitation_code.replace("-", "")) >= 10
    later = svc.create(owner, "Evening run", starts_at=_ts(datetime.now(UTC) + timedelta(days=2)))

    # Codes are read case-insensitively; joining twice changes nothing.
    joined = svc.join(sam, group.invitation_code.lower(), "Sam")
    assert (joined.id, joined.role, joined.member_count) == (group.id, "MEMBER", 2)
    again = svc.join(sam, group.invitation_code, "Other name")
    assert (again.id, again.member_count) == (group.id, 2)
    svc.join(tia, group.invitation_code)

    # Each sees only their groups, newest start first.
    mine = svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=owner.md).groups
    assert [g.id for g in mine] == [later.id, group.id]
    assert [
        g.id for g in svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=sam.md).groups
    ] == [group.id]

    got = svc.stub.GetGroup(groups_pb2.GetGroupRequest(group_id=group.id), metadata=tia.md)
    assert (got.group.role, got.group.member_count, got.group.invitation_code) == (
        "MEMBER",
        3,
        group.invitation_code,
    )
    # In the order they joined; "" is "Member N" (the N-th to join).
    assert [(m.user_id, m.display_name, m.role, m.online) for m in got.members] == [
        (owner.id, "Member 1", "OWNER", False),
        (sam.id, "Sam", "MEMBER", False),
        (tia.id, "Member 3", "MEMBER", False),
    ]

    svc.stub.LeaveGroup(groups_pb2.LeaveGroupRequest(group_id=group.id), metadata=sam.md)
    err = expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: svc.stub.GetGroup(groups_pb2.GetGroupRequest(group_id=group.id), metadata=sam.md),
    )
    assert error_reason(err) == "GROUP_NOT_FOUND"
    assert svc.members(owner, group.id).keys() == {owner.id, tia.id}
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: svc.stub.LeaveGroup(
            groups_pb2.LeaveGroupRequest(group_id=group.id), metadata=owner.md
        ),
    )
    assert error_reason(err) == "OWNER_CANNOT_LEAVE" and "owner" in (err.details() or "")


def test_refusals(svc: GroupsService) -> None:
    owner, other = svc.user(), svc.user()
    group = svc.create(owner)
    err = expect_error(grpc.StatusCode.NOT_FOUND, lambda: svc.join(other, "NOT-THE-CODE"))
    assert error_reason(err) == "INVITATION_NOT_FOUND"
    past = _ts(datetime.now(UTC) - timedelta(hours=1))
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: svc.create(owner, "x", starts_at=past)
    )
    assert set(field_violations(err)) == {"starts_at"}
    far = _ts(datetime.now(UTC) + timedelta(days=31))
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: svc.create(owner, "   ", starts_at=far)
    )
    assert set(field_violations(err)) == {"title", "starts_at"}
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: svc.create(owner, "x" * 101))
    assert set(field_violations(err)) == {"title"}
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: svc.join(other, "bad code!"))
    assert set(field_violations(err)) == {"invitation_code"}
    # Not a member: exactly like a group that does not exist.
    for group_id in (group.id, 10**12):
        err = expect_error(grpc.StatusCode.NOT_FOUND, partial(svc.messages, other, group_id))
        assert error_reason(err) == "GROUP_NOT_FOUND"


def test_a_group_is_full_at_twenty(svc: GroupsService) -> None:
    owner = svc.user("Owner")
    group = svc.create(owner)
    users = [svc.user(f"U{i}") for i in range(20)]

    def join(user: UserSession) -> grpc.StatusCode:
        try:
            svc.join(user, group.invitation_code)
        except grpc.RpcError as exc:
            return code_of(exc)
        return grpc.StatusCode.OK

    # Concurrent joins cannot pass the limit: 19 get in, one is refused.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(join, users))
    assert codes.count(grpc.StatusCode.OK) == 19
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == 1
    late = users[codes.index(grpc.StatusCode.FAILED_PRECONDITION)]
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION, lambda: svc.join(late, group.invitation_code)
    )
    assert error_reason(err) == "GROUP_FULL"
    assert len(svc.members(owner, group.id)) == 20
    # A member already in gets the group as it is (safe to retry), full or not.
    assert (
        svc.join(users[codes.index(grpc.StatusCode.OK)], group.invitation_code).member_count == 20
    )


def test_recent_messages_newest_first_with_paging(svc: GroupsService) -> None:
    owner = svc.user()
    group = svc.create(owner)
    member = svc.connect(owner, group.id)
    member.welcome()
    for i in range(7):
        member.chat(f"m{i}")
    sent = member.messages(7)
    member.half_close()
    assert member.ended().code == grpc.StatusCode.OK

    everything = svc.messages(owner, group.id)  # page_size 0: 50
    assert [m.seq for m in everything] == list(range(9, 0, -1))  # joined, 7 chats, left
    assert everything[0].member_left.reason == "LEFT"
    assert [m.chat.text for m in everything[1:8]] == [f"m{i}" for i in range(6, -1, -1)]
    assert everything[1:8] == sent[::-1]
    page = svc.messages(owner, group.id, page_size=3)
    assert [m.seq for m in page] == [9, 8, 7]
    page = svc.messages(owner, group.id, page_size=3, before_seq=page[-1].seq)
    assert [m.seq for m in page] == [6, 5, 4]
    assert [m.seq for m in svc.messages(owner, group.id, page_size=3, before_seq=2)] == [1]
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: svc.messages(owner, group.id, page_size=101)
    )
    assert set(field_violations(err)) == {"page_size"}


def test_only_the_last_500_messages_are_kept(svc: GroupsService) -> None:
    owner = svc.user()
    group = svc.create(owner)
    joined = svc.feature.live.connect(owner.id, group.id, "c-kept")
    for i in range(505):
        message = messages.new_message(messages.CHAT, 0, "", datetime.now(UTC))
        message.chat.text = str(i)
        svc.feature.live.post(owner.id, group.id, "c-kept", message)
    assert joined.seq == 1
    oldest = svc.messages(owner, group.id, page_size=100, before_seq=107)
    assert [m.seq for m in oldest] == list(range(106, 6, -1))  # 7..506 are kept
    assert svc.messages(owner, group.id, before_seq=7) == []


def test_following_the_owners_wod(
    svc: GroupsService,
    monolith: RunningMonolith,
    key_dir: Path,
    nats_server: NatsServer,
    realtime_url: str,
) -> None:
    owner = svc.user("Olga")
    onboard(monolith.client, owner)
    with running_coach(monolith) as coach:
        env = {"FITCO_COACH_TARGET": f"127.0.0.1:{coach.app.port}"}
        with running_groups(monolith, key_dir, nats_server.url, realtime_url, **env) as with_coach:
            group = with_coach.create(owner, follow_wod=True)
            wod = coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=owner.md)
    assert group.wod.date == wod.day
    assert [(e.exercise_id, e.name, e.sets, e.reps, e.weight) for e in group.wod.exercises] == [
        (e.id, e.name, e.sets, e.suggested_reps, e.suggested_weight) for e in wod.exercises
    ]
    assert len(group.wod.exercises) >= 3
    # The snapshot stays the group's, coach or not.
    got = svc.stub.GetGroup(groups_pb2.GetGroupRequest(group_id=group.id), metadata=owner.md)
    assert got.group.wod == group.wod

    # No coach (this service's FITCO_COACH_TARGET answers nothing): no group, half or whole.
    before = svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=owner.md).groups
    err = expect_error(grpc.StatusCode.UNAVAILABLE, lambda: svc.create(owner, follow_wod=True))
    assert error_reason(err) == "COACH_UNAVAILABLE"
    after = svc.stub.ListGroups(groups_pb2.ListGroupsRequest(), metadata=owner.md).groups
    assert after == before


# -- Connect -----------------------------------------------------------------------------------


def test_three_members_see_one_order(svc: GroupsService, monolith: RunningMonolith) -> None:
    owner, sam, tia = svc.user("Olga"), svc.user("Sam"), svc.user("Tia")
    group = svc.group_of(owner, sam, tia)
    a = svc.connect(owner, group.id)
    welcome = a.welcome()
    assert welcome.group.id == group.id and welcome.group.role == "OWNER"
    assert [(m.user_id, m.online) for m in welcome.members] == [
        (owner.id, True),
        (sam.id, False),
        (tia.id, False),
    ]
    assert [(m.type, m.user_id, m.display_name) for m in welcome.recent] == [
        ("MEMBER_JOINED", owner.id, "Owner")
    ]
    b = svc.connect(sam, group.id)
    assert [m.user_id for m in b.welcome().members if m.online] == [owner.id, sam.id]
    c = svc.connect(tia, group.id)
    third = c.welcome()
    assert [m.type for m in third.recent] == ["MEMBER_JOINED"] * 3
    assert [m.seq for m in third.recent] == [1, 2, 3]
    assert [m.user_id for m in a.messages(2)] == [sam.id, tia.id]
    assert b.message().user_id == tia.id

    members = (a, b, c)
    with ThreadPoolExecutor(3) as pool:  # all at once, from the three of them
        list(pool.map(lambda m: [m.chat(f"{m.user.id}:{i}") for i in range(5)], members))
    a.cue(-1, "next: squats")
    seen = [m.messages(16) for m in members]
    assert seen[0] == seen[1] == seen[2]
    assert [m.seq for m in seen[0]] == list(range(4, 20))
    for member in members:  # each member's own messages in the order they sent them
        texts = [m.chat.text for m in seen[0] if m.user_id == member.user.id and m.type == "CHAT"]
        assert texts == [f"{member.user.id}:{i}" for i in range(5)]
    (cue,) = [m for m in seen[0] if m.type == "CUE"]
    assert (cue.type, cue.user_id, cue.display_name, cue.cue.text) == (
        "CUE",
        owner.id,
        "Owner",
        "next: squats",
    )

    # Cues are the owner's; what breaks a rule is refused to the sender only.
    b.cue(-1, "me too")
    assert b.rejected().reason == "OWNER_ONLY"
    a.cue(0, "first exercise")  # this group follows no WOD
    assert a.rejected().reason == "INVALID_ARGUMENT"
    b.chat("x" * 501)
    assert b.rejected().reason == "INVALID_ARGUMENT"
    b.send(hello=groups_pb2.Hello(group_id=group.id))
    assert b.rejected().reason == "ALREADY_CONNECTED"
    b.send(ping=groups_pb2.Ping())
    assert all(m.quiet() for m in members)
    online = svc.members(tia, group.id)
    assert all(m.online for m in online.values())
    for member in members:
        member.close()


def test_leave_half_close_and_a_dropped_connection(svc: GroupsService) -> None:
    owner, sam, tia = svc.user(), svc.user(), svc.user()
    group = svc.group_of(owner, sam, tia)
    a = svc.connect(owner, group.id)
    a.welcome()

    def arrives(user: UserSession) -> Member:
        member = svc.connect(user, group.id)
        member.welcome()
        assert a.message().type == "MEMBER_JOINED"
        return member

    def departure() -> tuple[int, str]:
        left = a.message()
        assert left.type == "MEMBER_LEFT"
        return left.user_id, left.member_left.reason

    b = arrives(sam)
    b.send(leave=groups_pb2.Leave())
    assert departure() == (sam.id, "LEFT")
    assert b.ended().code == grpc.StatusCode.OK
    b = arrives(sam)
    b.half_close()
    assert departure() == (sam.id, "LEFT")
    assert b.ended().code == grpc.StatusCode.OK
    c = arrives(tia)
    c.close()  # the channel goes away: the RPC is cancelled
    assert departure() == (tia.id, "DROPPED")
    assert not svc.members(owner, group.id)[tia.id].online
    # LeaveGroup while connected: the connection ends, announced as LEFT.
    b = arrives(sam)
    svc.stub.LeaveGroup(groups_pb2.LeaveGroupRequest(group_id=group.id), metadata=sam.md)
    assert departure() == (sam.id, "LEFT")
    left = b.message()
    assert (left.user_id, left.member_left.reason) == (sam.id, "LEFT")
    assert b.ended().code == grpc.StatusCode.OK
    a.close()


_KILLABLE = """
import sys, time, grpc
from fitco.groups.v1 import groups_pb2, groups_pb2_grpc
target, token, group_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
def requests():
    yield groups_pb2.ConnectRequest(hello=groups_pb2.Hello(group_id=group_id))
    time.sleep(3600)
stream = groups_pb2_grpc.GroupServiceStub(grpc.insecure_channel(target)).Connect(
    requests(), metadata=(("authorization", "Bearer " + token),))
for response in stream:
    print(response.WhichOneof("kind"), flush=True)
"""


def test_a_killed_member_is_announced_dropped(svc: GroupsService) -> None:
    owner, sam = svc.user(), svc.user()
    group = svc.group_of(owner, sam)
    a = svc.connect(owner, group.id)
    a.welcome()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, svc.rt.target, sam.token, str(group.id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "welcome"
        assert a.message().type == "MEMBER_JOINED"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    left = a.message(timeout=15)
    assert (left.type, left.user_id, left.member_left.reason) == ("MEMBER_LEFT", sam.id, "DROPPED")
    a.close()


def test_an_idle_connection_is_closed(
    monolith: RunningMonolith, key_dir: Path, nats_server: NatsServer, realtime_url: str
) -> None:
    with running_groups(
        monolith, key_dir, nats_server.url, realtime_url, REALTIME_GROUP_IDLE_SECONDS="1"
    ) as svc:
        owner, sam = svc.user(), svc.user()
        group = svc.group_of(owner, sam)
        a = svc.connect(owner, group.id)
        a.welcome()
        b = svc.connect(sam, group.id)
        b.welcome()
        assert a.message().type == "MEMBER_JOINED"
        started = time.monotonic()
        for _ in range(5):  # the owner keeps pinging, Sam says nothing
            a.send(ping=groups_pb2.Ping())
            time.sleep(0.3)
        ended = b.ended(timeout=5)
        assert (ended.code, ended.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "IDLE")
        assert time.monotonic() - started < 3
        left = a.message()
        assert (left.user_id, left.member_left.reason) == (sam.id, "IDLE")
        assert a.quiet(0.5)  # still connected
        # A connection that never says hello is closed too (no announcement: never joined).
        silent = Member(svc.rt.target, sam, None)
        assert silent.ended(timeout=5).code == grpc.StatusCode.DEADLINE_EXCEEDED
        silent.close()
        a.close()


def test_rate_limit_then_disconnected_for_flooding(svc: GroupsService) -> None:
    owner, sam = svc.user(), svc.user()
    group = svc.group_of(owner, sam)
    a = svc.connect(owner, group.id)
    a.welcome()
    b = svc.connect(sam, group.id)
    b.welcome()
    assert a.message().type == "MEMBER_JOINED"
    started = time.monotonic()
    for i in range(60):
        b.chat(f"spam {i}")
    rejections = []
    while not isinstance(got := b.next(), Ended):
        if got.HasField("rejected"):
            rejections.append(got.rejected.reason)
    elapsed = time.monotonic() - started
    assert (got.code, got.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert rejections and set(rejections) == {"RATE_LIMITED"}
    # The others got what was accepted: a burst of 10, then 5 a second.
    chats = []
    while (message := a.message()).type == "CHAT":
        chats.append(int(message.chat.text.removeprefix("spam ")))
    assert 10 <= len(chats) <= 10 + 5 * elapsed + 1
    assert chats[:10] == list(range(10)) and chats == sorted(chats)
    assert (message.user_id, message.member_left.reason) == (sam.id, "DROPPED")
    a.close()


def test_a_second_connection_replaces_the_first(svc: GroupsService) -> None:
    owner, sam = svc.user(), svc.user()
    group = svc.group_of(owner, sam)
    a = svc.connect(owner, group.id)
    a.welcome()
    first = svc.connect(sam, group.id)
    first.welcome()
    assert a.message().type == "MEMBER_JOINED"
    second = svc.connect(sam, group.id)
    recent = second.welcome().recent
    assert [(m.type, m.user_id, m.member_left.reason) for m in recent[-2:]] == [
        ("MEMBER_LEFT", sam.id, "REPLACED"),
        ("MEMBER_JOINED", sam.id, ""),
    ]
    old = first.message()
    assert (old.type, old.user_id, old.member_left.reason) == ("MEMBER_LEFT", sam.id, "REPLACED")
    assert first.ended().code == grpc.StatusCode.OK
    assert [(m.type, m.member_left.reason) for m in a.messages(2)] == [
        ("MEMBER_LEFT", "REPLACED"),
        ("MEMBER_JOINED", ""),
    ]
    second.chat("still here")
    assert a.message().chat.text == "still here"
    assert svc.members(owner, group.id)[sam.id].online
    a.close()
    second.close()


def test_three_connections_per_user(svc: GroupsService) -> None:
    owner = svc.user()
    groups = [svc.create(owner, f"G{i}") for i in range(4)]
    held = [svc.connect(owner, g.id) for g in groups[:3]]
    for member in held:
        member.welcome()
    refused = svc.connect(owner, groups[3].id)
    ended = refused.ended()
    refused.close()
    assert (ended.code, ended.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_CONNECTIONS",
    )
    # Connecting again to a group one holds replaces, it does not count twice.
    again = svc.connect(owner, groups[0].id)
    again.welcome()
    held[1].half_close()
    assert held[1].ended().code == grpc.StatusCode.OK
    fourth = svc.connect(owner, groups[3].id)
    assert fourth.welcome().group.id == groups[3].id
    for member in (again, held[2], fourth):
        member.close()


def test_logged_sets_reach_the_groups_a_member_is_connected_to(
    svc: GroupsService, nats_server: NatsServer
) -> None:
    owner, sam = svc.user(), svc.user()
    connected, not_connected = svc.group_of(owner, sam), svc.group_of(owner, sam)
    a = svc.connect(owner, connected.id)
    a.welcome()
    b = svc.connect(sam, connected.id)
    b.welcome()
    assert a.message().type == "MEMBER_JOINED"
    logged = groups_pb2.SetLogged(
        session_id=3, set_id=41, exercise_id=1, exercise_name="Squat", reps=8, weight=60.0
    )
    with nats_publisher(nats_server.url) as bus:
        headers = {ACTIVITY_HEADER: SET_LOGGED}
        bus.publish_core(activity_subject(sam.id), logged.SerializeToString(), headers)
        got = a.message()
        assert (got.type, got.user_id, got.set_logged) == ("SET_LOGGED", sam.id, logged)
        assert b.message() == got
        # Delivered again (a relay's retry): stored once. Without the header: not a set.
        bus.publish_core(activity_subject(sam.id), logged.SerializeToString(), headers)
        bus.publish_core(activity_subject(sam.id), logged.SerializeToString(), {})
        assert a.quiet(0.5)
    assert [m.type for m in svc.messages(owner, connected.id)].count("SET_LOGGED") == 1
    assert svc.messages(owner, not_connected.id) == []
    a.close()
    b.close()


def test_a_set_logged_through_training_reaches_the_group(
    migrated_url: str,
    clock: FixedClock,
    key_dir: Path,
    nats_server: NatsServer,
    realtime_url: str,
) -> None:
    """The whole way: TrainingService.LogSet on a monolith whose outbox relay publishes to
    the bus, the groups of the connected member get the set."""
    env = make_env(key_dir, migrated_url, FITCO_NATS_URL=nats_server.url)
    with running_monolith(env, clock, key_dir) as producer:
        producer.app.start_background()  # the outbox relay
        with running_groups(producer, key_dir, nats_server.url, realtime_url) as svc:
            owner, sam = svc.user(), svc.user()
            group = svc.group_of(owner, sam)
            a = svc.connect(owner, group.id)
            a.welcome()
            b = svc.connect(sam, group.id)
            b.welcome()
            assert a.message().type == "MEMBER_JOINED"
            training = training_pb2_grpc.TrainingServiceStub(producer.client.channel)
            session = training.StartSession(
                training_pb2.StartSessionRequest(), metadata=sam.md
            ).session
            logged = training.LogSet(
                training_pb2.LogSetRequest(
                    session_id=session.id, exercise_id=1, reps=8, weight=40, client_set_id="s1"
                ),
                metadata=sam.md,
            ).set
            got = a.message()
            assert (got.type, got.user_id, got.display_name) == ("SET_LOGGED", sam.id, "M1")
            assert (got.set_logged.set_id, got.set_logged.session_id) == (logged.id, session.id)
            assert (got.set_logged.reps, got.set_logged.weight) == (8, 40)
            assert got.set_logged.exercise_name
            assert b.message() == got
            a.close()
            b.close()


def test_a_gap_is_read_from_the_database(svc: GroupsService) -> None:
    """A message the bus lost (stored, never published) reaches members before the next."""
    owner, sam = svc.user(), svc.user()
    group = svc.group_of(owner, sam)
    a = svc.connect(owner, group.id)
    a.welcome()
    b = svc.connect(sam, group.id)
    b.welcome()
    assert a.message().type == "MEMBER_JOINED"
    held = svc.members(owner, group.id)
    assert held[owner.id].online
    lost = messages.new_message(messages.CHAT, 0, "", datetime.now(UTC))
    lost.chat.text = "lost on the way"
    connection = _connection_id(svc, owner.id, group.id)
    svc.feature.live.post(owner.id, group.id, connection, lost)  # stored, not published
    assert b.quiet(0.3)
    a.chat("after it")
    got = b.messages(2)
    assert [m.chat.text for m in got] == ["lost on the way", "after it"]
    assert got[1].seq == got[0].seq + 1
    assert [m.chat.text for m in a.messages(2)] == ["lost on the way", "after it"]
    a.close()
    b.close()


def test_a_lost_last_message_arrives_all_the_same(
    monolith: RunningMonolith, key_dir: Path, nats_server: NatsServer, realtime_url: str
) -> None:
    """A message the bus lost with no later one to reveal the gap: each instance catches its
    members up from the database every REALTIME_GROUP_PRESENCE_SECONDS."""
    with running_groups(
        monolith, key_dir, nats_server.url, realtime_url, REALTIME_GROUP_PRESENCE_SECONDS="0.2"
    ) as svc:
        owner, sam = svc.user(), svc.user()
        group = svc.group_of(owner, sam)
        a = svc.connect(owner, group.id)
        a.welcome()
        b = svc.connect(sam, group.id)
        b.welcome()
        assert a.message().type == "MEMBER_JOINED"
        lost = messages.new_message(messages.CHAT, 0, "", datetime.now(UTC))
        lost.chat.text = "the last word"
        stored = svc.feature.live.post(
            owner.id, group.id, _connection_id(svc, owner.id, group.id), lost
        )
        assert b.message(timeout=3) == stored
        assert a.message(timeout=3) == stored
        assert b.quiet(0.5)  # once
        a.close()
        b.close()


def test_members_catch_up_as_soon_as_the_bus_is_back(
    monolith: RunningMonolith, key_dir: Path, tmp_path: Path, realtime_url: str
) -> None:
    """A message stored while NATS was down (so never on the bus) reaches the members right
    after the reconnect, not at the next presence refresh (an hour here)."""
    bus = start_nats(tmp_path / "nats")
    port = bus.port
    try:
        with running_groups(
            monolith, key_dir, bus.url, realtime_url, REALTIME_GROUP_PRESENCE_SECONDS="3600"
        ) as svc:
            owner, sam = svc.user(), svc.user()
            group = svc.group_of(owner, sam)
            a = svc.connect(owner, group.id)
            a.welcome()
            b = svc.connect(sam, group.id)
            b.welcome()
            assert a.message().type == "MEMBER_JOINED"
            bus.stop()
            missed = messages.new_message(messages.CHAT, 0, "", datetime.now(UTC))
            missed.chat.text = "said while the bus was down"
            stored = svc.feature.live.post(
                owner.id, group.id, _connection_id(svc, owner.id, group.id), missed
            )
            assert b.quiet(1.0)
            bus = start_nats(tmp_path / "nats", port)
            assert b.message(timeout=10) == stored
            assert a.message(timeout=10) == stored
            a.close()
            b.close()
    finally:
        bus.stop()


def _connection_id(svc: GroupsService, user_id: int, group_id: int) -> str:
    with svc.feature.database.transaction(write=False) as s:
        row = s.get(GroupMemberRow, (group_id, user_id))
        assert row is not None and row.connection_id is not None
        return row.connection_id


def _age(svc: GroupsService, user_id: int, seconds: float) -> None:
    """Make the user's connections look vouched for `seconds` ago."""
    with svc.feature.database.transaction() as s:
        s.execute(
            update(GroupMemberRow)
            .where(GroupMemberRow.user_id == user_id)
            .values(connection_seen_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_connections_of_a_dead_instance_stop_counting(
    monolith: RunningMonolith, key_dir: Path, nats_server: NatsServer, realtime_url: str
) -> None:
    """An instance vouches for its connections (every REALTIME_GROUP_PRESENCE_SECONDS); those
    nobody vouched for in three periods (their instance died) are not online, do not count
    towards a user's connections, and are announced DROPPED when the member connects again."""
    with running_groups(
        monolith, key_dir, nats_server.url, realtime_url, REALTIME_GROUP_PRESENCE_SECONDS="0.2"
    ) as svc:
        owner, sam = svc.user(), svc.user()
        groups = [svc.group_of(owner, sam) for _ in range(4)]
        for i, group in enumerate(groups[:3]):  # held by an instance that is gone
            svc.feature.live.connect(sam.id, group.id, f"ghost-{i}")
        assert svc.members(owner, groups[0].id)[sam.id].online
        _age(svc, sam.id, seconds=1)
        assert not svc.members(owner, groups[0].id)[sam.id].online
        fourth = svc.connect(sam, groups[3].id)
        assert fourth.welcome().group.id == groups[3].id
        again = svc.connect(sam, groups[0].id)
        recent = again.welcome().recent
        assert [(m.type, m.member_left.reason) for m in recent[-2:]] == [
            ("MEMBER_LEFT", "DROPPED"),
            ("MEMBER_JOINED", ""),
        ]
        # Live connections are vouched for again and again: online however old the last one.
        _age(svc, sam.id, seconds=1)
        wait_for(lambda: svc.members(owner, groups[0].id)[sam.id].online)
        wait_for(lambda: svc.members(owner, groups[3].id)[sam.id].online)
        fourth.close()
        again.close()


def test_concurrent_messages_take_consecutive_seqs(svc: GroupsService) -> None:
    """Writers of one group on many threads (what several instances do): no seq twice, none
    skipped."""
    owner = svc.user()
    group = svc.create(owner)
    svc.feature.live.connect(owner.id, group.id, "c-many")

    def post(i: int) -> int:
        message = messages.new_message(messages.CHAT, 0, "", datetime.now(UTC))
        message.chat.text = str(i)
        return svc.feature.live.post(owner.id, group.id, "c-many", message).seq

    with ThreadPoolExecutor(8) as pool:
        seqs = sorted(pool.map(post, range(80)))
    assert seqs == list(range(2, 82))
    stored = svc.messages(owner, group.id, page_size=100)
    assert [m.seq for m in stored] == list(range(81, 0, -1))


def test_two_instances(
    svc: GroupsService,
    monolith: RunningMonolith,
    key_dir: Path,
    nats_server: NatsServer,
    realtime_url: str,
) -> None:
    """Members on different instances see each other; a connection replaced from the other
    instance ends; a set is stored once whichever instance holds the member; an instance that
    stops tells the others its members dropped."""
    owner, sam, tia = svc.user(), svc.user(), svc.user()
    group = svc.group_of(owner, sam, tia)
    with running_groups(monolith, key_dir, nats_server.url, realtime_url) as other:
        a = svc.connect(owner, group.id)
        a.welcome()
        b = svc.connect(sam, group.id, target=other.rt.target)
        b.welcome()
        assert a.message().user_id == sam.id
        a.chat("from one")
        b.chat("from two")
        got_a, got_b = a.messages(2), b.messages(2)
        assert got_a == got_b
        assert {m.chat.text for m in got_a} == {"from one", "from two"}

        # Sam connects again on the first instance: the second instance's connection ends.
        b2 = svc.connect(sam, group.id)
        b2.welcome()
        assert b.message().member_left.reason == "REPLACED"
        assert b.ended().code == grpc.StatusCode.OK
        assert [m.member_left.reason for m in a.messages(2)] == ["REPLACED", ""]

        # Both instances take the activity subject; the set is stored once.
        c = svc.connect(tia, group.id, target=other.rt.target)
        c.welcome()
        assert a.message().user_id == tia.id
        b2.message()
        with nats_publisher(nats_server.url) as bus:
            logged = groups_pb2.SetLogged(set_id=77, exercise_id=2, reps=5, weight=80.0)
            bus.publish_core(
                activity_subject(tia.id), logged.SerializeToString(), {ACTIVITY_HEADER: SET_LOGGED}
            )
            assert a.message().set_logged == logged
            assert c.message().set_logged == logged
            assert a.quiet(0.5)
        # The second instance stops: its member is announced DROPPED and told to reconnect.
    ended = c.ended()
    assert (ended.code, ended.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTDOWN")
    left = a.message()
    assert (left.user_id, left.member_left.reason) == (tia.id, "DROPPED")
    wait_for(lambda: not svc.members(owner, group.id)[tia.id].online)
    a.close()
    b2.close()
