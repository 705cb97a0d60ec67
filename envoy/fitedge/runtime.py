"""The WOD traffic split (strangler fig): the runtime keys of the weighted route, persisted in
Envoy's disk runtime layer (survives restarts) and changed live through the admin API (no
restart, no dropped request). `./fit shift wod --coach N` drives it (adr/02).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fitedge.clusters import COACH_CLUSTER, LEGACY_CLUSTER

ROUTING_PREFIX = "routing.wod"


@dataclass(frozen=True)
class Split:
    legacy: int
    coach: int

    @classmethod
    def coach_percent(cls, percent: int) -> Split:
        if not 0 <= percent <= 100:
            raise ValueError("the coach share is a percentage, 0 to 100")
        return cls(100 - percent, percent)

    def keys(self) -> dict[str, int]:
        return {
            f"{ROUTING_PREFIX}.{LEGACY_CLUSTER}": self.legacy,
            f"{ROUTING_PREFIX}.{COACH_CLUSTER}": self.coach,
        }


def write_runtime(runtime_dir: Path, split: Split) -> Path:
    """Persist the split as a new disk-layer snapshot and swap `current` to it atomically."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    snapshot = runtime_dir / f"v{time.time_ns()}"
    for key, value in split.keys().items():
        path = snapshot / "envoy" / Path(*key.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    tmp = runtime_dir / f".current-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(snapshot.name)
    os.replace(tmp, runtime_dir / "current")
    for old in runtime_dir.glob("v*"):
        if old != snapshot and old.is_dir():
            for f in sorted(old.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            old.rmdir()
    return snapshot


def read_runtime(runtime_dir: Path) -> Split | None:
    base = runtime_dir / "current" / "envoy" / Path(*ROUTING_PREFIX.split("."))
    try:
        return Split(
            int((base / LEGACY_CLUSTER).read_text()), int((base / COACH_CLUSTER).read_text())
        )
    except (FileNotFoundError, ValueError):
        return None


def apply_live(admin_url: str, split: Split) -> bool:
    """Change the running Envoy's split in one admin call (no restart). False if not running."""
    query = urllib.parse.urlencode(split.keys())
    req = urllib.request.Request(f"{admin_url}/runtime_modify?{query}", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - loopback admin URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def live_split(admin_url: str) -> Split | None:
    try:
        url = f"{admin_url}/runtime"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback admin URL
            entries = json.load(resp)["entries"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return None
    keys = Split(0, 0).keys()
    values = [entries.get(k, {}).get("final_value") for k in keys]
    if None in values:
        return None
    return Split(int(values[0]), int(values[1]))
