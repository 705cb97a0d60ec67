"""Real time through the real mesh (NATS, two realtime instances, the monolith, billing, Envoy):

- a JSON watcher (newline-delimited JSON over HTTP/1.1 through Envoy) receives GOAL_ACHIEVED
  within a second of the body metric that reaches the target;
- a watcher that resumes with the last id it saw receives exactly the events it missed, then
  live ones;
- watchers spread over both realtime instances by Envoy all receive an event;
- a group of three members over gRPC through Envoy sees each other's sets and messages in one
  order, and a member whose process is killed is announced as DROPPED.
"""

from __future__ import annotations

import http.client
import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from fitco.events.v1 import events_pb2, events_pb2_grpc
from fitco.groups.v1 import groups_pb2, groups_pb2_grpc

from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, User, register

pytestmark = pytest.mark.e2e


class JsonWatcher:
    """GET /v1/events:watch through Envoy over HTTP/1.1, one JSON event per line, read on a
    thread; every line is kept with the moment it arrived."""

    def __init__(self, mesh: RunningMesh, token: str, after: str | None = None) -> None:
        path = "/v1/events:watch" + (f"?after_event_id={after}" if after else "")
        self.conn = http.client.HTTPConnection(mesh.host, mesh.port, timeout=60)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.read()[:500]
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                if line.strip():
                    self.events.put((time.monotonic(), json.loads(line)))
        except (OSError, ValueError, http.client.HTTPException, AttributeError):
            return  # closed by the test (http.client drops its socket: AttributeError)

    def next(
        self, timeout: float = 10.0, skip_heartbeats: bool = True
    ) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if not (skip_heartbeats and event["type"] == "HEARTBEAT"):
                return at, event

    def close(self) -> None:
        self.conn.close()


def _auth(user: User) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {user.token}"),)


def _goal(c: JsonClient, mesh: RunningMesh, user: User, target: float) -> int:
    today = mesh.clock.now().date()
    r = c.post(
        "/v1/goals",
        {"kind": "weight_loss", "target_value": target, "target_date": str(today + timedelta(60))},
        token=user.token,
    )
    assert r.status == 200, r.body
    return int(r.body["goal"]["id"])


def _weigh(c: JsonClient, user: User, kg: float) -> None:
    r = c.post("/v1/profile/metrics", {"weight_kg": kg}, token=user.token)
    assert r.status == 200, r.body


def test_a_json_watcher_gets_goal_achieved_within_a_second(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)  # 80 kg
    goal_id = _goal(c, mesh, user, 78)
    watcher = JsonWatcher(mesh, user.token)
    try:
        time.sleep(0.5)  # the stream is open at the realtime instance
        _weigh(c, user, 78)
        sent = time.monotonic()
        at, event = watcher.next()
        assert event["type"] == "GOAL_ACHIEVED", event
        assert int(event["goal_achieved"]["goal_id"]) == goal_id
        assert event["goal_achieved"]["current_value"] == 78
        assert event["id"].isdigit() and event["time"]
        assert at - sent < 1.0, f"GOAL_ACHIEVED arrived {at - sent:.3f} s after the metric"
    finally:
        watcher.close()


def test_a_resumed_watcher_gets_exactly_what_it_missed(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)
    first = _goal(c, mesh, user, 79.5)
    watcher = JsonWatcher(mesh, user.token)
    time.sleep(0.5)
    _weigh(c, user, 79.5)
    _, seen = watcher.next()
    assert (seen["type"], int(seen["goal_achieved"]["goal_id"])) == ("GOAL_ACHIEVED", first)
    watcher.close()

    # Missed while disconnected: three goals reached one after the other.
    missed = []
    for target in (79.0, 78.5, 78.0):
        missed.append(_goal(c, mesh, user, target))
        _weigh(c, user, target)

    resumed = JsonWatcher(mesh, user.token, after=seen["id"])
    try:
        got = [resumed.next()[1] for _ in missed]
        assert [int(e["goal_achieved"]["goal_id"]) for e in got] == missed
        ids = [int(e["id"]) for e in got]
        assert ids == sorted(ids) and ids[0] > int(seen["id"])
        # Then live, and nothing twice.
        live = _goal(c, mesh, user, 77.5)
        _weigh(c, user, 77.5)
        _, event = resumed.next()
        live_id = event["id"]
        assert int(event["goal_achieved"]["goal_id"]) == live
        assert int(event["id"]) > ids[-1]
        with pytest.raises(queue.Empty):
            resumed.next(timeout=1.0)
    finally:
        resumed.close()

    # gRPC through Envoy, from the same id: the same events, the same ids.
    channel = grpc.insecure_channel(f"{mesh.host}:{mesh.port}")
    try:
        stream = events_pb2_grpc.EventServiceStub(channel).WatchEvents(
            events_pb2.WatchEventsRequest(after_event_id=seen["id"]), metadata=_auth(user)
        )
        replayed = []
        for grpc_event in stream:
            if grpc_event.type != "HEARTBEAT":
                replayed.append(grpc_event.id)
            if len(replayed) == len(missed) + 1:
                break
        stream.cancel()
        assert replayed == [*map(str, ids), live_id]
    finally:
        channel.close()


