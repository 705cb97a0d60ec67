"""The generic validator (fitcore.validation): the limits the contracts declare, enforced.

Also: every request field of every RPC declares its limits (so the OpenAPI states them), the
declared limits agree with the domain's, and page tokens and timestamps never raise past
validation, whatever they hold (property-based, with hypothesis).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.legacy.v1 import legacy_pb2
from fitco.system.v1 import system_pb2
from fitco.training.v1 import training_pb2
from fitco.user.v1 import user_pb2
from google.api import httpbody_pb2
from google.protobuf import descriptor as _d
from google.protobuf import message_factory, struct_pb2, timestamp_pb2, wrappers_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from protoc_gen_openapiv2.options import annotations_pb2

from fitcore.auth import ROLES
from fitcore.errors import MAX_VIOLATIONS, InvalidArgument
from fitcore.validation import check_request, violations
from monolith.domain import accounts, history, preferences, profiles
from monolith.domain.common import decode_page_token, token_id, token_time

SERVICE_MODULES: list[ModuleType] = [
    user_pb2,
    catalog_pb2,
    history_pb2,
    coach_pb2,
    legacy_pb2,
    system_pb2,
]


def found(message: Any) -> dict[str, str]:
    return {v.field: v.description for v in violations(message)}


# -- strings ------------------------------------------------------------------------------


def test_nul_and_control_characters_are_refused_in_every_string() -> None:
    assert found(user_pb2.RegisterUserRequest(email="a@b.co\x00", name="A\x00", password="x" * 12))
    for bad in ("\x00", "\x01", "\t", "\n", "\x1b[31m", "\x7f", "\x85", "\u009f"):
        got = found(user_pb2.UpdateProfileRequest(name=wrappers_pb2.StringValue(value=f"A{bad}")))
        assert got == {"name": "must not contain control characters"}, repr(bad)
    # Free text keeps tabs and line breaks, nothing else.
    ok = user_pb2.RecordBodyMetricRequest(weight_kg=80, note="one\r\ntwo\tthree")
    assert found(ok) == {}
    for bad in ("\x00", "\x07", "\x0b", "\x1b", "\x7f"):
        assert found(user_pb2.RecordBodyMetricRequest(weight_kg=80, note=f"x{bad}")) == {
            "note": "must not contain control characters"
        }


def test_a_string_without_a_declared_pattern_still_refuses_controls() -> None:
    """HttpBody (google.api) declares nothing: the baseline applies all the same."""
    body = httpbody_pb2.HttpBody(content_type="application/json\x00", data=b"\x00 bytes are fine")
    assert found(user_pb2.IssueTokenRequest(body=body)) == {
        "body.content_type": "must not contain control characters"
    }


def test_maps_are_walked_keys_and_values() -> None:
    """No request of ours has a map yet; the walk is generic (google.protobuf.Struct has one)."""
    ok = struct_pb2.Struct()
    ok.update({"a": "fine", "b": {"c": "nested"}})
    assert found(ok) == {}
    bad = struct_pb2.Struct()
    bad.update({"a\x00": "x", "b": {"c": "nul\x00"}})
    assert found(bad) == {
        "fields": "must not contain control characters",
        "fields['b'].struct_value.fields['c'].string_value": "must not contain control characters",
    }


def test_pattern_dollar_is_the_end_of_the_text() -> None:
    # Python's `$` also matches before a final newline; JSON Schema's does not.
    req = catalog_pb2.ListExercisesRequest(page_token="abc\n")
    assert found(req) == {"page_token": "must not contain control characters"}
    assert found(catalog_pb2.GetCatalogRequest(known_version="abc$")) == {
        "known_version": "must match the pattern ^[A-Za-z0-9_-]*$"
    }


def test_lengths_count_characters_not_bytes() -> None:
    name = "é" * 200  # 400 bytes in UTF-8, 200 characters
    assert found(user_pb2.CreateUserRequest(email="a@example.com", name=name)) == {}
    assert found(user_pb2.CreateUserRequest(email="a@example.com", name=name + "é")) == {
        "name": "must be at most 200 characters"
    }
    short = user_pb2.RegisterUserRequest(email="a@example.com", name="A", password="x" * 11)
    assert found(short) == {"password": "must be at least 12 characters"}


def test_formats_and_enums() -> None:
    bad = user_pb2.CreateUserRequest(email="not-an-email", name="A", role="root")
    assert found(bad) == {"email": "must be an email address", "role": "must be one of user, admin"}
    for day in ("yesterday", "2026-02-30", "2026-1-1", "20260101"):
        assert found(history_pb2.GetServedWodRequest(day=day)) == {
            "day": "must be a date YYYY-MM-DD"
        }
    assert found(history_pb2.GetServedWodRequest(day="2028-02-29")) == {}
    stats = training_pb2.GetStatsRequest(period="DAY")  # "" is allowed: said as "or empty"
    assert found(stats) == {"period": "must be one of WEEK, MONTH, YEAR (or empty)"}


# -- numbers ------------------------------------------------------------------------------


def test_ranges_inclusive_and_exclusive() -> None:
    req = user_pb2.CompleteOnboardingRequest(weight=19.9, height=250.1, fitness_goal="strength")
    assert found(req) == {
        "weight": "must be between 20 and 400",
        "height": "must be between 100 and 250",
    }
    edge = user_pb2.CompleteOnboardingRequest(weight=20, height=250, fitness_goal="strength")
    assert found(edge) == {}
    assert found(history_pb2.RecordExerciseRequest(exercise_id=1, sets=1, weight_kg=-0.5)) == {
        "weight_kg": "must be greater than 0"
    }
    assert found(history_pb2.RecordExerciseRequest(exercise_id=1, sets=1, weight_kg=1e-9)) == {}
    assert found(catalog_pb2.ListExercisesRequest(page_size=-1)) == {
        "page_size": "must be at least 1"
    }


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_must_be_finite(value: float) -> None:
    req = user_pb2.RecordBodyMetricRequest(weight_kg=80, waist_cm=value)
    assert found(req) == {"waist_cm": "must be a finite number"}


def test_zero_means_not_given_and_required_means_not_zero() -> None:
    # Optional fields left at zero are not range-checked (proto3 JSON cannot tell 0 from absent).
    assert found(user_pb2.RecordBodyMetricRequest(weight_kg=80)) == {}
    assert found(user_pb2.RecordBodyMetricRequest()) == {"weight_kg": "is required"}
    assert found(user_pb2.RegisterUserRequest()) == {
        "email": "is required",
        "name": "is required",
        "password": "is required",
    }
    assert found(user_pb2.UpdatePreferencesRequest()) == {"preferences": "is required"}
    assert found(history_pb2.RecordWodRequest(day="2026-01-01", implementation="coach")) == {
        "items": "is required"
    }
    # A wrapper carries presence; holding zero it means "clear", which the domain judges.
    assert found(user_pb2.UpdateProfileRequest(birth_year=wrappers_pb2.Int32Value(value=0))) == {}
    assert found(user_pb2.UpdateProfileRequest(birth_year=wrappers_pb2.Int32Value(value=5))) == {
        "birth_year": "must be at least 1900"
    }


# -- lists, messages, well-known types ----------------------------------------------------


def test_list_caps_and_items() -> None:
    prefs = user_pb2.Preferences(equipment=["bench", "jetpack"], avoid_muscle_group_ids=[3, -1])
    assert found(user_pb2.UpdatePreferencesRequest(preferences=prefs)) == {
        "preferences.equipment[1]": (
            "must be one of bodyweight, dumbbell, barbell, kettlebell, cable, machine, "
            "cardio_machine, jump_rope, pull_up_bar, bench, pool"
        ),
        "preferences.avoid_muscle_group_ids[1]": "must be at least 1",
    }
    # A list over its cap is reported once, and its items are not walked.
    long = user_pb2.Preferences(equipment=["\x00"] * 10_000)
    assert found(user_pb2.UpdatePreferencesRequest(preferences=long)) == {
        "preferences.equipment": "must have at most 20 items"
    }
    items = [history_pb2.WodItem(exercise_id=1)] * 13
    wod = history_pb2.RecordWodRequest(day="2026-01-01", implementation="coach", items=items)
    assert found(wod) == {"items": "must have at most 12 items"}


def test_timestamps_out_of_range() -> None:
    for seconds, nanos in ((253_402_300_800, 0), (-62_135_596_801, 0), (0, -1), (0, 10**9)):
        at = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
        req = user_pb2.RecordBodyMetricRequest(weight_kg=80, measured_at=at)
        assert found(req) == {"measured_at": "must be a valid time between years 1 and 9999"}
    ok = timestamp_pb2.Timestamp(seconds=253_402_300_799, nanos=999_999_999)
    assert found(user_pb2.RecordBodyMetricRequest(weight_kg=80, measured_at=ok)) == {}


def test_violations_per_error_are_capped() -> None:
    items = [history_pb2.WodItem(exercise_id=-1, sets=-1, reps=-1, reason="\x00")] * 12
    req = history_pb2.RecordWodRequest(day="x", implementation="x", items=items)
    assert len(violations(req)) == MAX_VIOLATIONS + 1  # one more says "there is more"
    with pytest.raises(InvalidArgument) as info:
        check_request(req)
    assert len(info.value.violations) == MAX_VIOLATIONS
    assert info.value.message.endswith("; and more")


# -- the contracts ------------------------------------------------------------------------


def _request_fields() -> Iterator[tuple[str, _d.FieldDescriptor]]:
    """Every field a client can send to an RPC of ours, nested messages included."""
    seen: set[str] = set()
    todo: list[_d.Descriptor] = [
        method.input_type
        for module in SERVICE_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]
    while todo:
        message = todo.pop()
        if message.full_name in seen or not message.full_name.startswith("fitco."):
            continue
        seen.add(message.full_name)
        for field in message.fields:
            yield f"{message.full_name}.{field.name}", field
            if field.message_type is not None:
                todo.append(field.message_type)


def _declared(field: _d.FieldDescriptor) -> Any:
    options = field.GetOptions()
    if not options.HasExtension(annotations_pb2.openapiv2_field):
        return None
    return options.Extensions[annotations_pb2.openapiv2_field]


def test_every_request_field_declares_its_limits() -> None:
    """So the OpenAPI states them: strings a length and a pattern that refuses NUL (and other
    controls, but in free text and passwords), lists a cap. A new field fails here until it
    declares them."""
    undeclared = []
    for name, field in _request_fields():
        schema = _declared(field)
        text = field.type == _d.FieldDescriptor.TYPE_STRING
        wrapped_text = (
            field.message_type is not None
            and field.message_type.full_name == "google.protobuf.StringValue"
        )
        if field.is_repeated and (schema is None or not schema.max_items):
            undeclared.append(f"{name}: no max_items")
        if text or wrapped_text:
            if schema is None:
                undeclared.append(f"{name}: no limits")
                continue
            if not (schema.max_length or schema.enum or schema.format == "date"):
                undeclared.append(f"{name}: no max_length")
            if schema.pattern:
                probe = found_with_value(field, "a\x00b")
                if not probe:
                    undeclared.append(f"{name}: pattern lets NUL through")
    assert not undeclared, "\n".join(undeclared)


def found_with_value(field: _d.FieldDescriptor, value: str) -> dict[str, str]:
    assert field.containing_type is not None
    message = message_factory.GetMessageClass(field.containing_type)()
    if field.message_type is not None:
        getattr(message, field.name).value = value
    elif field.is_repeated:
        getattr(message, field.name).append(value)
    else:
        setattr(message, field.name, value)
    return found(message)


def test_declared_limits_agree_with_the_domain() -> None:
    def schema(message: Any, field: str) -> Any:
        return _declared(message.DESCRIPTOR.fields_by_name[field])

    register = schema(user_pb2.RegisterUserRequest, "password")
    assert (register.min_length, register.max_length) == (
        accounts.MIN_PASSWORD,
        accounts.MAX_PASSWORD,
    )
    change = schema(user_pb2.ChangePasswordRequest, "new_password")
    assert (change.min_length, change.max_length) == (
        accounts.MIN_PASSWORD,
        accounts.MAX_PASSWORD,
    )
    assert schema(user_pb2.RegisterUserRequest, "email").max_length == accounts.MAX_EMAIL
    goals = set(profiles.GOALS) | set(profiles.GOAL_ALIASES)
    for message in (
        user_pb2.CompleteOnboardingRequest,
        user_pb2.UpdateProfileRequest,
        legacy_pb2.CompleteOnboardingRequest,
    ):
        assert set(schema(message, "fitness_goal").enum) == goals
        weight, height = schema(message, "weight"), schema(message, "height")
        assert (weight.minimum, weight.maximum, height.minimum, height.maximum) == (
            20,
            400,
            100,
            250,
        )
    assert set(schema(user_pb2.CompleteOnboardingRequest, "sex").enum) == set(profiles.SEXES)
    experience = schema(user_pb2.CompleteOnboardingRequest, "experience")
    assert set(experience.enum) == set(profiles.EXPERIENCE)
    activity = schema(user_pb2.CompleteOnboardingRequest, "activity_level")
    assert set(activity.enum) == set(profiles.ACTIVITY_LEVELS)
    update_activity = schema(user_pb2.UpdateProfileRequest, "activity_level")
    assert set(update_activity.enum) == {"", *profiles.ACTIVITY_LEVELS}
    assert set(schema(user_pb2.Preferences, "equipment").enum) == set(preferences.EQUIPMENT)
    assert set(schema(user_pb2.CreateUserRequest, "role").enum) == set(ROLES)
    wod = history_pb2.RecordWodRequest
    assert set(schema(wod, "implementation").enum) == set(history.IMPLEMENTATIONS)
    assert schema(wod, "items").max_items == history.MAX_WOD_ITEMS
    assert set(schema(wod, "kind").enum) == {"", *history.WOD_KINDS}
    assert schema(wod, "notes").max_items == history.MAX_WOD_NOTES


# -- page tokens and timestamps never raise past validation --------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(JSON.map(_token), st.text(max_size=300)))
def test_page_tokens_never_raise_anything_but_invalid_argument(token: str) -> None:
    with contextlib.suppress(InvalidArgument):
        check_request(user_pb2.ListBodyMetricsRequest(page_token=token))
    try:
        key = decode_page_token(token)
    except InvalidArgument:
        return
    for read in (lambda: token_id(key, 0), lambda: token_time(key, 0), lambda: token_id(key, 1)):
        with contextlib.suppress(InvalidArgument):
            read()


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
def test_timestamps_that_pass_validation_convert(seconds: int, nanos: int) -> None:
    at = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    try:
        check_request(user_pb2.ListBodyMetricsRequest(start_time=at))
    except InvalidArgument:
        return
    at.ToDatetime()  # what the servicers do with it: must not raise
