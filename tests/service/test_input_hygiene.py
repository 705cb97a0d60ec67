"""A NUL or another control character in any string is INVALID_ARGUMENT with a field
violation, on SQLite and on PostgreSQL alike (PostgreSQL cannot store NUL: before the declared
limits were enforced it answered INTERNAL there, and SQLite stored the value)."""

from __future__ import annotations

from functools import partial

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2
from google.protobuf import wrappers_pb2

from tests.conftest import RunningMonolith, bootstrap_key, register
from tests.rpc import expect_error, field_violations

NUL = "a\x00b"


def _admin_md(monolith: RunningMonolith) -> tuple[tuple[str, str]]:
    c = monolith.client.users
    key = (("x-bootstrap-key", bootstrap_key(monolith.key_dir)),)
    try:
        admin = c.BootstrapAdmin(
            user_pb2.BootstrapAdminRequest(email="root@example.com", name="Root"), metadata=key
        )
        password = admin.password
    except grpc.RpcError as exc:  # already bootstrapped by an earlier test of this module
        pytest.skip(f"admin exists: {exc}")
    token = c.Login(user_pb2.LoginRequest(email="root@example.com", password=password))
    return (("authorization", f"Bearer {token.access_token}"),)


def test_nul_in_registration_is_invalid_argument(monolith: RunningMonolith) -> None:
    users = monolith.client.users
    for call, field in (
        (
            partial(
                users.RegisterUser,
                user_pb2.RegisterUserRequest(email="ada@example.com", name=NUL, password="x" * 12),
            ),
            "name",
        ),
        (
            partial(
                users.RegisterUser,
                user_pb2.RegisterUserRequest(
                    email="a\x00@example.com", name="Ada", password="x" * 12
                ),
            ),
            "email",
        ),
        (
            partial(
                users.RegisterUser,
                user_pb2.RegisterUserRequest(email="ada@example.com", name="Ada", password=NUL * 6),
            ),
            "password",
        ),
        (partial(users.Login, user_pb2.LoginRequest(email=NUL, password="whatever-long")), "email"),
    ):
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, call)
        assert field_violations(err) == {field: "must not contain control characters"}
    # Nothing was stored: the same email registers fine afterwards.
    users.RegisterUser(
        user_pb2.RegisterUserRequest(email="ada@example.com", name="Ada", password="x" * 12)
    )


def test_nul_in_admin_created_user_is_invalid_argument(monolith: RunningMonolith) -> None:
    md = _admin_md(monolith)
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: monolith.client.users.CreateUser(
            user_pb2.CreateUserRequest(email="member@example.com", name=NUL), metadata=md
        ),
    )
    assert set(field_violations(err)) == {"name"}


def test_control_characters_in_profile_metric_and_history(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    calls = [
        (
            lambda: c.users.CompleteOnboarding(
                user_pb2.CompleteOnboardingRequest(
                    weight=80, height=180, fitness_goal="strength", sex=NUL
                ),
                metadata=user.md,
            ),
            "sex",
        ),
        (
            lambda: c.users.UpdateProfile(
                user_pb2.UpdateProfileRequest(name=wrappers_pb2.StringValue(value=NUL)),
                metadata=user.md,
            ),
            "name",
        ),
        (
            lambda: c.users.RecordBodyMetric(
                user_pb2.RecordBodyMetricRequest(weight_kg=80, note=NUL), metadata=user.md
            ),
            "note",
        ),
        (
            lambda: c.history.RecordExercise(
                history_pb2.RecordExerciseRequest(exercise_id=1, sets=3, reps=8, note=NUL),
                metadata=user.md,
            ),
            "note",
        ),
        (
            lambda: c.history.RecordExercise(
                history_pb2.RecordExerciseRequest(exercise_id=1, sets=3, note="bell\x07"),
                metadata=user.md,
            ),
            "note",
        ),
        (
            lambda: c.users.UpdatePreferences(
                user_pb2.UpdatePreferencesRequest(
                    preferences=user_pb2.Preferences(equipment=["bench", NUL])
                ),
                metadata=user.md,
            ),
            "preferences.equipment[1]",
        ),
        (
            lambda: c.history.ListExercisesOnDay(
                history_pb2.ListExercisesOnDayRequest(day="2026-11-2\x000"), metadata=user.md
            ),
            "day",
        ),
        (
            lambda: c.users.ListBodyMetrics(
                user_pb2.ListBodyMetricsRequest(page_token=NUL), metadata=user.md
            ),
            "page_token",
        ),
    ]
    for call, field in calls:
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, call)
        assert set(field_violations(err)) == {field}
    # Notes are free text: line breaks and tabs are kept.
    metric = c.users.RecordBodyMetric(
        user_pb2.RecordBodyMetricRequest(weight_kg=80, note="felt good\r\n\tafter a rest day"),
        metadata=user.md,
    ).metric
    assert metric.note == "felt good\r\n\tafter a rest day"
    history = c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=user.md)
    assert not history.entries  # nothing half-written by the refused requests


@pytest.mark.parametrize(
    "token",
    [
        "WyJ4Il0",  # ["x"]
        "W251bGxd",  # [null]
        "WzFlNDAwXQ",  # [1e400]
        "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ",  # an id beyond 64 bits
        "WyIyMDI2LTAxLTAxIiwge31d",  # ["2026-01-01", {}]
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgNV0",  # a time without an offset
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgLTVd",  # a negative id
        "W3RydWVd",  # [true]
    ],
)
def test_forged_page_tokens_are_invalid_argument(monolith: RunningMonolith, token: str) -> None:
    """A token is opaque to clients, but whatever one sends is a 400, never a 500 (the ids
    in it reach SQL as parameters: PostgreSQL refuses integers beyond 64 bits)."""
    c = monolith.client
    user = register(c)
    for call in (
        lambda: c.users.ListBodyMetrics(
            user_pb2.ListBodyMetricsRequest(page_token=token), metadata=user.md
        ),
        lambda: c.history.ListHistory(
            history_pb2.ListHistoryRequest(page_token=token), metadata=user.md
        ),
        lambda: c.catalog.ListExercises(catalog_pb2.ListExercisesRequest(page_token=token)),
    ):
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, call)
        assert set(field_violations(err)) == {"page_token"}