def _grpc_watch(target: str, user: User) -> tuple[grpc.Channel, queue.Queue[Any], Any]:
    channel = grpc.insecure_channel(target)
    stream = events_pb2_grpc.EventServiceStub(channel).WatchEvents(
        events_pb2.WatchEventsRequest(), metadata=_auth(user)
    )
    got: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for event in stream:
                if event.type != "HEARTBEAT":
                    got.put(event)
        except grpc.RpcError:
            return

    threading.Thread(target=read, daemon=True).start()
    return channel, got, stream


def test_watchers_on_both_realtime_instances_get_the_event(mesh: RunningMesh) -> None:
    """Whichever instance holds a watcher, it gets the event the monolith produced. Envoy puts
    all of a user's streams on one instance (hash on the verified user), so one user is also
    watched straight on each instance; other users' streams through Envoy spread over both."""
    c = mesh.client()
    cfg = mesh.mesh.config
    users = [register(c) for _ in range(8)]
    goals = [_goal(c, mesh, u, 79) for u in users]
    direct = [f"{mesh.host}:{cfg.realtime_port + i}" for i in range(cfg.realtime_instances)]
    edge = f"{mesh.host}:{mesh.port}"
    # The first user: one watcher on each instance and two through Envoy; the others: one each.
    plan = [(users[0], t) for t in [*direct, edge, edge]] + [(u, edge) for u in users[1:]]
    watchers = [(u, _grpc_watch(t, u)) for u, t in plan]
    try:
        time.sleep(1.0)
        for u in users:
            _weigh(c, u, 79)
        for u, (_, got, _) in watchers:
            event = got.get(timeout=5)
            assert (event.type, event.goal_achieved.goal_id) == (
                "GOAL_ACHIEVED",
                goals[users.index(u)],
            )
    finally:
        for _, (channel, _, stream) in watchers:
            stream.cancel()
            channel.close()


def test_a_users_streams_meet_on_one_instance_and_are_capped_at_five(mesh: RunningMesh) -> None:
    c = mesh.client()
    user = register(c)
    edge = f"{mesh.host}:{mesh.port}"
    before = mesh.admin.per_host("realtime")
    watchers = [_grpc_watch(edge, user) for _ in range(5)]
    try:
        time.sleep(1.0)
        after = mesh.admin.per_host("realtime")
        grew = [h for h in after if after[h] > before.get(h, 0)]
        assert len(grew) == 1, (before, after)
        # A sixth, even with a forged user header (jwt_authn sets it from the token).
        sixth = events_pb2_grpc.EventServiceStub(grpc.insecure_channel(edge)).WatchEvents(
            events_pb2.WatchEventsRequest(),
            metadata=(*_auth(user), ("x-fitco-user", "somebody-else")),
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(sixth))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for channel, _, stream in watchers:
            stream.cancel()
            channel.close()


# -- groups -----------------------------------------------------------------------------------


