"""Helpers for end-to-end tests against the real mesh (monolith, coaches, Envoy)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools import envoy
from devtools.mesh import Mesh


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class JsonClient:
    """A keep-alive HTTP/1.1 JSON client (one per thread)."""

    def __init__(self, host: str, port: int, timeout: float = 15.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        hdrs = {"accept": "application/json", **(headers or {})}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("content-type", "application/json")
        if token:
            hdrs["authorization"] = f"Bearer {token}"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, OSError):
                # A keep-alive connection closed by the server between requests: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        text = payload.decode() if payload else ""
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Response(resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()})

    def get(self, path: str, token: str | None = None) -> Response:
        return self.request("GET", path, token=token)

    def post(self, path: str, body: Any = None, token: str | None = None, **kw: Any) -> Response:
        return self.request("POST", path, body=body, token=token, **kw)

    def close(self) -> None:
        self.conn.close()


@dataclass
class User:
    email: str
    password: str
    token: str
    id: int


def register(client: JsonClient, onboard: bool = True, goal: str = "muscle_gain") -> User:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    password = "e2e-long-password"
    r = client.post("/v1/auth/register", {"email": email, "name": "E2E", "password": password})
    assert r.status == 200, r.body
    user = User(email, password, r.body["access_token"], int(r.body["user"]["id"]))
    if onboard:
        r = client.post(
            "/profile/onboarding",
            {"weight": 80, "height": 180, "fitness_goal": goal},
            token=user.token,
        )
        assert r.status == 200, r.body
    return user


class TestClock:
    """Moves the services' clock (FITCO_TEST_CLOCK_FILE holds an offset in seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        path.write_text("0")

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, days: int) -> None:
        self.offset += days * 86400
        self.path.write_text(str(self.offset))


class EnvoyAdmin:
    def __init__(self, url: str) -> None:
        self.url = url

    def counters(self, prefix: str = "cluster.") -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats?format=json", timeout=5) as resp:
            stats = json.load(resp)["stats"]
        return {
            s["name"]: int(s["value"])
            for s in stats
            if "value" in s and s["name"].startswith(prefix)
        }

    def served(self) -> dict[str, int]:
        """Requests per upstream cluster (who actually answered)."""
        c = self.counters()
        return {
            name: c.get(f"cluster.{name}.upstream_rq_total", 0)
            for name in (
                envoy.LEGACY_CLUSTER,
                envoy.COACH_HOSTS,
                envoy.FALLBACK_CLUSTER,
                "monolith",
            )
        }

    def per_host(self, cluster: str) -> dict[str, int]:
        """Requests answered by each host of a cluster (from /clusters)."""
        with urllib.request.urlopen(f"{self.url}/clusters?format=json", timeout=5) as resp:
            data = json.load(resp)
        out: dict[str, int] = {}
        for c in data["cluster_statuses"]:
            if c["name"] != cluster:
                continue
            for host in c.get("host_statuses", []):
                addr = host["address"]["socket_address"]
                total = next(
                    (int(s.get("value", 0)) for s in host["stats"] if s["name"] == "rq_total"), 0
                )
                out[f"{addr['address']}:{addr['port_value']}"] = total
        return out

    def shift(self, mesh: Mesh, coach_percent: int) -> None:
        split = envoy.Split.coach_percent(coach_percent)
        envoy.write_runtime(mesh.config.runtime_dir, split)
        assert envoy.apply_live(self.url, split)
        deadline = time.monotonic() + 5
        while envoy.live_split(self.url) != split:
            assert time.monotonic() < deadline, "runtime change not visible"
            time.sleep(0.05)


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    implementations: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class WodLoad:
    """Bounded concurrent GET /fitness/wod load from `users` (one thread each) until stopped."""

    def __init__(self, host: str, port: int, users: list[User], max_seconds: float = 120) -> None:
        self.host, self.port, self.users = host, port, users
        self.max_seconds = max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._worker, args=(u,), daemon=True) for u in users
        ]

    def _worker(self, user: User) -> None:
        client = JsonClient(self.host, self.port)
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.get("/fitness/wod", token=user.token)
                    good = r.status == 200 and len(r.body["exercises"]) > 0
                    detail = "" if good else f"{r.status} {str(r.body)[:200]}"
                except Exception as exc:  # counted, not raised: the test asserts on counts
                    good, detail = False, repr(exc)
                    r = Response(0, None, {})
                with self._lock:
                    self.result.statuses[r.status] += 1
                    if good:
                        self.result.ok += 1
                    else:
                        self.result.failed += 1
                        if len(self.result.errors) < 20:
                            self.result.errors.append(detail)
        finally:
            client.close()

    def __enter__(self) -> WodLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
