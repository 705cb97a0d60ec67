"""The user's days: "today", "yesterday", weeks and streaks are calendar days in the user's
IANA time zone (the profile's `time_zone`; UTC when none is set or it is unknown)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC_NAME = "UTC"


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_zone(name: str) -> bool:
    return name in known_zones()


@lru_cache(maxsize=1024)
def zone(name: str | None) -> tzinfo:
    """The zone of an IANA name; UTC for "" / None / a name this system does not know."""
    if not name or name == UTC_NAME:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_day(moment: datetime, tz: tzinfo) -> date:
    """The calendar day of `moment` (timezone-aware) in `tz`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant (UTC) of `day` in `tz`."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of `day` in `tz`, as UTC instants (23 or 25 hours long on DST changes)."""
    return day_start(day, tz), day_start(day + timedelta(days=1), tz)


def week_start(day: date) -> date:
    """Monday of the ISO week of `day`."""
    return day - timedelta(days=day.weekday())
