"""Small helpers shared by the monolith's domain modules."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from fitcore.errors import FieldViolation, InvalidArgument, NotFound
from fitrules.days import local_day, zone
from monolith.models import ProfileRow, UserRow

if TYPE_CHECKING:
    from fitcore.db import Database


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def encode_page_token(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


# Ids in page tokens are row ids: positive and within a signed 64-bit column.
_MAX_ID = 2**63 - 1


def _bad_token() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", "not a valid page token")])


def decode_page_token(token: str) -> list[Any]:
    if not token:
        return []
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad_token() from exc
    if not isinstance(key, list):
        raise _bad_token()
    return key


def token_id(key: list[Any], index: int) -> int:
    """A row id from a decoded page token; a forged or damaged token is INVALID_ARGUMENT
    (never a server error, whatever JSON it holds)."""
    value = key[index] if len(key) > index else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        raise _bad_token()
    return value


def token_time(key: list[Any], index: int) -> datetime:
    """A timestamp from a decoded page token (ISO 8601 with an offset), in UTC."""
    value = key[index] if len(key) > index else None
    if not isinstance(value, str):
        raise _bad_token()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad_token() from exc
    if moment.tzinfo is None:
        raise _bad_token()
    return moment.astimezone(UTC)


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


def newest_first_page(
    db: Database,
    model: Any,
    time_column: InstrumentedAttribute[datetime],
    user_id: int,
    start: datetime | None,
    end: datetime | None,
    size: int,
    token: str,
) -> tuple[list[Any], str]:
    """One page of a user's rows, newest first, within [start, end), keyset-paginated by
    (time, id) so pages stay stable while rows are added."""
    limit = page_size(size, 50, 500)
    after = decode_page_token(token)
    if start is not None and end is not None and start >= end:
        raise InvalidArgument([FieldViolation("end_time", "must be after start_time")])
    q = (
        select(model)
        .where(model.user_id == user_id)
        .order_by(time_column.desc(), model.id.desc())
        .limit(limit + 1)
    )
    if start is not None:
        q = q.where(time_column >= start)
    if end is not None:
        q = q.where(time_column < end)
    if after:
        at, last_id = token_time(after, 0), token_id(after, 1)
        q = q.where(or_(time_column < at, and_(time_column == at, model.id < last_id)))
    with db.transaction(write=False) as s:
        rows = list(s.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return rows, ""
    last = rows[-1]
    return rows, encode_page_token([as_utc(getattr(last, time_column.key)).isoformat(), last.id])


def user_or_not_found(s: Session, user_id: int) -> UserRow:
    """The user's row in this transaction, NOT_FOUND when the account does not exist."""
    user = s.get(UserRow, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def user_zone(s: Session, user_id: int) -> tzinfo:
    """The user's time zone (the profile's `time_zone`; UTC when none is set), read in the
    caller's transaction."""
    name = s.scalar(select(ProfileRow.time_zone).where(ProfileRow.user_id == user_id))
    return zone(name)


def user_today(s: Session, user_id: int, now: datetime) -> date:
    """The user's calendar day at `now`, in their time zone."""
    return local_day(now, user_zone(s, user_id))


# Called inside a write transaction after it changed data that goals measure (a body weight, a
# logged set, an ended session): settles the user's goals in the same transaction, so a goal
# reached is ACHIEVED at once (monolith.domain.goals.Goals.refresh_in).
AfterUserData = Callable[[Session, int], None]


def no_hook(_s: Session, _user_id: int) -> None:
    return None
