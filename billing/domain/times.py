"""Timestamps as billing stores them: always timezone-aware UTC.

SQLite hands `DateTime(timezone=True)` columns back without a timezone (PostgreSQL keeps it), so
every datetime read from a row goes through `utc()` before it is compared or converted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...
def utc(moment: datetime | None) -> datetime | None:
    """`moment` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
