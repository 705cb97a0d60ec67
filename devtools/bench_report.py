"""Render bench/results/REPORT.md and PNG plots from the JSON results of `./fit bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devtools.paths import ROOT

RESULTS = ROOT / "bench" / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _cell(cells: list[dict[str, Any]], db: str, rpc: str, path: str) -> dict[str, Any]:
    return next(c for c in cells if (c["db"], c["rpc"], c["path"]) == (db, rpc, path))


def _matrix_section(
    m: dict[str, Any], out: list[str], targets: list[tuple[str, str, str, bool]]
) -> None:
    cells = m["cells"]
    dbs = sorted({c["db"] for c in cells}, key=lambda d: d != "sqlite")
    paths = ["grpc_direct", "grpc_envoy", "json_envoy"]
    out += [
        "## Matrix: no-op vs legacy WOD vs coach WOD, per path and database",
        "",
        f"Closed loop, {m['concurrency']} concurrent clients, {m['seconds']} s per cell after a "
        "2 s warm-up, all cells in one run (`./fit bench matrix`). gRPC cells: ghz "
        "(4 HTTP/2 connections); JSON cells: k6. WOD cells measure the steady state (the day's "
        "WOD is already recorded, as for every request after a user's first of the day). "
        "Ratio = throughput / the no-op's throughput on the same path and database.",
        "",
        "| db | RPC | path | req/s | ratio to no-op | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for db in dbs:
        for rpc in ("noop", "legacy_wod", "coach_wod"):
            for path in paths:
                c = _cell(cells, db, rpc, path)
                noop = _cell(cells, db, "noop", path)["rps"]
                out.append(
                    f"| {db} | {rpc} | {path} | {c['rps']:.0f} | {c['rps'] / noop:.2f} | "
                    f"{c['p50_ms']:.1f} | {c['p95_ms']:.1f} | {c['p99_ms']:.1f} | {c['errors']} |"
                )
    out.append("")
    for db in dbs:
        coach_json = _cell(cells, db, "coach_wod", "json_envoy")["rps"]
        noop_json = _cell(cells, db, "noop", "json_envoy")["rps"]
        coach_grpc = _cell(cells, db, "coach_wod", "grpc_envoy")["rps"]
        r1 = coach_json / noop_json
        r2 = coach_json / coach_grpc
        targets.append(
            (f"coach WOD via Envoy JSON ≥ 0.50 x no-op ({db})", "≥ 0.50", f"{r1:.2f}", r1 >= 0.5)
        )
        targets.append(
            (
                f"JSON via Envoy ≥ 0.85 x gRPC via Envoy, coach WOD ({db})",
                "≥ 0.85",
                f"{r2:.2f}",
                r2 >= 0.85,
            )
        )
    fig, axes = plt.subplots(1, len(dbs), figsize=(6 * len(dbs), 4), squeeze=False)
    for ax, db in zip(axes[0], dbs, strict=True):
        width = 0.25
        for i, rpc in enumerate(("noop", "legacy_wod", "coach_wod")):
            values = [_cell(cells, db, rpc, p)["rps"] for p in paths]
            ax.bar([x + i * width for x in range(len(paths))], values, width, label=rpc)
        ax.set_xticks([x + width for x in range(len(paths))], paths)
        ax.set_ylabel("requests/s")
        ax.set_title(f"throughput per path ({db})")
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=100)
    plt.close(fig)
    out += ["![throughput per path](throughput.png)", ""]


def _capacity_section(
    runs: list[dict[str, Any]], out: list[str], targets: list[tuple[str, str, str, bool]]
) -> None:
    out += ["## Capacity (the seed's method: ramping VUs, 1-3 s think time, GET /fitness/wod)", ""]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        levels = run["levels"]
        out += [
            f"### {run['label']}, {run['coach_percent']} % coach",
            "",
            f"Largest concurrency with p95 < 200 ms (and no failure) at that level and every level below (bins of {run.get('bin_vus', 10)} VUs): **{run['max_vus_p95_under_200ms']} VUs**; "
            f"with p95 < 5 s: **{run['max_vus_p95_under_5s']} VUs**. Requests: {run['total_requests']}, "
            f"failed: {run['total_failed']}. Command: `{run['command']}`.",
            "",
            "| VUs | requests | failed | p50 ms | p95 ms | p99 ms |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['vus']} | {r['requests']} | {r['failed']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} |"
            for r in levels
        ]
        out.append("")
        label = f"{run['label']} ({run['coach_percent']} % coach)"
        ax.plot(
            [r["vus"] for r in levels],
            [r["p95_ms"] for r in levels],
            marker=".",
            label=f"p95, {label}",
        )
        ax.plot(
            [r["vus"] for r in levels],
            [r["p50_ms"] for r in levels],
            linestyle="--",
            label=f"p50, {label}",
        )
    ax.set_xlabel("concurrent users (VUs)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.axhline(200, color="red", linewidth=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "latency_vs_vus.png", dpi=100)
    plt.close(fig)
    out += ["![latency percentiles against VUs](latency_vs_vus.png)", ""]
    seed = next(
        (r for r in runs if r["label"].startswith("seed") and r["coach_percent"] == 100), None
    )
    if seed:
        p95_200 = max(r["p95_ms"] for r in seed["levels"] if r["vus"] <= 200)
        targets.append(
            (
                "seed load shape (ramp to 200 VUs): p95 < 50 ms, 0 errors",
                "< 50 ms, 0",
                f"{p95_200:.1f} ms, {seed['total_failed']}",
                p95_200 < 50 and seed["total_failed"] == 0,
            )
        )
    high = next((r for r in runs if not r["label"].startswith("seed")), None)
    if high:
        n = high["max_vus_p95_under_200ms"]
        targets.append(("largest user count at p95 < 200 ms", "≥ 2,000", f"{n}", n >= 2000))


def render() -> Path:
    out: list[str] = ["# Load test report", ""]
    targets: list[tuple[str, str, str, bool]] = []
    m = _load("matrix")
    machine = (m or _load("capacity") or {}).get("machine", {})
    if machine:
        out += [
            f"Machine: {machine['cores']} cores, {machine['platform']}; Python {machine['python']}; "
            f"{machine['envoy']}; k6 {machine['k6'].split('@')[-1]}; ghz {machine['ghz'].split('@')[-1]}; "
            f"measured {machine['date']}. Load generator on the same machine; loopback only.",
            "",
        ]
    body: list[str] = []
    if m:
        _matrix_section(m, body, targets)
    runs = [r for r in (_load("capacity"), _load("capacity_coach"), _load("capacity_high")) if r]
    if runs:
        _capacity_section(runs, body, targets)
    mig = _load("migration")
    if mig:
        body += [
            "## Migration under load (`./fit bench migration`)",
            "",
            f"{mig['rate']} WOD requests/s from 100 users while the split moved 0 → 10 → 50 → 100 %: "
            f"**{mig['requests']} requests, {mig['failed']} failed**, p95 {mig['p95_ms']:.1f} ms.",
            "",
            "| coach % | requests | measured coach share | fell back |",
            "|---:|---:|---:|---:|",
        ]
        body += [
            f"| {p['coach_percent']} | {p['requests']} | {p['coach_share']:.3f} | {p['fell_back']} |"
            for p in mig["phases"]
        ]
        body.append("")
    g = _load("grpc_k6")
    if g:
        body += [
            "## k6 gRPC (`./fit bench grpc`)",
            "",
            f"GetWod through Envoy as native gRPC, {m['concurrency'] if m else 20} VUs: "
            f"{g['rps']:.0f} req/s, p95 {g['p95_ms']:.1f} ms, failed checks {g['checks_failed']}.",
            "",
        ]
    s = _load("coach_scaling")
    if s:
        body += [
            "## 1 vs 2 coach instances (`./fit bench scaling`)",
            "",
            "| coach instances | req/s | p95 ms |",
            "|---:|---:|---:|",
        ]
        body += [
            f"| {r['coach_instances']} | {r['rps']:.0f} | {r['p95_ms']:.1f} |" for r in s["rows"]
        ]
        body.append("")
    prof = _load("profile")
    if prof:
        body += [
            "## Profiles (`./fit bench profile`, py-spy while k6 loads the coach WOD via Envoy JSON)",
            "",
        ]
        for r in prof["runs"]:
            body.append(
                f"- {r['label']}: {r['rps']:.0f} req/s, p95 {r['p95_ms']:.1f} ms — "
                + ", ".join(f"[{svg}]({svg})" for svg in r["svgs"])
            )
        body.append("")
    out += ["## Targets", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
    out += [f"| {t} | {w} | {v} | {'yes' if ok else '**no**'} |" for t, w, v, ok in targets]
    out += ["", *body]
    path = RESULTS / "REPORT.md"
    path.write_text("\n".join(out) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
