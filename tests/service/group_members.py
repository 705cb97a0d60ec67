"""Group sessions in service tests: the realtime service with its groups feature beside the
`monolith` fixture (tokens and their revocation), and members connected over gRPC.

A `Member` is one Connect stream on a real channel: its requests come from a queue, what it
receives is read on a thread into another queue, and how the stream ended (status code and
error reason) is recorded there too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from fitco.groups.v1 import groups_pb2, groups_pb2_grpc

from realtime.groups import GroupsFeature
from tests.conftest import RunningMonolith, UserSession, register
from tests.rpc import error_reason
from tests.service.realtime_fixtures import RunningRealtime, realtime_env, running_realtime


@dataclass(frozen=True)
class Ended:
    """How a Connect stream ended."""

    code: grpc.StatusCode
    reason: str
    details: str


class Member:
    def __init__(self, target: str, user: UserSession, group_id: int | None) -> None:
        self.user = user
        self.channel = grpc.insecure_channel(target)
        self._out: queue.Queue[groups_pb2.ConnectRequest | None] = queue.Queue()
        if group_id is not None:
            self.send(hello=groups_pb2.Hello(group_id=group_id))
        self.call = groups_pb2_grpc.GroupServiceStub(self.channel).Connect(
            self._requests(), metadata=user.md
        )
        self.received: queue.Queue[groups_pb2.ConnectResponse | Ended] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self) -> Iterator[groups_pb2.ConnectRequest]:
        while (item := self._out.get()) is not None:
            yield item

    def _read(self) -> None:
        try:
            for response in self.call:
                self.received.put(response)
            self.received.put(Ended(grpc.StatusCode.OK, "", ""))
        except grpc.RpcError as exc:
            err = cast("grpc.Call", exc)
            reason = error_reason(err) if err.code() != grpc.StatusCode.CANCELLED else ""
            self.received.put(Ended(err.code(), reason, err.details() or ""))
        finally:  # the stream is over: let its channel go (and the request thread end)
            self._out.put(None)
            self.channel.close()

    # -- sending ----------------------------------------------------------------------------

    def send(self, **kind: Any) -> None:
        self._out.put(groups_pb2.ConnectRequest(**kind))

    def chat(self, text: str) -> None:
        self.send(chat=groups_pb2.Chat(text=text))

    def cue(self, index: int, text: str = "") -> None:
        self.send(cue=groups_pb2.Cue(exercise_index=index, text=text))

    def half_close(self) -> None:
        self._out.put(None)

    def close(self) -> None:
        """Abruptly: the channel goes, the RPC is cancelled (then the request thread ends)."""
        self.channel.close()
        self._out.put(None)

    # -- receiving --------------------------------------------------------------------------

    def next(self, timeout: float = 10.0) -> groups_pb2.ConnectResponse | Ended:
        return self.received.get(timeout=timeout)

    def welcome(self) -> groups_pb2.Welcome:
        got = self.next()
        assert isinstance(got, groups_pb2.ConnectResponse) and got.HasField("welcome"), got
        return got.welcome

    def message(self, timeout: float = 10.0) -> groups_pb2.GroupMessage:
        got = self.next(timeout)
        assert isinstance(got, groups_pb2.ConnectResponse) and got.HasField("message"), got
        return got.message

    def messages(self, count: int, timeout: float = 10.0) -> list[groups_pb2.GroupMessage]:
        return [self.message(timeout) for _ in range(count)]

    def rejected(self) -> groups_pb2.Rejected:
        got = self.next()
        assert isinstance(got, groups_pb2.ConnectResponse) and got.HasField("rejected"), got
        return got.rejected

    def ended(self, timeout: float = 10.0) -> Ended:
        got = self.next(timeout)
        assert isinstance(got, Ended), got
        return got

    def quiet(self, seconds: float = 0.3) -> bool:
        """Nothing arrives for `seconds`."""
        try:
            got = self.received.get(timeout=seconds)
        except queue.Empty:
            return True
        self.received.queue.appendleft(got)  # put it back for the test to read
        return False


@dataclass
class GroupsService:
    """A running realtime service (groups) and the monolith whose users it serves."""

    rt: RunningRealtime
    monolith: RunningMonolith
    stub: groups_pb2_grpc.GroupServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.stub = groups_pb2_grpc.GroupServiceStub(self.rt.channel)

    @property
    def feature(self) -> GroupsFeature:
        return cast("GroupsFeature", self.rt.app.features["groups"])

    def user(self, name: str = "Member") -> UserSession:
        return register(self.monolith.client, name)

    def create(self, owner: UserSession, title: str = "Lunch lifts", **kw: Any) -> groups_pb2.Group:
        request = groups_pb2.CreateGroupRequest(title=title, **kw)
        return self.stub.CreateGroup(request, metadata=owner.md).group

    def join(self, user: UserSession, code: str, name: str = "") -> groups_pb2.Group:
        request = groups_pb2.JoinGroupRequest(invitation_code=code, display_name=name)
        return self.stub.JoinGroup(request, metadata=user.md).group

    def group_of(self, owner: UserSession, *members: UserSession) -> groups_pb2.Group:
        group = self.create(owner, display_name="Owner")
        for i, member in enumerate(members):
            self.join(member, group.invitation_code, f"M{i + 1}")
        return group

    def connect(self, user: UserSession, group_id: int, target: str | None = None) -> Member:
        return Member(target or self.rt.target, user, group_id)

    def messages(
        self, user: UserSession, group_id: int, page_size: int = 0, before_seq: int = 0
    ) -> list[groups_pb2.GroupMessage]:
        request = groups_pb2.ListGroupMessagesRequest(
            group_id=group_id, page_size=page_size, before_seq=before_seq
        )
        return list(self.stub.ListGroupMessages(request, metadata=user.md).messages)

    def members(self, user: UserSession, group_id: int) -> dict[int, groups_pb2.GroupMember]:
        request = groups_pb2.GetGroupRequest(group_id=group_id)
        return {m.user_id: m for m in self.stub.GetGroup(request, metadata=user.md).members}


@contextmanager
def running_groups(
    monolith: RunningMonolith, key_dir: Path, nats_url: str, database_url: str, **env: str
) -> Iterator[GroupsService]:
    """The realtime service with the groups feature only, on `database_url` (migrated)."""
    with running_realtime(
        realtime_env(
            key_dir,
            nats_url,
            monolith_target=monolith.target,
            database_url=database_url,
            **env,
        ),
        features=("groups",),
    ) as rt:
        yield GroupsService(rt, monolith)


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    """Poll `condition()` until it is true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
