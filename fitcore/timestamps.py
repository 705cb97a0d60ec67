"""datetime <-> google.protobuf.Timestamp, for every service's converters and clients."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """`moment` (timezone-aware; a naive one is taken as UTC) as a Timestamp."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment if moment.tzinfo is None else moment.astimezone(UTC))
    return out


def optional_datetime(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """The UTC datetime of a Timestamp field, None when the field is absent."""
    return message.ToDatetime(tzinfo=UTC) if present else None
