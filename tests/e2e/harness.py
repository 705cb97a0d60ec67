"""Helpers for end-to-end tests against the real mesh (monolith, coaches, billing, the sandbox
payment provider, NATS, the realtime instances, Envoy)."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fitedge
from devtools.mesh import Mesh, http_ok
from devtools.paths import DESCRIPTOR_SET, VENV_BIN
from devtools.ports import free_port


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

    __test__ = False  # not a test class, whatever its name

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

    def hosts_healthy(self, cluster: str) -> bool:
        """Every host of `cluster` passed Envoy's active health checks and is not ejected
        (the membership gauges count a new host healthy before its first check has run)."""
        with urllib.request.urlopen(f"{self.url}/clusters?format=json", timeout=5) as resp:
            statuses = json.load(resp).get("cluster_statuses", [])
        for status in statuses:
            if status.get("name") != cluster:
                continue
            hosts = status.get("host_statuses", [])
            return bool(hosts) and all(
                h.get("health_status", {}).get("eds_health_status", "HEALTHY") == "HEALTHY"
                and not any(
                    flag
                    for key, flag in h.get("health_status", {}).items()
                    if key != "eds_health_status"
                )
                for h in hosts
            )
        return False

    def served(self) -> dict[str, int]:
        """Requests per upstream cluster (who actually answered)."""
        c = self.counters()
        return {
            name: c.get(f"cluster.{name}.upstream_rq_total", 0)
            for name in (
                fitedge.LEGACY_CLUSTER,
                fitedge.COACH_HOSTS,
                fitedge.FALLBACK_CLUSTER,
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
        split = fitedge.Split.coach_percent(coach_percent)
        fitedge.write_runtime(mesh.config.runtime_dir, split)
        assert fitedge.apply_live(self.url, split)
        deadline = time.monotonic() + 5
        while fitedge.live_split(self.url) != split:
            assert time.monotonic() < deadline, "runtime change not visible"
            time.sleep(0.05)


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    implementations: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    # Failed answers in the API's error shape: JSON {"code", "message", ...}.
    json_errors: int = 0
    max_seconds: float = 0.0  # the slowest request, answered or not
    slow: int = 0  # requests that took longer than WodLoad.slow_seconds
    # One per request: (started, seconds, status, ok, error in JSON), time.monotonic() clock.
    samples: list[tuple[float, float, int, bool, bool]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def between(self, start: float, end: float = math.inf, slow: float = 1.0) -> LoadResult:
        """The requests started in [start, end) (time.monotonic())."""
        out = LoadResult()
        for started, seconds, status, good, json_error in self.samples:
            if start <= started < end:
                out.ok += good
                out.failed += not good
                out.statuses[status] += 1
                out.json_errors += json_error
                out.max_seconds = max(out.max_seconds, seconds)
                out.slow += seconds > slow
                out.samples.append((started, seconds, status, good, json_error))
        return out

    def last_failure(self) -> float | None:
        """When the last failed request started."""
        return max((s[0] for s in self.samples if not s[3]), default=None)

    def summary(self) -> str:
        return (
            f"{self.total} requests: {self.ok} ok, {self.failed} failed "
            f"(statuses {dict(sorted(self.statuses.items()))}, {self.json_errors} JSON errors), "
            f"slowest {self.max_seconds:.2f} s, {self.slow} slow"
        )


def is_error_json(body: Any) -> bool:
    """The API's error shape (services' and Envoy's own replies alike)."""
    return isinstance(body, dict) and "code" in body and bool(body.get("message"))


