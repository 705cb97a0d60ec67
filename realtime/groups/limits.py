"""The limits of group sessions (fitco.groups.v1 states the defaults), configurable with
REALTIME_GROUP_* variables, and the per-member rate limiter.

The limiter is written here rather than taken from a library: it must answer at once
("may this message go now?", never wait), be one small object per connection (thousands of
them, no background task, no store) and read an injectable monotonic clock so its rules are
unit-tested without sleeping. A token bucket is a dozen lines; the rate-limiting libraries
on PyPI either block until a token is free or bring a storage backend.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fitcore.config import ConfigError, Env

Monotonic = Callable[[], float]


@dataclass(frozen=True)
class GroupLimits:
    """Every number a group session obeys (defaults: the contract's comments)."""

    max_members: int = 20
    groups_per_user: int = 100
    connections_per_user: int = 3
    # Messages per second per member, and the burst allowed above that rate.
    rate_per_second: float = 5.0
    burst: int = 10
    # A member whose messages keep being refused (this many in this window) is disconnected.
    flood_rejections: int = 20
    flood_window_seconds: float = 10.0
    idle_seconds: float = 300.0
    kept_messages: int = 500
    welcome_messages: int = 20
    # How often an instance vouches for its connections (see GroupMemberRow); a connection not
    # vouched for in three periods is taken as gone (its instance died).
    presence_seconds: float = 30.0
    # Messages waiting for a slow member before it is disconnected.
    queue_size: int = 1000

    @classmethod
    def from_env(cls, env: Env) -> GroupLimits:
        limits = cls(
            max_members=env.get_int("REALTIME_GROUP_MAX_MEMBERS", cls.max_members),
            groups_per_user=env.get_int("REALTIME_GROUP_GROUPS_PER_USER", cls.groups_per_user),
            connections_per_user=env.get_int(
                "REALTIME_GROUP_CONNECTIONS_PER_USER", cls.connections_per_user
            ),
            rate_per_second=env.get_float("REALTIME_GROUP_RATE_PER_SECOND", cls.rate_per_second),
            burst=env.get_int("REALTIME_GROUP_BURST", cls.burst),
            flood_rejections=env.get_int("REALTIME_GROUP_FLOOD_REJECTIONS", cls.flood_rejections),
            flood_window_seconds=env.get_float(
                "REALTIME_GROUP_FLOOD_WINDOW_SECONDS", cls.flood_window_seconds
            ),
            idle_seconds=env.get_float("REALTIME_GROUP_IDLE_SECONDS", cls.idle_seconds),
            kept_messages=env.get_int("REALTIME_GROUP_KEPT_MESSAGES", cls.kept_messages),
            welcome_messages=env.get_int("REALTIME_GROUP_WELCOME_MESSAGES", cls.welcome_messages),
            presence_seconds=env.get_float("REALTIME_GROUP_PRESENCE_SECONDS", cls.presence_seconds),
            queue_size=env.get_int("REALTIME_GROUP_QUEUE_SIZE", cls.queue_size),
        )
        limits.check()
        return limits

    def check(self) -> None:
        positive = {
            "REALTIME_GROUP_MAX_MEMBERS": self.max_members,
            "REALTIME_GROUP_GROUPS_PER_USER": self.groups_per_user,
            "REALTIME_GROUP_CONNECTIONS_PER_USER": self.connections_per_user,
            "REALTIME_GROUP_RATE_PER_SECOND": self.rate_per_second,
            "REALTIME_GROUP_BURST": self.burst,
            "REALTIME_GROUP_FLOOD_REJECTIONS": self.flood_rejections,
            "REALTIME_GROUP_FLOOD_WINDOW_SECONDS": self.flood_window_seconds,
            "REALTIME_GROUP_IDLE_SECONDS": self.idle_seconds,
            "REALTIME_GROUP_KEPT_MESSAGES": self.kept_messages,
            "REALTIME_GROUP_PRESENCE_SECONDS": self.presence_seconds,
            "REALTIME_GROUP_QUEUE_SIZE": self.queue_size,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if not 0 <= self.welcome_messages <= self.kept_messages:
            raise ConfigError("REALTIME_GROUP_WELCOME_MESSAGES must be 0..KEPT_MESSAGES")

    @property
    def presence_ttl_seconds(self) -> float:
        return 3 * self.presence_seconds


class TokenBucket:
    """`rate` tokens a second up to `burst`; a message takes one or is refused."""

    def __init__(self, rate: float, burst: int, clock: Monotonic = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """A member's messages: `allow()` says whether this one may go (else it is REJECTED),
    `flooding` whether the member kept sending after being refused (`flood_rejections`
    refusals within `flood_window_seconds`) and should be disconnected."""

    def __init__(self, limits: GroupLimits, clock: Monotonic = time.monotonic) -> None:
        self._bucket = TokenBucket(limits.rate_per_second, limits.burst, clock)
        self._clock = clock
        self._window = limits.flood_window_seconds
        self._max_rejections = limits.flood_rejections
        self._rejections: deque[float] = deque()

    def allow(self) -> bool:
        if self._bucket.take():
            return True
        now = self._clock()
        self._rejections.append(now)
        while self._rejections and self._rejections[0] <= now - self._window:
            self._rejections.popleft()
        return False

    @property
    def flooding(self) -> bool:
        return len(self._rejections) >= self._max_rejections