class Member:
    """One member's Connect stream over gRPC through Envoy; what it receives, on a thread."""

    def __init__(self, mesh: RunningMesh, user: User, group_id: int) -> None:
        self.user = user
        self.channel = grpc.insecure_channel(f"{mesh.host}:{mesh.port}")
        self._out: queue.Queue[groups_pb2.ConnectRequest | None] = queue.Queue()
        self._out.put(groups_pb2.ConnectRequest(hello=groups_pb2.Hello(group_id=group_id)))
        self.stream = groups_pb2_grpc.GroupServiceStub(self.channel).Connect(
            self._requests(), metadata=_auth(user)
        )
        self.received: queue.Queue[groups_pb2.ConnectResponse] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.received.get(timeout=10)
        assert first.WhichOneof("kind") == "welcome", first
        self.welcome = first.welcome

    def _requests(self) -> Iterator[groups_pb2.ConnectRequest]:
        while (item := self._out.get()) is not None:
            yield item

    def _read(self) -> None:
        try:
            for response in self.stream:
                self.received.put(response)
        except grpc.RpcError:
            return

    def chat(self, text: str) -> None:
        self._out.put(groups_pb2.ConnectRequest(chat=groups_pb2.Chat(text=text)))

    def messages(
        self, count: int, *types: str, timeout: float = 10.0
    ) -> list[groups_pb2.GroupMessage]:
        """The next `count` messages (of these types, if any are given)."""
        out: list[groups_pb2.GroupMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            response = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            if response.WhichOneof("kind") == "message" and (
                not types or response.message.type in types
            ):
                out.append(response.message)
        return out

    def close(self) -> None:
        self._out.put(None)
        self.channel.close()


_KILLABLE = """
import sys, time, grpc
from fitco.groups.v1 import groups_pb2, groups_pb2_grpc
target, token, group_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
def requests():
    yield groups_pb2.ConnectRequest(hello=groups_pb2.Hello(group_id=group_id))
    time.sleep(3600)
channel = grpc.insecure_channel(target)
stream = groups_pb2_grpc.GroupServiceStub(channel).Connect(
    requests(), metadata=(("authorization", "Bearer " + token),))
for response in stream:
    if response.WhichOneof("kind") == "welcome":
        print("welcome", flush=True)
"""


def test_a_group_of_three_over_grpc_through_envoy(mesh: RunningMesh) -> None:
    c = mesh.client()
    owner, second, third = (register(c) for _ in range(3))
    r = c.post("/v1/groups", {"title": "Lunch lifts", "display_name": "Olga"}, token=owner.token)
    assert r.status == 200, r.body
    group = r.body["group"]
    for user, name in ((second, "Sam"), (third, "Tia")):
        r = c.post(
            "/v1/groups:join",
            {"invitation_code": group["invitation_code"], "display_name": name},
            token=user.token,
        )
        assert (r.status, r.body["group"]["id"]) == (200, group["id"]), r.body
    group_id = int(group["id"])

    members = [Member(mesh, u, group_id) for u in (owner, second, third)]
    try:
        members[0].chat("ready?")
        members[1].chat("ready")
        members[2].chat("go")
        members[0].chat("go go")
        # A set logged through the training API reaches the group.
        r = c.post("/v1/sessions", {}, token=second.token)
        assert r.status == 200, r.body
        session_id = r.body["session"]["id"]
        r = c.post(
            f"/v1/sessions/{session_id}/sets",
            {"exercise_id": 1, "reps": 8, "weight": 40, "client_set_id": uuid.uuid4().hex},
            token=second.token,
        )
        assert r.status == 200, r.body
        seen = [member.messages(5, "CHAT", "SET_LOGGED") for member in members]
        # One order for everybody (the group's); one member's messages in the order sent (the
        # three members' streams race each other, so the order between members is the
        # server's).
        orders = [[(m.seq, m.type, m.user_id) for m in got] for got in seen]
        assert orders[0] == orders[1] == orders[2], orders
        chats = [(m.user_id, m.chat.text) for m in seen[0] if m.type == "CHAT"]
        assert sorted(chats) == sorted(
            [(owner.id, "ready?"), (second.id, "ready"), (third.id, "go"), (owner.id, "go go")]
        )
        assert [t for u, t in chats if u == owner.id] == ["ready?", "go go"]
        sets = [m for m in seen[0] if m.type == "SET_LOGGED"]
        assert [(s.user_id, s.set_logged.reps, s.set_logged.weight) for s in sets] == [
            (second.id, 8, 40)
        ]
        seqs = [m.seq for m in seen[0]]
        assert seqs == sorted(seqs)

        # A fourth member's process, killed: the others are told it dropped.
        fourth = register(c)
        r = c.post(
            "/v1/groups:join", {"invitation_code": group["invitation_code"]}, token=fourth.token
        )
        assert r.status == 200, r.body
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _KILLABLE,
                f"{mesh.host}:{mesh.port}",
                fourth.token,
                str(group_id),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "welcome"
            joined = members[0].messages(1, "MEMBER_JOINED")[0]
            while joined.user_id != fourth.id:
                joined = members[0].messages(1, "MEMBER_JOINED")[0]
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(10)
        for member in members:
            left = member.messages(1, "MEMBER_LEFT", timeout=15)[0]
            assert (left.user_id, left.member_left.reason) == (fourth.id, "DROPPED")

        # The same messages over REST, newest first.
        r = c.get(f"/v1/groups/{group_id}/messages?page_size=100", token=third.token)
        assert r.status == 200, r.body
        rest = [int(m["seq"]) for m in r.body["messages"]]
        assert rest == sorted(rest, reverse=True)
        assert set(seqs) <= set(rest)
    finally:
        for member in members:
            member.close()
