"""The catalog as the coach sees it: fetched from the monolith, cached, revalidated by version.

Never fetched per request: after `ttl` seconds one caller revalidates with `known_version`
(a tiny `not_modified` answer when nothing changed). When the monolith cannot be reached the
cache keeps serving what it has for up to `max_stale` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fitco.catalog.v1 import catalog_pb2

from fitcore.errors import Unavailable

log = logging.getLogger("coach.catalog")


@dataclass(frozen=True)
class CatalogView:
    version: str
    exercises: dict[int, catalog_pb2.Exercise]
    muscle_groups: dict[int, catalog_pb2.MuscleGroup]


class CatalogCache:
    def __init__(
        self,
        fetch: Callable[[str], catalog_pb2.GetCatalogResponse],
        ttl: float = 60.0,
        max_stale: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._max_stale = max_stale
        self._now = monotonic
        self._lock = threading.Lock()
        self._view: CatalogView | None = None
        self._checked_at = 0.0
        self._fresh_at = 0.0

    @property
    def loaded(self) -> bool:
        return self._view is not None

    def get(self) -> CatalogView:
        view = self._view
        if view is not None and self._now() - self._checked_at < self._ttl:
            return view
        with self._lock:
            if self._view is not None and self._now() - self._checked_at < self._ttl:
                return self._view
            return self._refresh()

    def _refresh(self) -> CatalogView:
        known = self._view.version if self._view else ""
        try:
            resp = self._fetch(known)
        except Exception:
            if self._view is not None and self._now() - self._fresh_at < self._max_stale:
                log.warning("catalog refresh failed; serving the cached catalog", exc_info=True)
                self._checked_at = self._now()  # do not hammer a struggling monolith
                return self._view
            raise
        now = self._now()
        self._checked_at = self._fresh_at = now
        if resp.not_modified and self._view is not None:
            return self._view
        if not resp.exercises:
            raise Unavailable("the catalog is empty")
        self._view = CatalogView(
            version=resp.version,
            exercises={e.id: e for e in resp.exercises},
            muscle_groups={g.id: g for g in resp.muscle_groups},
        )
        log.info(
            "catalog loaded", extra={"version": resp.version, "exercises": len(resp.exercises)}
        )
        return self._view
