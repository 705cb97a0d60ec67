"""Per-user token versions, cached for a couple of seconds: how services refuse revoked tokens.

A logout or a password change increments the user's token version in the monolith's database;
tokens carry the version they were issued with (`tv`), and a token older than the current
version is revoked. Asking the source (a primary-key read in the monolith, a `CheckToken` RPC
in the coach) on every request would put it on every hot path, so each service keeps what it
learnt per user for `ttl_seconds` (2 s by default): a revocation is seen everywhere within that
time, and the source is asked at most once per user per `ttl_seconds` per process.

Written here rather than taken from a cache library because the entries are merged, not just
stored: versions only grow, so the cache keeps the highest version it has learnt for a user,
whether from the source or from a local logout (`note`), and a stale entry can only make a
revocation late, never undo one. It is a dict with a lock and an insertion-order bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fitcore.auth import Principal

DEFAULT_TTL_SECONDS = 2.0
DEFAULT_MAX_ENTRIES = 100_000


class TokenVersionCache:
    """`fetch(principal)` returns the current version of the principal's user (or a lower bound
    that is enough to refuse the principal's token); results are kept `ttl_seconds`."""

    def __init__(
        self,
        fetch: Callable[[Principal], int],
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._max = max_entries
        self._now = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, tuple[float, int]] = OrderedDict()

    def current(self, principal: Principal) -> int:
        user_id = principal.user_id
        with self._lock:
            entry = self._entries.get(user_id)
        if entry is not None and self._now() - entry[0] < self._ttl:
            return entry[1]
        # Outside the lock: a slow source must not hold up other users' requests. Two requests
        # of one user may both ask; the answer is the same.
        return self._store(user_id, self._fetch(principal))

    def note(self, user_id: int, version: int) -> None:
        """This process just changed the version (logout, password change): use it at once."""
        self._store(user_id, version)

    def _store(self, user_id: int, version: int) -> int:
        with self._lock:
            old = self._entries.pop(user_id, None)
            if old is not None and old[1] > version:
                # Versions only grow: an answer read before a local change committed is older.
                version = old[1]
            self._entries[user_id] = (self._now(), version)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            return version

    def __len__(self) -> int:
        return len(self._entries)
