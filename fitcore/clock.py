"""Clocks. Domain code asks a Clock for "now" so tests can move days without sleeping."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for unit tests: returns what it was set to."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class FileClock:
    """Test-only clock shared by several processes: the file holds an offset in seconds.

    Enabled with FITCO_TEST_CLOCK_FILE outside production. A missing or empty file means no
    offset. The offset is re-read when the file's mtime changes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._offset = 0.0

    def _read_offset(self) -> float:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0.0
        if mtime != self._mtime:
            text = self.path.read_text().strip()
            self._offset = float(text) if text else 0.0
            self._mtime = mtime
        return self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() + self._read_offset(), UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
