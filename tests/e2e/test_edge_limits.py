"""The edge refuses abuse: per-IP limits on the auth family and on everything, a per-user cap
on the expensive WOD, bounded reflection streams, and an access log that says who asked.

A second Envoy, rendered by the same code as `./fit run`'s but with small limits, is started
in front of the shared mesh's services. Distinct client IPs are distinct loopback source
addresses (127.0.0.x), so each test has buckets of its own.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from fitco.user.v1 import user_pb2, user_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import fitedge
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import extra_edge, register

pytestmark = pytest.mark.e2e

LIMITS = fitedge.RateLimits(
    auth=fitedge.Bucket(5, 60), general=fitedge.Bucket(30, 2), expensive=fitedge.Bucket(3, 60)
)


@dataclass
class Edge:
    port: int
    admin_url: str
    access_log: Path

    def client(self, source_ip: str) -> SourceClient:
        return SourceClient(self.port, source_ip)


class SourceClient:
    """HTTP/1.1 JSON from a chosen loopback source address (a distinct client IP)."""

    def __init__(self, port: int, source_ip: str) -> None:
        self.port, self.source_ip = port, source_ip

    def request(
        self, method: str, path: str, body: Any = None, token: str = "", form: str = ""
    ) -> tuple[int, Any, dict[str, str]]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(self.source_ip, 0)
        )
        headers = {"accept": "application/json"}
        data: bytes | None = None
        if form:
            data = form.encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode()
            parsed = json.loads(raw) if raw.startswith("{") else raw
            return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()


@pytest.fixture(scope="module")
def edge(mesh: RunningMesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    work = tmp_path_factory.mktemp("edge")
    with extra_edge(mesh.mesh, work, limits=LIMITS, edge_reflection_streams=2) as e:
        yield Edge(e.port, e.admin_url, e.access_log)


def _limited(status: int, body: Any, headers: dict[str, str]) -> bool:
    """A 429 in the API's error shape, with Retry-After."""
    return (
        status == 429
        and isinstance(body, dict)
        and {"code", "message"} <= body.keys()
        and "retry" in body["message"]
        and int(headers.get("retry-after", "0")) >= 1
    )


def test_auth_family_is_limited_per_client_ip(edge: Edge) -> None:
    attacker, bystander = edge.client("127.0.0.21"), edge.client("127.0.0.22")
    wrong = {"email": "nobody@example.com", "password": "not the password"}
    outcomes = []
    for i in range(8):  # JSON login and the legacy form login share one bucket
        if i % 2:
            outcomes.append(attacker.request("POST", "/v1/auth/login", wrong))
        else:
            form = "grant_type=password&username=nobody@example.com&password=nope"
            outcomes.append(attacker.request("POST", "/oauth/token", form=form))
    statuses = [s for s, _, _ in outcomes]
    assert statuses[:5] == [401] * 5, statuses
    assert all(_limited(*o) for o in outcomes[5:]), outcomes[5:]
    assert outcomes[5][2]["retry-after"] == str(LIMITS.auth.retry_after)
    # Registration is in the family too; another client IP is not affected.
    status, body, headers = attacker.request(
        "POST", "/v1/auth/register", {"email": "x@example.com", "name": "X", "password": "p" * 12}
    )
    assert _limited(status, body, headers)
    # (Another email: the monolith's per-account back-off now locks nobody@ for a moment.)
    other_email = {"email": "somebody@example.com", "password": "not the password"}
    assert bystander.request("POST", "/v1/auth/login", other_email)[0] == 401
    # Unrelated reads from the limited client still work.
    assert attacker.request("GET", "/fitness/exercises/1")[0] == 200


def test_grpc_clients_get_resource_exhausted(edge: Edge) -> None:
    # gRPC over HTTP/2 from 127.0.0.1: exhaust that address's auth bucket, then one more.
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as ch:
        users = user_pb2_grpc.UserServiceStub(ch)
        codes: Counter[str] = Counter()
        messages: list[str] = []
        for _ in range(LIMITS.auth.tokens + 2):
            try:
                users.Login(user_pb2.LoginRequest(email="a@example.com", password="x" * 12))
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    messages.append(exc.details() or "")
    assert codes["RESOURCE_EXHAUSTED"] >= 2, codes
    # Envoy's own reply, as a plain sentence (the JSON body is for JSON clients).
    assert all(m.startswith("too many requests") for m in messages), messages
    assert codes["UNAUTHENTICATED"] <= LIMITS.auth.tokens, codes


def test_general_per_ip_cap(edge: Edge) -> None:
    flooder, other = edge.client("127.0.0.31"), edge.client("127.0.0.32")
    statuses = Counter(flooder.request("GET", "/fitness/exercises/1")[0] for _ in range(45))
    assert statuses[429] >= 10, statuses
    assert statuses[200] >= LIMITS.general.tokens - 1, statuses
    assert other.request("GET", "/fitness/exercises/1")[0] == 200


def test_wod_is_capped_per_user_whatever_the_address(mesh: RunningMesh, edge: Edge) -> None:
    user = register(mesh.client())
    other = register(mesh.client())
    statuses = [
        edge.client(f"127.0.0.{40 + i}").request("GET", "/fitness/wod", token=user.token)[0]
        for i in range(LIMITS.expensive.tokens + 2)
    ]
    assert statuses == [200] * LIMITS.expensive.tokens + [429, 429], statuses
    assert edge.client("127.0.0.40").request("GET", "/fitness/wod", token=other.token)[0] == 200


def test_idle_reflection_streams_cannot_stall_the_api(edge: Edge) -> None:
    """40 idle reflection streams with no token: health and a catalog read answer within 1 s."""
    release = threading.Event()
    outcomes: list[str] = []

    def idle() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        release.wait(30)
        yield from ()

    def hold() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            try:
                for _ in stub.ServerReflectionInfo(idle(), timeout=30):
                    pass
                outcomes.append("OK")
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        worst = 0.0
        probe = edge.client("127.0.0.60")  # not the streams' address (its own per-IP bucket)
        for _ in range(10):
            for path in ("/health", "/fitness/exercises/1"):
                started = time.monotonic()
                assert probe.request("GET", path)[0] == 200
                worst = max(worst, time.monotonic() - started)
        print(
            f"40 idle reflection streams: worst probe {worst * 1e3:.1f} ms, {len(outcomes)} refused"
        )
        assert worst < 1.0
        assert len(outcomes) >= 38  # beyond the edge's cap of 2, refused at once
    finally:
        release.set()
        for t in threads:
            t.join(35)


def test_access_log_names_client_and_user_never_the_token(mesh: RunningMesh, edge: Edge) -> None:
    user = register(mesh.client())
    assert edge.client("127.0.0.50").request("GET", "/v1/profile", token=user.token)[0] == 200
    deadline = time.monotonic() + 10
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        text = edge.access_log.read_text() if edge.access_log.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if any(e["client_ip"] == "127.0.0.50" for e in lines):
            break
        time.sleep(0.2)
    mine = [e for e in lines if e["client_ip"] == "127.0.0.50"]
    assert mine, "no access log line for the request"
    assert mine[-1]["user_id"] == str(user.id)
    text = edge.access_log.read_text()
    assert user.token not in text
    assert user.token.split(".")[2] not in text  # not even the signature
    assert user.password not in text