class WodLoad:
    """Bounded concurrent GET /fitness/wod load until stopped: one thread per user, or
    `threads` threads each cycling through its share of the users (so many users' first WOD
    of the day, which writes, is in flight at once). A thread pauses `pause_on_failure` after
    a failed request, as a client would, instead of spinning on an outage."""

    def __init__(
        self,
        host: str,
        port: int,
        users: list[User],
        max_seconds: float = 120,
        threads: int | None = None,
        pause_on_failure: float = 0.0,
        slow_seconds: float = 1.0,
    ) -> None:
        self.host, self.port, self.users = host, port, users
        self.max_seconds = max_seconds
        self.pause_on_failure = pause_on_failure
        self.slow_seconds = slow_seconds
        self.result = LoadResult()
        self.last_wod: dict[int, Any] = {}  # user id -> the last WOD answered to that user
        self._stop = threading.Event()
        self._lock = threading.Lock()
        n = threads or len(users)
        self._threads = [
            threading.Thread(target=self._worker, args=(users[i::n],), daemon=True)
            for i in range(n)
        ]

    def _worker(self, users: list[User]) -> None:
        client = JsonClient(self.host, self.port)
        deadline = time.monotonic() + self.max_seconds
        turn = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                user = users[turn % len(users)]
                turn += 1
                started = time.monotonic()
                try:
                    r = client.get("/fitness/wod", token=user.token)
                    good = r.status == 200 and len(r.body["exercises"]) > 0
                    detail = "" if good else f"{r.status} {str(r.body)[:200]}"
                except Exception as exc:  # counted, not raised: the test asserts on counts
                    good, detail = False, repr(exc)
                    r = Response(0, None, {})
                seconds = time.monotonic() - started
                json_error = not good and is_error_json(r.body)
                with self._lock:
                    res = self.result
                    res.statuses[r.status] += 1
                    res.max_seconds = max(res.max_seconds, seconds)
                    res.slow += seconds > self.slow_seconds
                    res.samples.append((started, seconds, r.status, good, json_error))
                    if good:
                        res.ok += 1
                        res.implementations[str(r.body.get("implementation"))] += 1
                        self.last_wod[user.id] = r.body
                    else:
                        res.failed += 1
                        res.json_errors += json_error
                        if len(res.errors) < 20:
                            res.errors.append(detail)
                if not good and self.pause_on_failure:
                    self._stop.wait(self.pause_on_failure)
        finally:
            client.close()

    def between(self, start: float, end: float = math.inf) -> LoadResult:
        """The requests started in [start, end) (time.monotonic()), finished or not yet."""
        with self._lock:
            return self.result.between(start, end, self.slow_seconds)

    def wait_steady(self, within: float, window: float = 1.0, min_ok: int = 10) -> float:
        """Wait until a whole `window` of requests succeeds (at least `min_ok`, no failure);
        return when that window started (time.monotonic()). Fails after `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            start = time.monotonic()
            time.sleep(window)
            w = self.between(start, start + window)
            if w.failed == 0 and w.ok >= min_ok:
                return start
        raise AssertionError(f"no steady {window:.0f} s window within {within:.0f} s")

    def __enter__(self) -> WodLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


@dataclass
class ExtraEdge:
    """A second Envoy in front of a running mesh's services."""

    port: int
    admin_url: str
    access_log: Path
    params: fitedge.EnvoyParams


@contextmanager
def extra_edge(mesh: Mesh, work: Path, **overrides: Any) -> Iterator[ExtraEdge]:
    """Start an Envoy rendered by the same code as `./fit run`'s, with `overrides` (limits,
    TLS, ...), in front of `mesh`'s monolith, coaches, billing and realtime instances; stop it
    at the end."""
    c = mesh.config
    with running_edge(
        work,
        (c.data_dir / "keys" / "jwt_public.pem").read_bytes(),
        monolith=fitedge.Endpoints([(c.host, c.monolith_port)]),
        coach=fitedge.Endpoints([(c.host, c.coach_port + i) for i in range(c.coach_instances)]),
        billing=fitedge.Endpoints([(c.host, c.billing_port)]),
        realtime=fitedge.Endpoints(
            [(c.host, c.realtime_port + i) for i in range(c.realtime_instances)]
        ),
        **overrides,
    ) as edge:
        yield edge


@contextmanager
def running_edge(work: Path, jwt_public_pem: bytes, **params: Any) -> Iterator[ExtraEdge]:
    """An Envoy rendered by fitedge (the code of `./fit run`) on free loopback ports, trusting
    tokens of `jwt_public_pem`, with `params` (upstreams, limits, ...) as EnvoyParams fields;
    stopped at the end."""
    port, admin_port = free_port(), free_port()
    runtime = work / "runtime"
    fitedge.write_runtime(runtime, fitedge.Split(100, 0))
    rendered = fitedge.EnvoyParams(
        **{
            "listen": ("127.0.0.1", port),
            "admin": ("127.0.0.1", admin_port),
            "descriptor": str(DESCRIPTOR_SET),
            "jwks": fitedge.jwks_from_public_key(jwt_public_pem),
            "runtime_root": str(runtime / "current"),
            "access_log": str(work / "access.log"),
            **params,
        }
    )
    config = work / "envoy.yaml"
    config.write_text(fitedge.dump(fitedge.render(rendered)))
    log_path = work / "envoy.log"
    argv = [str(VENV_BIN / "envoy"), "-c", str(config), "--concurrency", "1"]
    argv += ["--disable-hot-restart", "--log-level", "warn"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 20
        while not http_ok(f"{admin}/ready"):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "extra Envoy not ready"
            time.sleep(0.1)
        yield ExtraEdge(rendered.listen[1], admin, work / "access.log", rendered)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
