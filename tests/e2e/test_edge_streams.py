"""Event streams at the edge (adr/10): a real Envoy rendered by fitedge (the code of `./fit run`)
in front of a real realtime service (its events feature on real NATS with JetStream, events
stored as the producers' outboxes store them) and a real monolith (users, tokens, revocation
checks). No whole mesh: these tests are about what the edge does to a stream.

- JSON over HTTP/1.1: chunked, one event per line, each written when it happens;
- server-sent events for `Accept: text/event-stream`: an `id:` line before each `data:` line,
  resuming from `Last-Event-ID` (the URL's after_event_id wins over it), a malformed one 400;
- gRPC through the edge resumes from the same ids;
- opening streams is rate-limited per user (429 with Retry-After; RESOURCE_EXHAUSTED for gRPC),
  and one user's bucket is not another's.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from fitco.events.v1 import events_pb2, events_pb2_grpc

import fitedge
from fitcore.eventbus import events_subject
from tests.conftest import RunningMonolith, UserSession, register
from tests.e2e.harness import EnvoyAdmin, ExtraEdge, running_edge
from tests.natsfix import NatsServer
from tests.service.realtime_fixtures import (
    NatsPublisher,
    RunningRealtime,
    accounts_monolith,
    nats_publisher,
    own_bus,
    realtime_env,
    running_realtime,
)

pytestmark = pytest.mark.e2e

STREAMS_PER_USER = 3  # the edge's bucket for opening streams, per user (small, for the test)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with own_bus(tmp_path_factory.mktemp("edge-nats")) as server:
        yield server


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Iterator[RunningMonolith]:
    """The monolith: users, their tokens, and CheckToken for revocation."""
    with accounts_monolith(tmp_path_factory.mktemp("edge-db"), key_dir) as running:
        yield running


@pytest.fixture(scope="module")
def realtime(
    key_dir: Path, bus: NatsServer, accounts: RunningMonolith
) -> Iterator[RunningRealtime]:
    env = realtime_env(
        key_dir, bus.url, monolith_target=accounts.target, REALTIME_HEARTBEAT_SECONDS="1"
    )
    with running_realtime(env, features=("events",)) as running:
        yield running


@pytest.fixture(scope="module")
def publisher(bus: NatsServer, realtime: RunningRealtime) -> Iterator[NatsPublisher]:
    with nats_publisher(bus.url) as pub:
        yield pub


@pytest.fixture(scope="module")
def edge(
    tmp_path_factory: pytest.TempPathFactory,
    key_dir: Path,
    accounts: RunningMonolith,
    realtime: RunningRealtime,
) -> Iterator[ExtraEdge]:
    nowhere = fitedge.Endpoints([("127.0.0.1", 1)])  # the coach and billing: not needed here
    with running_edge(
        tmp_path_factory.mktemp("edge"),
        (key_dir / "keys" / "jwt_public.pem").read_bytes(),
        monolith=fitedge.Endpoints([("127.0.0.1", accounts.app.port)]),
        coach=nowhere,
        billing=nowhere,
        realtime=fitedge.Endpoints([("127.0.0.1", realtime.app.port)]),
        health_interval=0.5,
        limits=fitedge.RateLimits(per_ip=False, streams=fitedge.Bucket(STREAMS_PER_USER, 600)),
    ) as running:
        admin, deadline = EnvoyAdmin(running.admin_url), time.monotonic() + 10
        while not admin.hosts_healthy(fitedge.REALTIME_CLUSTER):
            assert time.monotonic() < deadline, "the realtime service never became healthy"
            time.sleep(0.1)
        yield running


@pytest.fixture
def user(accounts: RunningMonolith) -> UserSession:
    return register(accounts.client)


def _publish(publisher: NatsPublisher, user: UserSession, days: int) -> str:
    """A STREAK event stored for `user` as a producer stores it (id empty); its id."""
    event = events_pb2.WatchEventsResponse(
        type="STREAK", streak=events_pb2.Streak(days=days, day="2026-11-20")
    )
    event.time.FromDatetime(datetime.now(UTC))
    return str(publisher.publish(events_subject(user.id), event.SerializeToString()))


class HttpWatch:
    """GET /v1/events:watch over HTTP/1.1 through the edge, read on a thread: each JSON line
    (or each SSE frame's fields) with the moment it arrived."""

    def __init__(self, edge: ExtraEdge, user: UserSession, query: str = "", **headers: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=30)
        self.conn.request(
            "GET",
            "/v1/events:watch" + query,
            headers={"authorization": f"Bearer {user.token}", **headers},
        )
        self.response = self.conn.getresponse()
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.items: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        if self.response.status == 200:
            sse = self.headers.get("content-type", "").startswith("text/event-stream")
            threading.Thread(target=self._frames if sse else self._lines, daemon=True).start()

    def _lines(self) -> None:
        try:
            while line := self.response.readline():
                if line.strip():
                    self.items.put((time.monotonic(), {"event": json.loads(line)}))
        # Closing the connection under the reader ends it (http.client drops its file: None).
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return

    def _frames(self) -> None:
        """SSE: `field: value` lines, a blank line ends a frame."""
        frame: dict[str, Any] = {}
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\n")
                if text:
                    name, _, value = text.partition(": ")
                    frame[name] = value
                    continue
                if frame:
                    frame["event"] = json.loads(frame["data"])
                    self.items.put((time.monotonic(), frame))
                    frame = {}
        # Closing the connection under the reader ends it (http.client drops its file: None).
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return

    def next(self, timeout: float = 5.0) -> tuple[float, dict[str, Any]]:
        """The next item that is not a heartbeat."""
        deadline = time.monotonic() + timeout
        while True:
            at, item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            if item["event"]["type"] != "HEARTBEAT":
                return at, item

    def heartbeat(self, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            _, item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            if item["event"]["type"] == "HEARTBEAT":
                return item

    def body(self) -> Any:
        return json.loads(self.response.read())

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def watches() -> Iterator[list[HttpWatch]]:
    opened: list[HttpWatch] = []
    yield opened
    for watch in opened:
        watch.close()


def test_json_watchers_get_one_event_per_line_when_it_happens(
    edge: ExtraEdge, publisher: NatsPublisher, user: UserSession, watches: list[HttpWatch]
) -> None:
    watch = HttpWatch(edge, user)
    watches.append(watch)
    assert watch.response.status == 200
    assert watch.headers["transfer-encoding"] == "chunked"
    assert watch.headers["content-type"].startswith("application/json")
    watch.heartbeat()  # open, and lines arrive while the response goes on
    for days in (2, 3):
        sent = time.monotonic()
        event_id = _publish(publisher, user, days)
        at, item = watch.next()
        assert (item["event"]["id"], item["event"]["streak"]["days"]) == (event_id, days)
        assert at - sent < 1.0, f"the event took {at - sent:.2f} s through the edge"


def test_sse_frames_carry_the_ids_and_last_event_id_resumes(
    edge: ExtraEdge, publisher: NatsPublisher, user: UserSession, watches: list[HttpWatch]
) -> None:
    ids = [_publish(publisher, user, days) for days in (1, 2, 3)]
    watch = HttpWatch(edge, user, accept="text/event-stream", **{"last-event-id": ids[0]})
    watches.append(watch)
    assert watch.response.status == 200
    assert watch.headers["content-type"].startswith("text/event-stream")
    got = [watch.next()[1] for _ in ids[1:]]
    # Exactly the events after the one named, each frame's id the event's own (EventSource
    # keeps the last and sends it back as Last-Event-ID when it reconnects).
    assert [frame["event"]["id"] for frame in got] == ids[1:]
    assert [frame["id"] for frame in got] == ids[1:]
    # Heartbeats carry the position too.
    beat = watch.heartbeat()
    assert beat["id"] == beat["event"]["id"] == ids[-1]
    # Live events follow.
    live = _publish(publisher, user, 4)
    _, frame = watch.next()
    assert frame["id"] == frame["event"]["id"] == live


def test_the_urls_after_event_id_wins_over_last_event_id(
    edge: ExtraEdge, publisher: NatsPublisher, user: UserSession, watches: list[HttpWatch]
) -> None:
    ids = [_publish(publisher, user, days) for days in (1, 2, 3)]
    watch = HttpWatch(
        edge,
        user,
        f"?after_event_id={ids[1]}",
        accept="text/event-stream",
        **{"last-event-id": ids[0]},
    )
    watches.append(watch)
    assert watch.next()[1]["id"] == ids[2]


@pytest.mark.parametrize("last", ["abc", "-1", "1" * 21])
def test_a_malformed_last_event_id_is_400(
    edge: ExtraEdge, user: UserSession, watches: list[HttpWatch], last: str
) -> None:
    watch = HttpWatch(edge, user, accept="text/event-stream", **{"last-event-id": last})
    watches.append(watch)
    assert watch.response.status == 400
    body = watch.body()
    assert body["code"] == 400 and "Last-Event-ID" in body["message"]


def test_grpc_clients_resume_through_the_edge_from_the_same_ids(
    edge: ExtraEdge, publisher: NatsPublisher, user: UserSession
) -> None:
    ids = [_publish(publisher, user, days) for days in (1, 2, 3)]
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).WatchEvents(
            events_pb2.WatchEventsRequest(after_event_id=ids[0]),
            metadata=(("authorization", f"Bearer {user.token}"),),
            timeout=20,
        )
        got = []
        for event in stream:
            if event.type != "HEARTBEAT":
                got.append(event.id)
            if len(got) == 2:
                break
        stream.cancel()
    assert got == ids[1:]


def test_opening_streams_is_rate_limited_per_user(
    edge: ExtraEdge, accounts: RunningMonolith, user: UserSession, watches: list[HttpWatch]
) -> None:
    for _ in range(STREAMS_PER_USER):
        watch = HttpWatch(edge, user)
        assert watch.response.status == 200
        watch.close()  # closed streams still count: the bucket limits opening
    refused = HttpWatch(edge, user)
    watches.append(refused)
    assert refused.response.status == 429
    assert int(refused.headers["retry-after"]) >= 1
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).WatchEvents(
            events_pb2.WatchEventsRequest(),
            metadata=(("authorization", f"Bearer {user.token}"),),
            timeout=10,
        )
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stream))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another user's bucket is full.
    other = HttpWatch(edge, register(accounts.client))
    watches.append(other)
    assert other.response.status == 200
