"""Input hygiene: the field limits declared in the contracts, enforced on every request.

The limits live once, in the `.proto` files, as the field options protoc-gen-openapiv2 turns
into the OpenAPI (`grpc.gateway.protoc_gen_openapiv2.options.openapiv2_field`: max_length,
min_length, pattern, format, enum, minimum, maximum, max_items, ...) plus
`google.api.field_behavior = REQUIRED`. `check_request` reads those same options from the
request's descriptors and walks any message, so the OpenAPI states what the server enforces and
a new field's limits need no code. It knows nothing of workouts: business rules that need the
database or the catalog stay in the domain, which runs only after this check passed.

Rules, beyond the declared options:
- proto3 JSON cannot tell an explicit zero from a field left out, so a zero value (0, "", an empty
  list, a wrapper holding zero) means "not given": it is exempt from the value limits, and only
  a REQUIRED field must not be zero. A range that includes "not given" is therefore declared
  from the smallest non-zero value (`minimum: 1`), or as `exclusive_minimum` above 0 for
  decimals. A declared bound of 0 counts only with `exclusive_*` (0 is also "not declared").
- no string may hold NUL (PostgreSQL cannot store it) and, unless the field's pattern allows
  some, no control characters (C0, DEL, C1); patterns use the common subset of ECMA-262 and
  Python `re`, with `$` meaning the end of the text as in JSON Schema.
- numbers must be finite; a Timestamp must be in its valid range (so no handler can raise
  converting it).
- at most MAX_VIOLATIONS problems are reported per request (fitcore.errors caps every error).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor as _d
from google.protobuf.message import Message
from protoc_gen_openapiv2.options import annotations_pb2, openapiv2_pb2

from fitcore.errors import MAX_VIOLATIONS, FieldViolation, InvalidArgument

# C0 controls, DEL and C1 controls: refused in every string whose pattern does not allow them.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
NUL = "\x00"

# google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
_NANOS = 999_999_999
_WRAPPERS = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)
# JSON Schema "email": one @ between a non-empty local part and a dotted domain, no spaces.
# Deliberately loose: the service that owns the address checks it properly (email-validator).
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _compile(pattern: str) -> re.Pattern[str]:
    # JSON Schema (ECMA-262) `$` is the end of the text; Python's also matches before a final \n.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class _Rule:
    """What one field declares, read once per message type."""

    field: _d.FieldDescriptor
    required: bool
    schema: openapiv2_pb2.JSONSchema | None
    pattern: re.Pattern[str] | None

    @property
    def name(self) -> str:
        return str(self.field.name)

    @property
    def repeated(self) -> bool:
        return bool(self.field.is_repeated)

    @property
    def is_map(self) -> bool:
        t = self.field.message_type
        return bool(self.repeated and t is not None and t.GetOptions().map_entry)


def _rules_of(descriptor: _d.Descriptor) -> tuple[_Rule, ...]:
    rules = []
    for field in descriptor.fields:
        options = field.GetOptions()
        behaviors = options.Extensions[field_behavior_pb2.field_behavior]
        schema = (
            options.Extensions[annotations_pb2.openapiv2_field]
            if options.HasExtension(annotations_pb2.openapiv2_field)
            else None
        )
        pattern = _compile(schema.pattern) if schema is not None and schema.pattern else None
        rules.append(_Rule(field, field_behavior_pb2.REQUIRED in behaviors, schema, pattern))
    return tuple(rules)


_cache: dict[str, tuple[_Rule, ...]] = {}
_cache_lock = threading.Lock()


def _rules(descriptor: Any) -> tuple[_Rule, ...]:  # a Descriptor (pure Python or upb)
    rules = _cache.get(descriptor.full_name)
    if rules is None:
        rules = _rules_of(descriptor)
        with _cache_lock:
            _cache[descriptor.full_name] = rules
    return rules


class _Collector:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.violations: list[FieldViolation] = []

    @property
    def full(self) -> bool:
        return len(self.violations) > self.limit

    def add(self, field: str, description: str) -> None:
        if not self.full:
            self.violations.append(FieldViolation(field, description))


def _is_zero(value: Any) -> bool:
    return value in (0, "", b"")  # False == 0 too


def _present(message: Message, rule: _Rule) -> bool:
    value = getattr(message, rule.name)
    if rule.repeated:
        return len(value) > 0
    if rule.field.message_type is not None:
        if not message.HasField(rule.name):
            return False
        if rule.field.message_type.full_name in _WRAPPERS:
            return not _is_zero(value.value)
        return True
    if rule.field.has_presence:
        return message.HasField(rule.name)
    return not _is_zero(value)


def _walk(message: Message, prefix: str, out: _Collector) -> None:
    for rule in _rules(message.DESCRIPTOR):
        if out.full:
            return
        path = f"{prefix}{rule.name}"
        if rule.required and not _present(message, rule):
            out.add(path, "is required")
            continue
        value = getattr(message, rule.name)
        if rule.repeated:
            _check_list(rule, value, path, out)
            continue
        if rule.field.message_type is not None:
            if message.HasField(rule.name):
                _check_message(rule, value, path, out)
            continue
        if rule.field.has_presence or not _is_zero(value):
            _check_scalar(rule, value, path, out)


def _check_list(rule: _Rule, values: Any, path: str, out: _Collector) -> None:
    s = rule.schema
    count = len(values)
    if count == 0:
        return  # an empty list is "not given" (REQUIRED was checked before)
    if s is not None and s.max_items and count > s.max_items:
        out.add(path, f"must have at most {s.max_items} items")
        return  # do not walk a list longer than allowed
    if s is not None and s.min_items and count < s.min_items:
        out.add(path, f"must have at least {s.min_items} items")
    if rule.is_map:
        for key in values:
            if isinstance(key, str):
                _check_text(rule, key, path, out, schema=None)
            item = values[key]
            if isinstance(item, Message):
                _walk(item, f"{path}[{key!r}].", out)
            elif isinstance(item, str):
                _check_text(rule, item, path, out, schema=None)
        return
    unique = s is not None and s.unique_items and rule.field.message_type is None
    if unique and len(set(values)) != count:
        out.add(path, "must not contain duplicates")
    for i, item in enumerate(values):
        if out.full:
            return
        if rule.field.message_type is not None:
            _check_message(rule, item, f"{path}[{i}]", out)
        elif not _is_zero(item):
            _check_scalar(rule, item, f"{path}[{i}]", out)


def _check_message(rule: _Rule, value: Message, path: str, out: _Collector) -> None:
    name = value.DESCRIPTOR.full_name
    if name in _WRAPPERS:
        inner = value.value  # type: ignore[attr-defined]
        if not _is_zero(inner):
            _check_scalar(rule, inner, path, out)
    elif name == "google.protobuf.Timestamp":
        seconds, nanos = value.seconds, value.nanos  # type: ignore[attr-defined]
        low, high = _TIMESTAMP_SECONDS
        if not (low <= seconds <= high and 0 <= nanos <= _NANOS):
            out.add(path, "must be a valid time between years 1 and 9999")
    else:
        _walk(value, f"{path}.", out)


def _check_scalar(rule: _Rule, value: Any, path: str, out: _Collector) -> None:
    if isinstance(value, str):
        _check_text(rule, value, path, out, schema=rule.schema)
    elif isinstance(value, bool | bytes):
        return
    elif isinstance(value, int | float):
        _check_number(rule, value, path, out)


def _check_text(
    rule: _Rule,
    value: str,
    path: str,
    out: _Collector,
    schema: openapiv2_pb2.JSONSchema | None,
) -> None:
    pattern = rule.pattern if schema is not None else None
    controls = CONTROL_CHARACTERS.search(value) is not None
    if NUL in value or (controls and pattern is None):
        out.add(path, "must not contain control characters")
        return
    if schema is None:
        return
    if schema.max_length and len(value) > schema.max_length:
        out.add(path, f"must be at most {schema.max_length} characters")
        return
    if schema.min_length and len(value) < schema.min_length:
        out.add(path, f"must be at least {schema.min_length} characters")
    if pattern is not None and pattern.search(value) is None:
        if controls:
            out.add(path, "must not contain control characters")
        else:
            out.add(path, f"must match the pattern {schema.pattern}")
        return
    if schema.enum and value not in schema.enum:
        # "" in an enum means "leave it out" (proto3 JSON cannot send an empty value otherwise).
        named = [v for v in schema.enum if v]
        empty = " (or empty)" if len(named) < len(schema.enum) else ""
        out.add(path, f"must be one of {', '.join(named)}{empty}")
    if schema.format == "email" and not _EMAIL.match(value):
        out.add(path, "must be an email address")
    elif schema.format == "date" and not _is_date(value):
        out.add(path, "must be a date YYYY-MM-DD")


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_number(rule: _Rule, value: float, path: str, out: _Collector) -> None:
    enum_type = rule.field.enum_type
    if enum_type is not None:
        if enum_type.values_by_number.get(int(value)) is None:
            names = ", ".join(v.name for v in enum_type.values)
            out.add(path, f"must be one of {names}")
        return
    if isinstance(value, float) and not math.isfinite(value):
        out.add(path, "must be a finite number")
        return
    s = rule.schema
    if s is None:
        return
    low = s.minimum if (s.minimum or s.exclusive_minimum) else None
    high = s.maximum if (s.maximum or s.exclusive_maximum) else None
    too_low = low is not None and (value <= low if s.exclusive_minimum else value < low)
    too_high = high is not None and (value >= high if s.exclusive_maximum else value > high)
    if not (too_low or too_high):
        return
    if low is not None and high is not None and not (s.exclusive_minimum or s.exclusive_maximum):
        out.add(path, f"must be between {_number(low)} and {_number(high)}")
    elif too_low:
        word = "greater than" if s.exclusive_minimum else "at least"
        out.add(path, f"must be {word} {_number(low)}")  # type: ignore[arg-type]
    else:
        word = "less than" if s.exclusive_maximum else "at most"
        out.add(path, f"must be {word} {_number(high)}")  # type: ignore[arg-type]


def violations(message: Message, limit: int = MAX_VIOLATIONS) -> list[FieldViolation]:
    """Every problem with the message's declared limits, at most `limit` + 1 of them (one more
    than the limit says there are more)."""
    out = _Collector(limit)
    _walk(message, "", out)
    return out.violations


def check_request(message: Message) -> None:
    """Raise INVALID_ARGUMENT (with a field violation per problem) unless the message keeps
    the limits its contract declares."""
    found = violations(message)
    if found:
        raise InvalidArgument(found)
