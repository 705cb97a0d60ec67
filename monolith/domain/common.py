"""Small helpers shared by the monolith's domain modules."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from typing import Any

from fitcore.errors import FieldViolation, InvalidArgument


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def encode_page_token(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> list[Any]:
    if not token:
        return []
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument([FieldViolation("page_token", "not a valid page token")]) from exc
    if not isinstance(key, list):
        raise InvalidArgument([FieldViolation("page_token", "not a valid page token")])
    return key


def page_size(requested: int, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    if requested == 0:
        return default
    return min(requested, maximum)


def parse_day(value: str, field: str = "day") -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidArgument([FieldViolation(field, "must be a date YYYY-MM-DD")]) from exc
