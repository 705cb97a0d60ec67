"""UserService over gRPC against an in-process monolith, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import grpc
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc
from fitco.user.v1 import user_pb2
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2, wrappers_pb2

from fitcore.clock import FixedClock
from monolith import migrations
from monolith.app import build
from tests.conftest import (
    Databases,
    RunningMonolith,
    bootstrap_key,
    client_for,
    make_env,
    onboard,
    register,
)
from tests.rpc import error_reason, expect_error, field_violations


def test_register_login_and_profile(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c, "Ada")
    login = c.users.Login(user_pb2.LoginRequest(email=user.email.upper(), password=user.password))
    assert login.token_type == "bearer"
    assert login.expires_in == 1800
    assert login.onboarded is False
    profile = c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md).profile
    assert (profile.email, profile.name, profile.onboarded) == (user.email, "Ada", False)


def test_register_rejects_bad_input_with_field_violations(monolith: RunningMonolith) -> None:
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: monolith.client.users.RegisterUser(
            user_pb2.RegisterUserRequest(email="not-an-email", name="", password="short")
        ),
    )
    assert set(field_violations(err)) == {"email", "name", "password"}


def test_duplicate_email_is_already_exists(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    err = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: monolith.client.users.RegisterUser(
            user_pb2.RegisterUserRequest(email=user.email, name="Again", password="another-pass1")
        ),
    )
    assert error_reason(err) == "EMAIL_TAKEN"


def test_wrong_password_is_unauthenticated(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    for email, password in ((user.email, "wrong-password"), ("nobody@example.com", "x" * 12)):
        request = user_pb2.LoginRequest(email=email, password=password)
        expect_error(grpc.StatusCode.UNAUTHENTICATED, partial(monolith.client.users.Login, request))


def test_issue_token_accepts_form_and_json(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    form = f"grant_type=password&username={user.email}&password={user.password}".encode()
    for content_type, data in (
        ("application/x-www-form-urlencoded", form),
        (
            "application/json",
            f'{{"email": "{user.email}", "password": "{user.password}"}}'.encode(),
        ),
    ):
        resp = monolith.client.users.IssueToken(
            user_pb2.IssueTokenRequest(
                body=httpbody_pb2.HttpBody(content_type=content_type, data=data)
            )
        )
        assert resp.token_type == "bearer"
        assert resp.access_token
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: monolith.client.users.IssueToken(
            user_pb2.IssueTokenRequest(
                body=httpbody_pb2.HttpBody(
                    content_type="application/x-www-form-urlencoded",
                    data=b"grant_type=client_credentials&username=a&password=b",
                )
            )
        ),
    )
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: monolith.client.users.IssueToken(
            user_pb2.IssueTokenRequest(
                body=httpbody_pb2.HttpBody(content_type="application/json", data=b"{not json")
            )
        ),
    )


def test_onboarding_sets_profile_and_records_weight(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    resp = c.users.CompleteOnboarding(
        user_pb2.CompleteOnboardingRequest(
            weight=72.5, height=168, fitness_goal="lose_weight", birth_year=1990, sex="female"
        ),
        metadata=user.md,
    )
    p = resp.profile
    assert (p.weight, p.height, p.fitness_goal, p.onboarded) == (72.5, 168, "weight_loss", True)
    assert (p.birth_year, p.sex) == (1990, "female")
    login = c.users.Login(user_pb2.LoginRequest(email=user.email, password=user.password))
    assert login.onboarded is True
    metrics = c.users.ListBodyMetrics(user_pb2.ListBodyMetricsRequest(), metadata=user.md)
    assert [m.weight_kg for m in metrics.metrics] == [72.5]


def test_legacy_profile_paths_answer_bare_objects(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c, "Grace")
    legacy = legacy_pb2_grpc.LegacyServiceStub(c.channel)
    done = legacy.CompleteOnboarding(
        legacy_pb2.CompleteOnboardingRequest(weight=60, height=165, fitness_goal="endurance"),
        metadata=user.md,
    )
    profile = json.loads(done.body.data)
    assert profile["onboarded"] is True  # a boolean, not the string "true"
    assert (profile["email"], profile["weight"], profile["fitness_goal"]) == (
        user.email,
        60,
        "endurance",
    )
    again = json.loads(
        legacy.GetProfile(legacy_pb2.GetProfileRequest(), metadata=user.md).body.data
    )
    assert again == profile
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: legacy.CompleteOnboarding(
            legacy_pb2.CompleteOnboardingRequest(weight=60), metadata=user.md
        ),
    )
    assert set(field_violations(err)) == {"height", "fitness_goal"}


def test_onboarding_validates_every_field(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: monolith.client.users.CompleteOnboarding(
            user_pb2.CompleteOnboardingRequest(weight=5, height=400, fitness_goal="be famous"),
            metadata=user.md,
        ),
    )
    assert set(field_violations(err)) == {"weight", "height", "fitness_goal"}
    profile = monolith.client.users.GetProfile(user_pb2.GetProfileRequest(), metadata=user.md)
    assert profile.profile.onboarded is False  # nothing half-written


def test_update_profile_changes_only_given_fields(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    onboard(c, user)
    p = c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            weight=wrappers_pb2.DoubleValue(value=78.0),
            experience=wrappers_pb2.StringValue(value="intermediate"),
        ),
        metadata=user.md,
    ).profile
    assert (p.weight, p.height, p.fitness_goal, p.experience) == (
        78.0,
        180,
        "muscle_gain",
        "intermediate",
    )
    metrics = c.users.ListBodyMetrics(user_pb2.ListBodyMetricsRequest(), metadata=user.md).metrics
    assert sorted(m.weight_kg for m in metrics) == [78.0, 80.0]


def test_body_metrics_over_time_paginated(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    start = monolith.clock.now() - timedelta(days=10)
    for day in range(5):
        at = timestamp_pb2.Timestamp()
        at.FromDatetime(start + timedelta(days=day))
        c.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(
                measured_at=at, weight_kg=90 - day, body_fat_percent=25
            ),
            metadata=user.md,
        )
    page1 = c.users.ListBodyMetrics(user_pb2.ListBodyMetricsRequest(page_size=3), metadata=user.md)
    assert [m.weight_kg for m in page1.metrics] == [86, 87, 88]
    page2 = c.users.ListBodyMetrics(
        user_pb2.ListBodyMetricsRequest(page_size=3, page_token=page1.next_page_token),
        metadata=user.md,
    )
    assert [m.weight_kg for m in page2.metrics] == [89, 90]
    assert page2.next_page_token == ""
    future = timestamp_pb2.Timestamp()
    future.FromDatetime(datetime.now(UTC) + timedelta(days=400))
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(measured_at=future, weight_kg=1000),
            metadata=user.md,
        ),
    )
    assert set(field_violations(err)) == {"weight_kg"}  # the contract's limit comes first
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.RecordBodyMetric(
            user_pb2.RecordBodyMetricRequest(measured_at=future, weight_kg=80),
            metadata=user.md,
        ),
    )
    assert set(field_violations(err)) == {"measured_at"}  # then the domain's clock rule
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.ListBodyMetrics(
            user_pb2.ListBodyMetricsRequest(page_token="garbage!"), metadata=user.md
        ),
    )


def test_preferences_defaults_update_and_validation(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    prefs = c.users.GetPreferences(user_pb2.GetPreferencesRequest(), metadata=user.md).preferences
    assert (prefs.training_days_per_week, prefs.session_minutes, list(prefs.equipment)) == (
        3,
        45,
        [],
    )
    new = user_pb2.Preferences(
        equipment=["dumbbell", "bench"],
        training_days_per_week=4,
        session_minutes=30,
        avoid_muscle_group_ids=[13],
    )
    c.users.UpdatePreferences(user_pb2.UpdatePreferencesRequest(preferences=new), metadata=user.md)
    got = c.users.GetPreferences(user_pb2.GetPreferencesRequest(), metadata=user.md).preferences
    assert list(got.equipment) == ["bench", "dumbbell"]
    assert list(got.avoid_muscle_group_ids) == [13]
    assert got.training_days_per_week == 4
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                preferences=user_pb2.Preferences(
                    equipment=["jetpack"], training_days_per_week=9, avoid_muscle_group_ids=[999]
                )
            ),
            metadata=user.md,
        ),
    )
    # The contract's limits first (vocabulary, range), then the catalog's muscle groups.
    assert set(field_violations(err)) == {
        "preferences.equipment[0]",
        "preferences.training_days_per_week",
    }
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.UpdatePreferences(
            user_pb2.UpdatePreferencesRequest(
                preferences=user_pb2.Preferences(avoid_muscle_group_ids=[999])
            ),
            metadata=user.md,
        ),
    )
    assert set(field_violations(err)) == {"preferences.avoid_muscle_group_ids[0]"}


def test_admin_bootstrap_create_and_list(monolith: RunningMonolith) -> None:
    """Bootstrap once per database: key checks, first admin, admin-only RPCs."""
    c = monolith.client
    key = bootstrap_key(monolith.key_dir)
    req = user_pb2.BootstrapAdminRequest(email="boss@example.com", name="Boss")
    expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: c.users.BootstrapAdmin(req))
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: c.users.BootstrapAdmin(req, metadata=(("x-bootstrap-key", "wrong-key-wrong-key"),)),
    )
    admin = c.users.BootstrapAdmin(req, metadata=(("x-bootstrap-key", key),))
    assert admin.role == "admin"
    assert len(admin.password) >= 16
    err = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: c.users.BootstrapAdmin(
            user_pb2.BootstrapAdminRequest(email="boss2@example.com", name="Boss 2"),
            metadata=(("x-bootstrap-key", key),),
        ),
    )
    assert error_reason(err) == "ADMIN_EXISTS"
    token = c.users.Login(
        user_pb2.LoginRequest(email="boss@example.com", password=admin.password)
    ).access_token
    md = (("authorization", f"Bearer {token}"),)
    created = c.users.CreateUser(
        user_pb2.CreateUserRequest(email="coach.member@example.com", name="Member"), metadata=md
    )
    assert (created.role, len(created.password) >= 16) == ("user", True)
    # The generated password works.
    c.users.Login(
        user_pb2.LoginRequest(email="coach.member@example.com", password=created.password)
    )
    expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: c.users.CreateUser(
            user_pb2.CreateUserRequest(email="coach.member@example.com", name="M"), metadata=md
        ),
    )
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.CreateUser(
            user_pb2.CreateUserRequest(email="invalid", name="X", role="root"), metadata=md
        ),
    )
    assert set(field_violations(err)) == {"email", "role"}
    listed = c.users.ListUsers(user_pb2.ListUsersRequest(page_size=1), metadata=md)
    assert len(listed.users) == 1
    assert listed.next_page_token
    everyone = c.users.ListUsers(user_pb2.ListUsersRequest(), metadata=md).users
    assert {"boss@example.com", "coach.member@example.com"} <= {u.email for u in everyone}
    legacy_stub = legacy_pb2_grpc.LegacyServiceStub(c.channel)
    legacy = json.loads(legacy_stub.ListUsers(legacy_pb2.ListUsersRequest(), metadata=md).body.data)
    assert [u["email"] for u in legacy] == [u.email for u in everyone]
    assert set(legacy[0]) == {"email", "name", "role"}
    # A plain user may not use admin RPCs.
    member = register(c)
    for call in (
        lambda: c.users.ListUsers(user_pb2.ListUsersRequest(), metadata=member.md),
        lambda: legacy_pb2_grpc.LegacyServiceStub(c.channel).ListUsers(
            legacy_pb2.ListUsersRequest(), metadata=member.md
        ),
        lambda: c.users.CreateUser(
            user_pb2.CreateUserRequest(email="x@example.com", name="X"), metadata=member.md
        ),
    ):
        expect_error(grpc.StatusCode.PERMISSION_DENIED, call)


def test_concurrent_bootstraps_create_exactly_one_admin(
    databases: Databases, key_dir: Path, clock: FixedClock
) -> None:
    url = databases.new()
    migrations.upgrade(url)
    # Every attempt reaches the database (the claim is under test, not the hash pool).
    env = make_env(key_dir, url, FITCO_HASH_MAX_WAITING="64", FITCO_HASH_WAIT_SECONDS="60")
    app = build(env, clock=clock, address="127.0.0.1:0")
    app.service.start()
    client = client_for(f"127.0.0.1:{app.port}")
    key = bootstrap_key(key_dir)

    def attempt(n: int) -> grpc.StatusCode:
        try:
            client.users.BootstrapAdmin(
                user_pb2.BootstrapAdminRequest(email=f"admin{n}@example.com", name=f"Admin {n}"),
                metadata=(("x-bootstrap-key", key),),
            )
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    try:
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(attempt, range(6)))
    finally:
        client.channel.close()
        app.stop()
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS}
