"""A small thread-safe LRU cache with an optional time-to-live, for hot paths.

Used by the coach (a user's time zone, today's served WOD, the rendered answer) and by the
entitlements client (fitcore.entitlements) in the coach and the monolith. Bounded by entries
(least recently used first out) so a process keeps a fixed footprint whatever the number of
users; entries older than `ttl_seconds` are dropped when read.

Written here rather than taken from cachetools: one small class with an injectable monotonic
clock (the tests move time) is less than a dependency with its own locking story (cachetools'
caches are not thread-safe on their own).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_entries
        self._ttl = ttl_seconds
        self._now = monotonic
        self._lock = threading.Lock()
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            stored_at, value = item
            if self._ttl is not None and self._now() - stored_at >= self._ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = (self._now(), value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        """Forget `key` (a value this process knows to be stale)."""
        with self._lock:
            self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)
