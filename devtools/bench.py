"""`./fit bench [matrix|capacity|migration|grpc|all]`: reproducible load tests on loopback.

Every run starts its own mesh (free ports, throw-away data directory), prepares logged-in
users, runs k6 / ghz with bounded durations, and writes JSON into bench/results/. `./fit bench
report` renders bench/results/REPORT.md and the PNG plots from those JSON files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fitedge
from devtools import bench_report, postgres, tools
from devtools.mesh import Mesh, MeshConfig
from devtools.paths import DESCRIPTOR_SET, ROOT

RESULTS = ROOT / "bench" / "results"
K6_DIR = ROOT / "bench" / "k6"
CONCURRENCY = 20


@dataclass
class BenchEnv:
    db: str
    coach_instances: int = 2
    envoy_concurrency: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)


def _post_json(url: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        data: dict[str, Any] = json.load(resp)
        return data


def _retried(call: Callable[[], dict[str, Any]], tries: int = 20) -> dict[str, Any]:
    """`call`, again after a pause while the service answers 429 or 503: the password hashing
    slots are full (a bounded queue, adr/04), which a client meets by waiting."""
    for attempt in range(tries):
        try:
            return call()
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 503) or attempt == tries - 1:
                raise
            time.sleep(min(2.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")


def make_users(base_url: str, count: int) -> list[str]:
    """Register and onboard `count` users; return their bearer tokens."""

    def one(i: int) -> str:
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "name": f"Bench {i}", "password": "bench-password-123"}
        reg = _retried(lambda: _post_json(f"{base_url}/v1/auth/register", body))
        token = str(reg["access_token"])
        goal = ["muscle_gain", "weight_loss", "strength", "endurance"][i % 4]
        _post_json(
            f"{base_url}/profile/onboarding",
            {"weight": 60 + i % 40, "height": 160 + i % 30, "fitness_goal": goal},
            token,
        )
        return token

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


@contextmanager
def _database(db: str) -> Any:
    if db == "sqlite":
        yield None
        return
    with postgres.throwaway_database("fitco_bench") as url:
        yield url


@contextmanager
def running_mesh(env: BenchEnv) -> Any:
    with tempfile.TemporaryDirectory(prefix="fitco-bench-") as tmp, _database(env.db) as url:
        data = Path(tmp)
        config = MeshConfig.on_free_ports(
            data,
            env.coach_instances,
            envoy_concurrency=env.envoy_concurrency,
            database_url=url or f"sqlite:///{data / 'fitco.db'}",
            # The scenarios drive few users from one load generator on one address: edge rate
            # limits off unless a scenario (the login flood) turns them on.
            extra_env={"FITCO_LOG_LEVEL": "WARNING", "FITCO_RATE_LIMITS": "none", **env.extra_env},
        )
        mesh = Mesh(config)
        try:
            mesh.start()
            yield mesh
        finally:
            mesh.stop()


def shift(mesh: Mesh, coach_percent: int) -> None:
    split = fitedge.Split.coach_percent(coach_percent)
    fitedge.write_runtime(mesh.config.runtime_dir, split)
    fitedge.apply_live(mesh.config.admin_url, split)


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    print("  $", shlex.join(cmd)[:200], flush=True)
    return subprocess.run(cmd, text=True, capture_output=True, check=False, **kw)  # noqa: S603


# -- ghz (gRPC) and k6 (JSON) cells ----------------------------------------------------------


def ghz(
    target: str, call: str, token: str | None, seconds: int, concurrency: int
) -> dict[str, Any]:
    exe = str(tools.require("ghz"))
    md = json.dumps({"authorization": f"Bearer {token}"} if token else {})
    base = [exe, "--insecure", "--protoset", str(DESCRIPTOR_SET), "--call", call, "-d", "{}"]
    base += ["-m", md, "-c", str(concurrency), "--connections", "4", "-O", "json"]
    _run([*base, "-z", "2s", target])  # warm-up
    out = _run([*base, "-z", f"{seconds}s", target])
    report = json.loads(out.stdout)
    lat = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    # At the end of -z ghz closes its own connections under the calls still in flight; those
    # come back as Canceled or "use of closed network connection" and are not server errors.
    errors = sum(
        n
        for message, n in (report.get("errorDistribution") or {}).items()
        if "use of closed network connection" not in message and "Canceled" not in message
    )
    return {
        "rps": report["rps"],
        "count": report["count"],
        "errors": errors,
        "p50_ms": lat.get(50, 0.0),
        "p95_ms": lat.get(95, 0.0),
        "p99_ms": lat.get(99, 0.0),
    }


def k6_summary(script: str, env: dict[str, str], extra: list[str] | None = None) -> dict[str, Any]:
    exe = str(tools.require("k6"))
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        args = [exe, "run", "--quiet", "--no-usage-report", "--summary-export", str(summary)]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        out = _run([*args, *(extra or []), script], cwd=K6_DIR)
        if not summary.exists():
            raise RuntimeError(f"k6 failed: {out.stderr[-2000:]}")
        data: dict[str, Any] = json.loads(summary.read_text())
        return data


def k6_cell(base_url: str, path: str, token: str | None, seconds: int, vus: int) -> dict[str, Any]:
    env = {"BASE_URL": base_url, "PATH_UNDER_TEST": path, "VUS": str(vus), "DURATION": "2s"}
    if token:
        env["TOKEN"] = token
    k6_summary("throughput.js", env)  # warm-up
    env["DURATION"] = f"{seconds}s"
    m = k6_summary("throughput.js", env)["metrics"]
    dur = m["http_req_duration"]
    failed = m["http_req_failed"]
    count = m["http_reqs"]["count"]
    return {
        "rps": m["http_reqs"]["rate"],
        "count": count,
        "errors": round(failed.get("value", 0) * count),
        "p50_ms": dur["med"],
        "p95_ms": dur["p(95)"],
        "p99_ms": dur["p(99)"],
    }


def matrix(seconds: int, dbs: list[str]) -> dict[str, Any]:
    cells: list[dict[str, Any]] = []
    for db in dbs:
        print(f"matrix: {db}", flush=True)
        with running_mesh(BenchEnv(db)) as mesh:
            c = mesh.config
            base = c.envoy_url
            legacy_user, coach_user = make_users(base, 2)
            # Record each user's WOD once: the cells measure the steady state (served WOD).
            shift(mesh, 0)
            _get(f"{base}/fitness/wod", legacy_user)
            shift(mesh, 100)
            _get(f"{base}/fitness/wod", coach_user)
            health = "fitco.system.v1.SystemService/GetHealth"
            wod = "fitco.coach.v1.CoachService/GetWod"
            plan = [
                ("noop", None, c.monolith_target, health, None, "/health"),
                ("legacy_wod", 0, c.monolith_target, wod, legacy_user, "/fitness/wod"),
                ("coach_wod", 100, c.coach_target(0), wod, coach_user, "/fitness/wod"),
            ]
            for rpc, split, direct, call, token, path in plan:
                if split is not None:
                    shift(mesh, split)
                for where in ("grpc_direct", "grpc_envoy", "json_envoy"):
                    if where == "json_envoy":
                        result = k6_cell(base, path, token, seconds, CONCURRENCY)
                    else:
                        target = direct if where == "grpc_direct" else c.envoy_target
                        result = ghz(target, call, token, seconds, CONCURRENCY)
                    cells.append({"db": db, "rpc": rpc, "path": where, **result})
                    print(
                        f"  {db:8} {rpc:10} {where:11} {result['rps']:8.0f} rps  "
                        f"p95 {result['p95_ms']:6.1f} ms  errors {result['errors']}",
                        flush=True,
                    )
    return {"kind": "matrix", "seconds": seconds, "concurrency": CONCURRENCY, "cells": cells}


def _get(url: str, token: str) -> dict[str, Any]:
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        data: dict[str, Any] = json.load(resp)
        return data


# -- capacity (seed scenario) ------------------------------------------------------------------


def capacity(
    stages: list[dict[str, Any]] | None, users: int, label: str, coach: int, bin_vus: int = 10
) -> dict[str, Any]:
    exe = str(tools.require("k6"))
    with running_mesh(BenchEnv("sqlite")) as mesh:
        base = mesh.config.envoy_url
        tokens = make_users(base, users)
        shift(mesh, coach)
        with tempfile.TemporaryDirectory() as tmp:
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(tokens))
            points = Path(tmp) / "points.json"
            args = [exe, "run", "--quiet", "--no-usage-report", "--out", f"json={points}"]
            args += ["-e", f"BASE_URL={base}", "-e", f"TOKENS_FILE={tokens_file}"]
            if stages:
                args += ["-e", f"STAGES={json.dumps(stages)}"]
            out = _run([*args, "capacity.js"], cwd=K6_DIR)
            if not points.exists():
                raise RuntimeError(f"k6 failed: {out.stderr[-2000:]}")
            levels: dict[int, list[float]] = defaultdict(list)
            failures: dict[int, int] = defaultdict(int)
            for line in points.open():
                p = json.loads(line)
                if p.get("type") != "Point":
                    continue
                tags = p["data"].get("tags", {})
                if "level" not in tags:
                    continue
                level = -(-int(tags["level"]) // bin_vus) * bin_vus  # round up to the bin
                if p["metric"] == "http_req_duration":
                    levels[level].append(p["data"]["value"])
                elif p["metric"] == "http_req_failed" and p["data"]["value"]:
                    failures[level] += 1
    rows = []
    for level in sorted(levels):
        values = sorted(levels[level])
        rows.append(
            {
                "vus": level,
                "requests": len(values),
                "failed": failures[level],
                "p50_ms": _pct(values, 50),
                "p95_ms": _pct(values, 95),
                "p99_ms": _pct(values, 99),
            }
        )
    # Sustained: the largest level such that it and every level below it stayed under the bound.
    ok = _sustained(rows, 200.0)
    ok5 = _sustained(rows, 5000.0)
    return {
        "kind": "capacity",
        "label": label,
        "coach_percent": coach,
        "users": users,
        "levels": rows,
        "bin_vus": bin_vus,
        "max_vus_p95_under_200ms": ok,
        "max_vus_p95_under_5s": ok5,
        "total_requests": sum(r["requests"] for r in rows),
        "total_failed": sum(r["failed"] for r in rows),
    }


def _sustained(rows: list[dict[str, Any]], bound_ms: float) -> int:
    best = 0
    for r in rows:
        if r["p95_ms"] >= bound_ms or r["failed"]:
            break
        best = r["vus"]
    return best


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    idx = min(len(values) - 1, max(0, round(pct / 100 * len(values)) - 1))
    return values[idx]


# -- migration under load ----------------------------------------------------------------------


def migration(rate: int, phase_seconds: int) -> dict[str, Any]:
    with running_mesh(BenchEnv("sqlite")) as mesh:
        base = mesh.config.envoy_url
        tokens = make_users(base, 100)
        shift(mesh, 0)
        phases = [0, 10, 50, 100]
        with tempfile.TemporaryDirectory() as tmp:
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(tokens))
            summary = Path(tmp) / "summary.json"
            exe = str(tools.require("k6"))
            duration = phase_seconds * len(phases)
            args = [exe, "run", "--quiet", "--no-usage-report", "--summary-export", str(summary)]
            args += ["-e", f"BASE_URL={base}", "-e", f"TOKENS_FILE={tokens_file}"]
            args += ["-e", f"RATE={rate}", "-e", f"DURATION={duration}s", "migration.js"]
            proc = subprocess.Popen(  # noqa: S603 - our own k6 arguments
                args, cwd=K6_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            rows = []
            for percent in phases:
                shift(mesh, percent)
                time.sleep(0.5)
                before = _served(mesh)
                time.sleep(phase_seconds - 1)
                after = _served(mesh)
                d = {k: after[k] - before[k] for k in after}
                total = d[fitedge.LEGACY_CLUSTER] + d[fitedge.COACH_HOSTS]
                rows.append(
                    {
                        "coach_percent": percent,
                        "requests": total,
                        "coach_share": d[fitedge.COACH_HOSTS] / total if total else 0.0,
                        "fell_back": d[fitedge.FALLBACK_CLUSTER],
                    }
                )
                time.sleep(0.5)
            proc.wait(timeout=duration + 60)
            m = json.loads(summary.read_text())["metrics"]
    return {
        "kind": "migration",
        "rate": rate,
        "phases": rows,
        "requests": m["http_reqs"]["count"],
        "failed": int(m.get("wod_failed", {}).get("count", 0)),
        "p95_ms": m["http_req_duration"]["p(95)"],
    }


def _served(mesh: Mesh) -> dict[str, int]:
    with urllib.request.urlopen(f"{mesh.config.admin_url}/stats?format=json", timeout=5) as r:  # noqa: S310
        stats = {s["name"]: s.get("value", 0) for s in json.load(r)["stats"] if "value" in s}
    return {
        n: int(stats.get(f"cluster.{n}.upstream_rq_total", 0))
        for n in (fitedge.LEGACY_CLUSTER, fitedge.COACH_HOSTS, fitedge.FALLBACK_CLUSTER)
    }


# -- k6 gRPC and instance scaling ------------------------------------------------------------


def grpc_k6(seconds: int) -> dict[str, Any]:
    with running_mesh(BenchEnv("sqlite")) as mesh:
        tokens = make_users(mesh.config.envoy_url, 20)
        shift(mesh, 100)
        with tempfile.TemporaryDirectory() as tmp:
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(tokens))
            m = k6_summary(
                "grpc.js",
                {
                    "GRPC_TARGET": mesh.config.envoy_target,
                    "TOKENS_FILE": str(tokens_file),
                    "VUS": str(CONCURRENCY),
                    "DURATION": f"{seconds}s",
                },
            )["metrics"]
    return {
        "kind": "grpc_k6",
        "rps": m["iterations"]["rate"],
        "p95_ms": m["grpc_req_duration"]["p(95)"],
        "checks_failed": m["checks"].get("fails", 0),
        "checks_passed": m["checks"].get("passes", 0),
    }


def coach_scaling(seconds: int) -> dict[str, Any]:
    """Coach WOD through Envoy JSON with 1 and with 2 coach instances (same run)."""
    rows = []
    for instances in (1, 2):
        with running_mesh(BenchEnv("sqlite", coach_instances=instances)) as mesh:
            tokens = make_users(mesh.config.envoy_url, 20)
            shift(mesh, 100)
            with tempfile.TemporaryDirectory() as tmp:
                tokens_file = Path(tmp) / "tokens.json"
                tokens_file.write_text(json.dumps(tokens))
                env = {
                    "BASE_URL": mesh.config.envoy_url,
                    "PATH_UNDER_TEST": "/fitness/wod",
                    "TOKENS_FILE": str(tokens_file),
                    "VUS": str(CONCURRENCY),
                    "DURATION": "2s",
                }
                k6_summary("throughput.js", env)
                env["DURATION"] = f"{seconds}s"
                m = k6_summary("throughput.js", env)["metrics"]
        rows.append(
            {
                "coach_instances": instances,
                "rps": m["http_reqs"]["rate"],
                "p95_ms": m["http_req_duration"]["p(95)"],
            }
        )
    return {"kind": "coach_scaling", "rows": rows}


# -- entry point -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            return _run(cmd).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "envoy": version([str(ROOT / ".venv" / "bin" / "envoy"), "--version"]),
        "k6": tools.TOOLS["k6"],
        "ghz": tools.TOOLS["ghz"],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save(name: str, result: dict[str, Any], command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {**result, "machine": machine(), "command": command}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def run(args: argparse.Namespace) -> int:
    needed = {"report": (), "flood": ("k6",), "realtime": ("k6",)}.get(args.what, ("k6", "ghz"))
    for name in needed:
        try:
            tools.require(name)
        except tools.MissingTool as exc:
            print(f"bench: {exc}")
            return 1
    what = args.what
    if what in ("matrix", "all"):
        save("matrix", matrix(args.seconds, ["sqlite", "postgres"]), "./fit bench matrix")
    if what in ("capacity", "all"):
        save(
            "capacity",
            capacity(None, 200, "seed ramp 10->200 VUs, 1-3 s think", 0),
            "./fit bench capacity",
        )
        save(
            "capacity_coach",
            capacity(None, 200, "seed ramp 10->200 VUs, 1-3 s think", 100),
            "./fit bench capacity",
        )
    if what in ("capacity-high", "all"):
        stages = [
            {"duration": "30s", "target": 500},
            {"duration": "30s", "target": 1000},
            {"duration": "30s", "target": 1500},
            {"duration": "30s", "target": 2000},
            {"duration": "30s", "target": 2500},
            {"duration": "10s", "target": 0},
        ]
        save(
            "capacity_high",
            capacity(stages, 500, "ramp to 2,500 VUs, 1-3 s think", 100, bin_vus=100),
            "./fit bench capacity-high",
        )
    if what in ("migration", "all"):
        save("migration", migration(100, 10), "./fit bench migration")
    if what in ("grpc", "all"):
        save("grpc_k6", grpc_k6(args.seconds), "./fit bench grpc")
    if what in ("scaling", "all"):
        save("coach_scaling", coach_scaling(args.seconds), "./fit bench scaling")
    if what == "profile":
        save("profile", profile(12), "./fit bench profile")
    if what in ("flood", "all"):
        save("flood", flood(args.seconds), "./fit bench flood")
    if what in ("realtime", "all"):
        from devtools import bench_realtime  # noqa: PLC0415  (it imports this module)

        save("realtime", bench_realtime.realtime(), "./fit bench realtime")
    if what in ("report", "all"):
        bench_report.render()
    return 0


# -- login flood (issue #8) ------------------------------------------------------------------


def _probe_figures(summary: dict[str, Any]) -> dict[str, Any]:
    m = summary["metrics"]
    dur, count = m["http_req_duration"], m["http_reqs"]["count"]
    return {
        "requests": count,
        "failed": round(m["http_req_failed"].get("value", 0) * count),
        "p50_ms": dur["med"],
        "p95_ms": dur["p(95)"],
        "p99_ms": dur["p(99)"],
        "max_ms": dur["max"],
    }


def _flood_figures(summary: dict[str, Any]) -> dict[str, Any]:
    checks = summary["root_group"]["checks"]
    limited = checks.get("rate limited (429)", {})
    refused = checks.get("refused (401 or 429)", {})
    m = summary["metrics"]
    return {
        "requests": m["http_reqs"]["count"],
        "rps": m["http_reqs"]["rate"],
        "status_429": limited.get("passes", 0),
        "status_401": refused.get("passes", 0) - limited.get("passes", 0),
        "other": refused.get("fails", 0),
        "p95_ms": m["http_req_duration"]["p(95)"],
    }


def flood(seconds: int) -> dict[str, Any]:
    """Unrelated reads (a catalog and a profile read at 20/s each, from 127.0.0.2) with and
    without 50 clients flooding wrong-password logins from 127.0.0.1; once with the edge limits
    as shipped, once with the per-IP limits off (the monolith's bounded hash pool alone)."""
    raw = RESULTS / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for label, limits, emails in (
        ("edge limits on", "on", "few"),
        ("per-IP limits off", "off", "few"),
        ("per-IP limits off, a new email each try", "off", "distinct"),
    ):
        env = BenchEnv("sqlite", coach_instances=1, extra_env={"FITCO_RATE_LIMITS": limits})
        with running_mesh(env) as mesh:
            base = mesh.config.envoy_url
            [token] = make_users(base, 1)
            probe_env = {"BASE_URL": base, "MODE": "probe", "RATE": "20", "TOKEN": token}
            probe_env["DURATION"] = f"{seconds}s"
            other_ip = ["--local-ips", "127.0.0.2"]
            baseline = k6_summary("flood.js", probe_env, other_ip)
            flood_env = {"BASE_URL": base, "MODE": "flood", "VUS": "50", "EMAILS": emails}
            flood_env["DURATION"] = f"{seconds + 4}s"
            with ThreadPoolExecutor(2) as pool:
                attack = pool.submit(k6_summary, "flood.js", flood_env)
                time.sleep(3)  # the flood is at full strength before the probe starts
                flooded = pool.submit(k6_summary, "flood.js", probe_env, other_ip).result()
                attack_summary = attack.result()
        slug = f"{limits}-{emails}"
        for name, summary in (
            ("baseline", baseline),
            ("flooded", flooded),
            ("attack", attack_summary),
        ):
            (raw / f"flood-{slug}-{name}.json").write_text(json.dumps(summary) + "\n")
        run: dict[str, Any] = {
            "label": label,
            "rate_limits": limits,
            "emails": emails,
            "unflooded": _probe_figures(baseline),
            "flooded": _probe_figures(flooded),
            "flood": _flood_figures(attack_summary),
        }
        print(
            f"  {label:40} reads p95 {run['unflooded']['p95_ms']:.1f} ms unflooded, "
            f"{run['flooded']['p95_ms']:.1f} ms flooded; flood: {run['flood']['status_429']} x 429, "
            f"{run['flood']['status_401']} x 401",
            flush=True,
        )
        runs.append(run)
    return {"kind": "flood", "seconds": seconds, "flood_vus": 50, "probe_rate": 20, "runs": runs}


def profile(seconds: int) -> dict[str, Any]:
    """py-spy flame graphs of the coach and the monolith while k6 loads the coach's WOD
    through Envoy JSON: once with the coach's caches on (the default) and once with them off
    (every request goes to the monolith)."""
    out: dict[str, Any] = {"kind": "profile", "runs": []}
    spy = str(ROOT / ".venv" / "bin" / "py-spy")
    for label, extra in (
        ("cached", {}),
        ("uncached", {"FITCO_COACH_CACHE_ENTRIES": "1", "FITCO_COACH_ANSWER_TTL_SECONDS": "0"}),
    ):
        with running_mesh(BenchEnv("sqlite", coach_instances=1, extra_env=extra)) as mesh:
            tokens = make_users(mesh.config.envoy_url, 20)
            shift(mesh, 100)
            with tempfile.TemporaryDirectory() as tmp:
                tokens_file = Path(tmp) / "tokens.json"
                tokens_file.write_text(json.dumps(tokens))
                spies = []
                for name in ("coach-0", "monolith"):
                    svg = RESULTS / f"profile-{label}-{name}.svg"
                    pid = mesh.pid(name)
                    spies.append(
                        subprocess.Popen(  # noqa: S603 - our own py-spy arguments
                            [
                                spy,
                                "record",
                                "--nonblocking",
                                "-d",
                                str(seconds),
                                "-r",
                                "200",
                                "-o",
                                str(svg),
                                "-p",
                                str(pid),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                env = {
                    "BASE_URL": mesh.config.envoy_url,
                    "PATH_UNDER_TEST": "/fitness/wod",
                    "TOKENS_FILE": str(tokens_file),
                    "VUS": str(CONCURRENCY),
                    "DURATION": f"{seconds}s",
                }
                m = k6_summary("throughput.js", env)["metrics"]
                for p in spies:
                    p.wait(60)
        out["runs"].append(
            {
                "label": label,
                "rps": m["http_reqs"]["rate"],
                "p95_ms": m["http_req_duration"]["p(95)"],
                "svgs": [f"profile-{label}-coach-0.svg", f"profile-{label}-monolith.svg"],
            }
        )
    return out
