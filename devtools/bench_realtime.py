"""`./fit bench realtime`: how many idle event watchers this machine holds (issue #12).

On a mesh of its own (bench.running_mesh: NATS, two realtime instances behind Envoy), for
growing numbers of watchers — each a distinct user holding `GET /v1/events:watch` open over
HTTP/1.1 through Envoy, as a JSON client does — it measures:

- fan-out: one event for every watcher published at the same moment into the event log (the
  path every producer's outbox relay takes), five rounds; latency = arrival at the client -
  the moment the burst started (so the burst's own publishing time counts against it);
- memory per idle stream: the realtime processes' and Envoy's resident memory with the
  watchers connected minus before, divided by the watchers;
- unary p95 (k6, GET /v1/profile through Envoy, 20 VUs) with no watcher connected, then with
  each number of watchers connected.

The largest number of watchers whose fan-out p95 stays under 100 ms is the answer. Raw figures
go to bench/results/realtime.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import nats
from fitco.events.v1 import events_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from devtools import bench
from devtools.mesh import Mesh
from fitcore.eventbus import EVENTS_STREAM, events_stream_config, events_subject

DEFAULT_LEVELS = (250, 500, 1000, 1500, 2000, 3000)
ROUNDS = 5
FANOUT_BOUND_MS = 100.0


@dataclass
class Watcher:
    user_id: int
    token: str
    arrivals: dict[str, float] = field(default_factory=dict)  # event marker -> arrival time
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    failed: str = ""


async def _read_chunked(reader: asyncio.StreamReader, on_line: Callable[[bytes], None]) -> None:
    """Decode an HTTP/1.1 chunked body and call `on_line` for each complete line."""
    pending = b""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return
        pending += await reader.readexactly(size)
        await reader.readexactly(2)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                on_line(line)


async def _watch(host: str, port: int, w: Watcher, ready: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        w.writer = writer
        writer.write(
            (
                "GET /v1/events:watch HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nAuthorization: Bearer {w.token}\r\n"
                "Accept: application/json\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            w.failed = status.decode(errors="replace").strip()
            ready.set()
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        ready.set()

        def on_line(line: bytes) -> None:
            event = json.loads(line)
            if event.get("type") == "STREAK":
                w.arrivals[event["streak"]["day"]] = time.time()

        await _read_chunked(reader, on_line)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        w.failed = w.failed or f"{type(exc).__name__}: {exc}"
        ready.set()


def _rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _rss(mesh: Mesh, prefix: str) -> int:
    return sum(_rss_kb(pid) for name, pid in mesh.pids().items() if name.startswith(prefix))


async def _broadcast(nats_url: str, watchers: list[Watcher], marker: str) -> tuple[float, float]:
    """Publish one STREAK event for every watcher's user at once; return the start time and
    how long the burst took to be stored (every publish acknowledged)."""
    nc = await nats.connect(nats_url)
    try:
        ts = Timestamp()
        started = time.time()
        ts.FromDatetime(datetime.fromtimestamp(started, UTC))
        payloads = [
            (
                w.user_id,
                events_pb2.WatchEventsResponse(
                    type="STREAK", time=ts, streak=events_pb2.Streak(days=2, day=marker)
                ).SerializeToString(),
            )
            for w in watchers
        ]
        # Plain publishes to the stream's subjects (stored all the same; no acknowledgement
        # waited for one by one): the burst reaches NATS at once, as from many producers.
        for uid, data in payloads:
            await nc.publish(events_subject(uid), data)
        await nc.flush()
        return started, time.time() - started
    finally:
        await nc.close()


def _pct(values: list[float], pct: float) -> float:
    return bench._pct(sorted(values), pct)


async def _level(mesh: Mesh, users: list[Watcher], count: int) -> dict[str, Any]:
    c = mesh.config
    watchers = users[:count]
    rt_before, envoy_before = _rss(mesh, "realtime"), _rss(mesh, "envoy")
    ready_events = [asyncio.Event() for _ in watchers]
    opened = time.monotonic()
    for i, (w, ready) in enumerate(zip(watchers, ready_events, strict=True)):
        w.arrivals.clear()
        w.failed = ""
        w.task = asyncio.create_task(_watch(c.host, c.envoy_port, w, ready))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # a gentle ramp, like clients arriving
    await asyncio.gather(*(r.wait() for r in ready_events))
    open_seconds = time.monotonic() - opened
    await asyncio.sleep(3)  # settle
    failed = [w.failed for w in watchers if w.failed]
    rt_after, envoy_after = _rss(mesh, "realtime"), _rss(mesh, "envoy")
    latencies: list[float] = []
    bursts: list[float] = []
    missing = 0
    for n in range(ROUNDS):
        marker = f"{count}-{n}"
        started, burst = await _broadcast(c.nats_url, [w for w in watchers if not w.failed], marker)
        bursts.append(burst * 1000)
        await asyncio.sleep(2.0)
        for w in watchers:
            if w.failed:
                continue
            if marker in w.arrivals:
                latencies.append((w.arrivals[marker] - started) * 1000)
            else:
                missing += 1
    unary = await asyncio.to_thread(
        bench.k6_cell, c.envoy_url, "/v1/profile", users[-1].token, 15, 20
    )
    for w in watchers:
        if w.writer is not None:
            w.writer.close()
        if w.task is not None:
            w.task.cancel()
    await asyncio.sleep(2)
    connected = count - len(failed)
    return {
        "watchers": count,
        "connected": connected,
        "open_failures": failed[:5],
        "open_seconds": round(open_seconds, 2),
        "fanout_events": len(latencies),
        "fanout_missing": missing,
        "fanout_p50_ms": round(_pct(latencies, 50), 1),
        "fanout_p95_ms": round(_pct(latencies, 95), 1),
        "fanout_max_ms": round(max(latencies, default=0.0), 1),
        # How long publishing the burst itself took (the load generator's part of the above).
        "burst_publish_ms": [round(b, 1) for b in bursts],
        "realtime_rss_kb": [rt_before, rt_after],
        "envoy_rss_kb": [envoy_before, envoy_after],
        "realtime_kb_per_stream": round((rt_after - rt_before) / max(1, connected), 1),
        "envoy_kb_per_stream": round((envoy_after - envoy_before) / max(1, connected), 1),
        "unary_with_watchers": unary,
    }


def realtime(levels: tuple[int, ...] = DEFAULT_LEVELS) -> dict[str, Any]:
    with bench.running_mesh(bench.BenchEnv("sqlite")) as mesh:
        base = mesh.config.envoy_url
        print(f"realtime: creating {max(levels) + 1} users", flush=True)
        tokens = bench.make_users(base, max(levels) + 1)
        users = [
            Watcher(int(jwt.decode(t, options={"verify_signature": False})["sub"]), t)
            for t in tokens
        ]
        _ensure_stream(mesh)
        print("realtime: unary baseline (no watcher)", flush=True)
        baseline = bench.k6_cell(base, "/v1/profile", tokens[-1], 15, 20)
        rows = []
        for count in levels:
            print(f"realtime: {count} watchers", flush=True)
            row = asyncio.run(_level(mesh, users, count))
            print(json.dumps({k: v for k, v in row.items() if k != "unary_with_watchers"}))
            rows.append(row)
        held = [
            r["watchers"]
            for r in rows
            if r["fanout_p95_ms"] < FANOUT_BOUND_MS
            and not r["fanout_missing"]
            and r["connected"] == r["watchers"]
        ]
        return {
            "scenario": "idle JSON watchers (HTTP/1.1 NDJSON through Envoy, distinct users), "
            f"one event per watcher published at once, {ROUNDS} rounds per level",
            "instances": {
                "realtime": mesh.config.realtime_instances,
                "envoy_workers": mesh.config.envoy_concurrency,
            },
            "unary_baseline": baseline,
            "levels": rows,
            "max_watchers_with_fanout_p95_under_100ms": max(held, default=0),
            "cores": os.cpu_count(),
        }


def _ensure_stream(mesh: Mesh) -> None:
    async def ensure() -> None:
        nc = await nats.connect(mesh.config.nats_url)
        try:
            js = nc.jetstream()
            await js.stream_info(EVENTS_STREAM)
        except Exception:  # the services create it at start; create it if none has yet
            await js.add_stream(events_stream_config())
        finally:
            await nc.close()

    asyncio.run(ensure())
