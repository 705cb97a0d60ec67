"""The fault matrix, end to end on loopback: under steady WOD load from a few client threads,
a process is killed, stopped or slowed, and the test counts what the clients saw and how long
the mesh took to heal by itself (supervisord restarts what died; Envoy retries, falls back and
ejects). Rows a-e share one SQLite mesh; row f runs a second mesh on PostgreSQL behind
devtools.faultproxy. Each test prints its figures (adr/04-availability.md, "Fault matrix").

Timings used below come from the e2e mesh (tests/e2e/conftest.py): health checks every 0.5 s,
ejection 3 s, breaker open 2 s; and from the Envoy config: WOD route timeout 10 s, a per-try
timeout, retries on `unavailable,cancelled,connect-failure,refused-stream,reset`.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import fitedge
from devtools.faultproxy import FaultProxy, Mode
from tests.conftest import Databases
from tests.e2e.conftest import RunningMesh, e2e_config, running_mesh
from tests.e2e.harness import LoadResult, TestClock, User, WodLoad, register

pytestmark = pytest.mark.e2e

ROUTE_TIMEOUT = 10.0  # the WOD route's timeout in envoy/fitedge
SLACK = 0.5  # Envoy answers 504 at the route timeout; the client sees it a little later
COACHES = ("coach-0", "coach-1")


def _row(name: str, **figures: object) -> None:
    print(f"\nFAULT MATRIX {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _users(m: RunningMesh, n: int) -> list[User]:
    c = m.client()
    try:
        return [register(c) for _ in range(n)]
    finally:
        c.close()


def _all_healthy(m: RunningMesh) -> None:
    for spec in m.mesh.programs:
        m.mesh.wait_healthy(spec.name, 30)


def _coach_host(m: RunningMesh, index: int) -> str:
    c = m.mesh.config
    return f"{c.host}:{c.coach_port + index}"


def _wait_serving(m: RunningMesh, index: int, timeout: float, at_least: int = 5) -> float:
    """Wait until Envoy sends coach `index` requests again (under load); seconds waited."""
    started = time.monotonic()
    host = _coach_host(m, index)
    mark = m.admin.per_host(fitedge.COACH_HOSTS).get(host, 0)
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        if m.admin.per_host(fitedge.COACH_HOSTS).get(host, 0) - mark >= at_least:
            return time.monotonic() - started
    raise AssertionError(f"coach-{index} got no traffic within {timeout:.0f} s")


def _error_shape(w: LoadResult) -> None:
    """Every failed answer is a 503/504 in the API's JSON error shape: never a 500, a hang
    past the route timeout, or a dropped connection."""
    assert set(w.statuses) <= {200, 503, 504}, dict(w.statuses)
    assert w.json_errors == w.failed, (w.json_errors, w.failed)
    assert w.max_seconds <= ROUTE_TIMEOUT + SLACK, w.max_seconds


# -- rows a-e: one SQLite mesh ------------------------------------------------------------------


def test_a_one_coach_killed_fails_nothing_and_is_restarted(mesh: RunningMesh) -> None:
    _all_healthy(mesh)
    users = _users(mesh, 6)
    mesh.admin.shift(mesh.mesh, 100)
    with WodLoad(mesh.host, mesh.port, users) as load:
        for i in range(len(COACHES)):
            _wait_serving(mesh, i, 15)
        t0 = time.monotonic()
        old = mesh.mesh.kill("coach-0")
        new = mesh.mesh.wait_healthy("coach-0", 10, replacing=old)
        healthy = time.monotonic() - t0
        serving = healthy + _wait_serving(mesh, 0, 10)
        time.sleep(1)
        window = load.between(t0)
    r = load.result
    _row(
        "a one coach SIGKILLed at 100 % coach",
        requests=r.total,
        failed=r.failed,
        during_fault=window.total,
        restarted_healthy_s=round(healthy, 2),
        serving_again_s=round(serving, 2),
        slowest_s=round(r.max_seconds, 2),
    )
    assert r.failed == 0, r.errors
    assert new != old
    assert serving <= 10, serving
    assert window.ok > 100, window.summary()


def test_b_every_coach_killed_falls_back_to_legacy(mesh: RunningMesh) -> None:
    _all_healthy(mesh)
    users = _users(mesh, 6)
    mesh.admin.shift(mesh.mesh, 100)
    with WodLoad(mesh.host, mesh.port, users) as load:
        for i in range(len(COACHES)):
            _wait_serving(mesh, i, 15)
        before = mesh.admin.served()
        t0 = time.monotonic()
        old = {name: mesh.mesh.kill(name) for name in COACHES}
        for name in COACHES:
            mesh.mesh.wait_healthy(name, 15, replacing=old[name])
        restarted = time.monotonic() - t0
        fell_back = mesh.admin.served()[fitedge.FALLBACK_CLUSTER] - before[fitedge.FALLBACK_CLUSTER]
        serving = restarted + max(_wait_serving(mesh, i, 15, at_least=20) for i in (0, 1))
    r = load.result
    _row(
        "b every coach SIGKILLed at 100 % coach",
        requests=r.total,
        failed=r.failed,
        fell_back_to_legacy=fell_back,
        restarted_healthy_s=round(restarted, 2),
        coaches_serving_again_s=round(serving, 2),
        slowest_s=round(r.max_seconds, 2),
    )
    assert r.failed == 0, r.errors
    assert fell_back > 50, fell_back
    assert serving <= 20, serving


def test_c_monolith_killed_mid_request_503_then_recovers_without_half_rows(
    mesh: RunningMesh,
) -> None:
    _all_healthy(mesh)
    users = _users(mesh, 24)  # none has a WOD today yet: the first request of each writes one
    mesh.admin.shift(mesh.mesh, 50)
    with WodLoad(
        mesh.host, mesh.port, users, threads=4, pause_on_failure=0.05, max_seconds=60
    ) as load:
        while len(load.last_wod) < 4:  # the day's first WODs are being generated and recorded
            time.sleep(0.01)
        t0 = time.monotonic()
        first_wods_pending = len(users) - len(load.last_wod)
        old = mesh.mesh.kill("monolith")
        mesh.mesh.wait_healthy("monolith", 20, replacing=old)
        restarted = time.monotonic() - t0
        steady = load.wait_steady(within=20)
        recovered = (load.result.last_failure() or t0) - t0
        time.sleep(2)
        tail = load.between(steady)
        everyone = set(load.last_wod) == {u.id for u in users}
    r = load.result
    in_flight = sum(1 for start, secs, *_ in r.samples if start < t0 < start + secs)
    _row(
        "c monolith SIGKILLed mid-request at 50 % coach",
        requests=r.total,
        failed=r.failed,
        statuses=dict(sorted(r.statuses.items())),
        json_errors=r.json_errors,
        slowest_s=round(r.max_seconds, 2),
        restarted_healthy_s=round(restarted, 2),
        last_failure_after_s=round(recovered, 2),
        in_flight_at_kill=in_flight,
        first_wods_pending_at_kill=first_wods_pending,
    )
    _error_shape(r)
    assert r.failed > 0, "the kill was not noticed: the test proves nothing"
    assert recovered <= 15, recovered
    assert tail.failed == 0 and tail.ok > 50, tail.summary()
    assert everyone, "some users never got their WOD after the recovery"
    # No half-written rows: one WOD per user and day, holding exactly what was served.
    db = sqlite3.connect(str(make_url(mesh.mesh.config.database_url or "").database))
    try:
        for user in users:
            wods = db.execute(
                "SELECT id, day FROM served_wods WHERE user_id = ?", (user.id,)
            ).fetchall()
            assert len(wods) == 1, (user.id, wods)
            items = [
                row[0]
                for row in db.execute(
                    "SELECT exercise_id FROM exercise_history WHERE wod_id = ? ORDER BY position",
                    (wods[0][0],),
                )
            ]
            served = load.last_wod[user.id]
            assert str(wods[0][1]) == served["day"]
            assert items == [e["id"] for e in served["exercises"]], (items, served)
            assert len(items) == 6
    finally:
        db.close()


def _tolerance(n: int, p: float) -> float:
    return 4 * math.sqrt(p * (1 - p) / max(n, 1)) + 0.02


def test_d_envoy_restarted_keeps_the_split(mesh: RunningMesh) -> None:
    _all_healthy(mesh)
    users = _users(mesh, 4)
    mesh.admin.shift(mesh.mesh, 30)
    with WodLoad(mesh.host, mesh.port, users, pause_on_failure=0.05) as load:
        time.sleep(1)
        t0 = time.monotonic()
        old = mesh.mesh.kill("envoy")
        mesh.mesh.wait_healthy("envoy", 15, replacing=old)
        restarted = time.monotonic() - t0
        split = fitedge.live_split(mesh.mesh.config.admin_url)
        steady = load.wait_steady(within=10)
        served_before = mesh.admin.served()
        time.sleep(3)
        served = mesh.admin.served()
        tail = load.between(steady)
    r = load.result
    legacy = served[fitedge.LEGACY_CLUSTER] - served_before[fitedge.LEGACY_CLUSTER]
    coach = served[fitedge.COACH_HOSTS] - served_before[fitedge.COACH_HOSTS]
    share = coach / max(legacy + coach, 1)
    outage = load.between(t0, steady)
    _row(
        "d Envoy SIGKILLed, restarted by the supervisor",
        requests=r.total,
        failed_while_down=outage.failed,
        statuses_while_down=dict(sorted(outage.statuses.items())),
        restarted_ready_s=round(restarted, 2),
        split_after=f"{split.legacy}/{split.coach}" if split else None,
        coach_share_after=round(share, 3),
        failed_after_restart=tail.failed,
    )
    assert split == fitedge.Split.coach_percent(30)
    assert abs(share - 0.30) <= _tolerance(legacy + coach, 0.30), (legacy, coach)
    assert tail.failed == 0 and tail.ok > 50, tail.summary()
    assert restarted < 10, restarted
    # While Envoy is down there is nobody to answer: connections are refused (status 0).
    assert set(outage.statuses) <= {0, 200}, dict(outage.statuses)


def test_e_a_hung_coach_costs_latency_not_failures(mesh: RunningMesh) -> None:
    _all_healthy(mesh)
    users = _users(mesh, 6)
    mesh.admin.shift(mesh.mesh, 100)
    with WodLoad(mesh.host, mesh.port, users, slow_seconds=1.0) as load:
        for i in range(len(COACHES)):
            _wait_serving(mesh, i, 15)
        t0 = time.monotonic()
        mesh.mesh.kill("coach-0", signal.SIGSTOP)
        try:
            time.sleep(6)  # longer than the per-try timeout plus two failed health checks
        finally:
            mesh.mesh.kill("coach-0", signal.SIGCONT)
        hung = load.between(t0, t0 + 6)
        serving = _wait_serving(mesh, 0, 20)
    r = load.result
    _row(
        "e one coach hung (SIGSTOP 6 s) at 100 % coach",
        requests=r.total,
        failed=r.failed,
        during_hang=hung.total,
        slow_over_1s=hung.slow,
        slowest_s=round(r.max_seconds, 2),
        serving_again_after_sigcont_s=round(serving, 2),
    )
    assert r.failed == 0, r.errors
    assert r.max_seconds <= ROUTE_TIMEOUT, r.max_seconds
    assert hung.slow >= 1, "no request waited for the hung coach: the test proves nothing"
    assert hung.ok > 100, hung.summary()


# -- row f: PostgreSQL behind the fault proxy -----------------------------------------------------


def _proxied(url: str, tmp: Path) -> tuple[str, FaultProxy]:
    """A fault proxy in front of the server of `url`, and the URL that goes through it: over
    a Unix socket when the server is reached by one (peer authentication keeps working)."""
    u = make_url(url)
    host = u.query.get("host") or u.host
    host = host if isinstance(host, str) else (host[0] if host else None)
    port = u.port or 5432
    if host is None or host.startswith("/"):  # a socket directory (libpq's default: Debian's)
        listen = tmp / "pg"
        listen.mkdir()
        sock = f".s.PGSQL.{port}"
        proxy = FaultProxy(f"{host or '/var/run/postgresql'}/{sock}", str(listen / sock)).start()
        proxied = u.update_query_dict({"host": str(listen)})
    else:
        proxy = FaultProxy((host, port)).start()
        query = {k: v for k, v in u.query.items() if k != "host"}
        proxied = u.set(host="127.0.0.1", port=proxy.port, query=query)
    return proxied.render_as_string(hide_password=False), proxy


@pytest.fixture(scope="module")
def pg_mesh(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningMesh, FaultProxy]]:
    data = tmp_path_factory.mktemp("pgmesh")
    dbs = Databases("postgres", data)
    url = dbs.new()  # skips without PostgreSQL; fails instead when FITCO_REQUIRE_POSTGRES=1
    proxied, proxy = _proxied(url, data)
    clock = TestClock(data / "clock-offset")
    try:
        with running_mesh(e2e_config(data, clock, proxied), clock) as m:
            yield m, proxy
    finally:
        proxy.close()
        dbs.drop_all()


@pytest.mark.postgres
def test_f_postgres_down_then_slow_then_back(pg_mesh: tuple[RunningMesh, FaultProxy]) -> None:
    m, proxy = pg_mesh
    users = _users(m, 8)
    with WodLoad(m.host, m.port, users, pause_on_failure=0.05, max_seconds=90) as load:
        time.sleep(1)
        monolith_pid = m.mesh.pid("monolith")
        # How many database answers one WOD request waits for (each one `latency` when slow).
        answers, start = proxy.stats.answers, time.monotonic()
        time.sleep(1)
        per_request = (proxy.stats.answers - answers) / max(load.between(start).total, 1)
        # Down: new connections refused, open ones reset (a stopped or crashed server).
        down_at = time.monotonic()
        proxy.set_mode(Mode.REFUSE)
        reset = proxy.reset()
        time.sleep(4)
        # Unreachable: new connections are never answered (a dead host, a partition).
        hang_at = time.monotonic()
        proxy.set_mode(Mode.HANG)
        time.sleep(5)
        proxy.reset()
        # Slow: every answer from the server 300 ms late.
        slow_at = time.monotonic()
        proxy.latency = 0.3
        proxy.set_mode(Mode.FORWARD)
        time.sleep(6)
        # Back to normal.
        back_at = time.monotonic()
        proxy.pass_through()
        steady = load.wait_steady(within=15)
        time.sleep(2)
        # A request started just before a switch meets the next phase: not counted in either.
        down, hang = load.between(down_at, hang_at - 1), load.between(hang_at, slow_at - 1)
        slow = load.between(slow_at, back_at - 1)
        recovery = load.between(back_at, steady)
        tail = load.between(steady)
        restarted = m.mesh.pid("monolith") != monolith_pid
    _row(
        "f PostgreSQL down 4 s (refused + reset)",
        requests=down.total,
        failed=down.failed,
        statuses=dict(sorted(down.statuses.items())),
        json_errors=down.json_errors,
        slowest_s=round(down.max_seconds, 2),
        connections_reset=reset,
    )
    _row(
        "f PostgreSQL unreachable 5 s (connections hang)",
        requests=hang.total,
        failed=hang.failed,
        statuses=dict(sorted(hang.statuses.items())),
        json_errors=hang.json_errors,
        slowest_s=round(hang.max_seconds, 2),
    )
    _row(
        "f PostgreSQL slow 6 s (+300 ms per answer)",
        db_answers_per_request=round(per_request, 1),
        requests=slow.total,
        ok=slow.ok,
        failed=slow.failed,
        statuses=dict(sorted(slow.statuses.items())),
        slowest_s=round(slow.max_seconds, 2),
    )
    _row(
        "f PostgreSQL back",
        steady_after_s=round(steady - back_at, 2),
        failed_while_recovering=recovery.failed,
        failed_after=tail.failed,
        monolith_restarted=restarted,
    )
    _error_shape(down)
    assert down.failed > 0, "the outage was not noticed: the test proves nothing"
    assert down.max_seconds < 3, "a dead database must fail requests quickly"
    _error_shape(hang)
    _error_shape(slow)
    assert steady - back_at <= 15
    assert tail.failed == 0 and tail.ok > 20, tail.summary()
