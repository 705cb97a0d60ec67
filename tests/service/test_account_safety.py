"""Account safety: change the password, log out, and revoked tokens refused within seconds by
the monolith, by another monolith replica and by the coach (issue #9)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from fitco.coach.v1 import coach_pb2
from fitco.user.v1 import user_pb2
from google.api import httpbody_pb2
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text

from fitcore.clock import FixedClock
from monolith.domain.passwords import Passwords
from tests.conftest import (
    Client,
    RunningMonolith,
    UserSession,
    bootstrap_key,
    make_env,
    onboard,
    register,
    running_monolith,
)
from tests.rpc import error_reason, expect_error, field_violations
from tests.service.inproc import another_monolith, first_failure, running_coach

NEW_PASSWORD = "a brand new passphrase"
CACHE_SECONDS = 2.0  # FITCO_TOKEN_VERSION_CACHE_SECONDS default
SLACK = 1.0  # a loaded 2-core machine


def _md(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _profile(c: Client, token: str) -> user_pb2.GetProfileResponse:
    return c.users.GetProfile(user_pb2.GetProfileRequest(), metadata=_md(token))


def _tv(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False}).get("tv", 0))


def _revoked(call: Callable[[], Any]) -> None:
    err = expect_error(grpc.StatusCode.UNAUTHENTICATED, call)
    assert error_reason(err) == "TOKEN_REVOKED", err.details()


def _login(c: Client, user: UserSession, password: str) -> str:
    return str(
        c.users.Login(user_pb2.LoginRequest(email=user.email, password=password)).access_token
    )


def _change(c: Client, token: str, current: str, new: str) -> user_pb2.ChangePasswordResponse:
    return c.users.ChangePassword(
        user_pb2.ChangePasswordRequest(current_password=current, new_password=new),
        metadata=_md(token),
    )


def _refused_within(call: Callable[[], Any], seconds: float) -> float:
    """Call until it fails with TOKEN_REVOKED; the seconds that took (fails after `seconds`)."""
    err, took = first_failure(call, seconds)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
    assert error_reason(err) == "TOKEN_REVOKED", err.details()
    return took


def test_change_password_revokes_every_earlier_token_and_returns_a_fresh_one(
    monolith: RunningMonolith,
) -> None:
    c = monolith.client
    user = register(c)
    other_session = _login(c, user, user.password)
    resp = _change(c, user.token, user.password, NEW_PASSWORD)
    assert resp.token_type == "bearer" and resp.expires_in == 1800
    assert _tv(resp.access_token) == _tv(user.token) + 1
    # The same process learnt the new version at once: no wait at all here.
    _revoked(lambda: _profile(c, user.token))
    _revoked(lambda: _profile(c, other_session))
    assert _profile(c, resp.access_token).profile.email == user.email
    err = expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: _login(c, user, user.password))
    assert error_reason(err) == "BAD_CREDENTIALS"
    fresh = _login(c, user, NEW_PASSWORD)
    assert _tv(fresh) == _tv(resp.access_token)
    assert _profile(c, fresh).profile.email == user.email
    # A revoked token can change nothing, even knowing the password.
    _revoked(lambda: _change(c, user.token, NEW_PASSWORD, "yet another passphrase"))


def test_change_password_validation_leaves_the_session_alone(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    cases = [
        (user.password, "eleven-char", {"new_password"}),
        (user.password, "x" * 129, {"new_password"}),
        (user.password, user.password, {"new_password"}),
        ("", NEW_PASSWORD, {"current_password"}),
        ("not my password", NEW_PASSWORD, {"current_password"}),
    ]
    for current, new, fields in cases:
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            partial(_change, c, user.token, current, new),
        )
        assert set(field_violations(err)) == fields, (current, new, field_violations(err))
    # Nothing changed: the token and the password still work.
    assert _profile(c, user.token).profile.email == user.email
    assert _login(c, user, user.password)
    # Twelve characters are enough; 128 too.
    assert _change(c, user.token, user.password, "x" * 12).access_token
    token = _login(c, user, "x" * 12)
    assert _change(c, token, "x" * 12, "y" * 128).access_token


def test_change_password_needs_a_token(monolith: RunningMonolith) -> None:
    c = monolith.client
    err = expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: c.users.ChangePassword(
            user_pb2.ChangePasswordRequest(current_password="a", new_password=NEW_PASSWORD)
        ),
    )
    assert error_reason(err) == "TOKEN_MISSING"
    expect_error(grpc.StatusCode.UNAUTHENTICATED, lambda: c.users.Logout(user_pb2.LogoutRequest()))


@pytest.fixture
def strict_monolith(
    migrated_url: str, key_dir: Path, clock: FixedClock
) -> Iterator[RunningMonolith]:
    """A monolith that locks an email after 2 failures."""
    env = make_env(key_dir, migrated_url, FITCO_LOGIN_FAILURES_BEFORE_BACKOFF="2")
    with running_monolith(env, clock, key_dir) as running:
        yield running


def test_wrong_current_passwords_count_towards_the_login_backoff(
    strict_monolith: RunningMonolith,
) -> None:
    """A stolen token is no unthrottled way to guess the password: the per-email back-off of
    the login counts these failures and locks both ways in."""
    c = strict_monolith.client
    user = register(c)
    for _ in range(2):
        expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: _change(c, user.token, "wrong guess!!", NEW_PASSWORD),
        )
    err = expect_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: _change(c, user.token, user.password, NEW_PASSWORD),
    )
    assert error_reason(err) == "LOGIN_BACKOFF"
    err = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: _login(c, user, user.password))
    assert error_reason(err) == "LOGIN_BACKOFF"
    strict_monolith.clock.at += timedelta(seconds=5)
    # After the lock: the right password works and resets the count.
    token = _change(c, user.token, user.password, NEW_PASSWORD).access_token
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: _change(c, token, "wrong guess!!", "z" * 12)
    )
    assert _change(c, token, NEW_PASSWORD, "z" * 12).access_token  # not locked: count was reset


def test_existing_shorter_passwords_keep_working(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    old_password = "ten chars!"  # the minimum before issue #9
    engine = create_engine(str(monolith.app.db.engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET password_hash = :h WHERE id = :id"),
            {"h": Passwords(concurrency=1).hash(old_password), "id": user.id},
        )
    engine.dispose()
    token = _login(c, user, old_password)
    assert _profile(c, token).profile.email == user.email
    # But no new password that short, neither on register nor on change.
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.users.RegisterUser(
            user_pb2.RegisterUserRequest(
                email=f"short-{uuid.uuid4().hex[:8]}@example.com", name="S", password="elevenchars"
            )
        ),
    )
    assert set(field_violations(err)) == {"password"}
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: _change(c, token, old_password, "elevenchars")
    )
    assert set(field_violations(err)) == {"new_password"}
    assert _change(c, token, old_password, "twelve chars").access_token


def test_logout_revokes_the_token_used_and_every_earlier_one(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    earlier = user.token
    used = _login(c, user, user.password)
    c.users.Logout(user_pb2.LogoutRequest(), metadata=_md(used))
    _revoked(lambda: _profile(c, used))
    _revoked(lambda: _profile(c, earlier))
    # Logging out twice with the same token: it is already revoked.
    _revoked(lambda: c.users.Logout(user_pb2.LogoutRequest(), metadata=_md(used)))
    # Signing in again works, and the new token is the current one.
    fresh = _login(c, user, user.password)
    assert _tv(fresh) == _tv(used) + 1
    assert _profile(c, fresh).profile.email == user.email


def test_legacy_flows_work_unchanged_and_their_tokens_can_be_revoked(
    monolith: RunningMonolith,
) -> None:
    """/bootstrap/admin, admin-created users with a generated password, /oauth/token (form and
    JSON): as before; their tokens carry a version like any other."""
    c = monolith.client
    boot = c.users.BootstrapAdmin(
        user_pb2.BootstrapAdminRequest(email="root@example.com", name="Root"),
        metadata=(("x-bootstrap-key", bootstrap_key(monolith.key_dir)),),
    )
    assert boot.role == "admin" and len(boot.password) >= 20

    def issue(content_type: str, body: bytes) -> str:
        return str(
            c.users.IssueToken(
                user_pb2.IssueTokenRequest(
                    body=httpbody_pb2.HttpBody(content_type=content_type, data=body)
                )
            ).access_token
        )

    admin = issue(
        "application/x-www-form-urlencoded",
        f"grant_type=password&username=root@example.com&password={boot.password}".encode(),
    )
    created = c.users.CreateUser(
        user_pb2.CreateUserRequest(email="member@example.com", name="Member"), metadata=_md(admin)
    )
    member = issue(
        "application/json",
        f'{{"email": "member@example.com", "password": "{created.password}"}}'.encode(),
    )
    assert _tv(member) == 0 and _profile(c, member).profile.email == "member@example.com"
    # The member replaces the password the admin saw: the admin no longer knows it.
    new_token = _change(c, member, created.password, NEW_PASSWORD).access_token
    _revoked(lambda: _profile(c, member))
    assert _profile(c, new_token).profile.email == "member@example.com"
    err = expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: issue(
            "application/json",
            f'{{"email": "member@example.com", "password": "{created.password}"}}'.encode(),
        ),
    )
    assert error_reason(err) == "BAD_CREDENTIALS"
    # The admin's own session is untouched by the member's change.
    assert _profile(c, admin).profile.email == "root@example.com"


def test_a_replica_refuses_a_revoked_token_within_seconds(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    with another_monolith(monolith) as replica:
        assert _profile(replica, user.token).profile.email == user.email  # cached there now
        c.users.Logout(user_pb2.LogoutRequest(), metadata=user.md)
        took = _refused_within(lambda: _profile(replica, user.token), CACHE_SECONDS + SLACK)
    assert took <= CACHE_SECONDS + SLACK


def _check_token_calls() -> float:
    """CheckToken RPCs the (in-process) monolith has answered so far."""
    return sum(
        REGISTRY.get_sample_value(
            "fitco_grpc_server_handled_total",
            {"service": "fitco.user.v1.UserService", "method": "CheckToken", "code": code},
        )
        or 0.0
        for code in ("OK", "UNAUTHENTICATED")
    )


def test_the_coach_refuses_revoked_tokens_within_seconds_and_asks_cheaply(
    monolith: RunningMonolith,
) -> None:
    c = monolith.client
    user = register(c)
    onboard(c, user)
    with running_coach(monolith) as coach:

        def wod(token: str) -> coach_pb2.GetWodResponse:
            return coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=_md(token))

        first = wod(user.token)
        assert first.implementation == "coach"
        # The hot path: the answer comes from the coach's cache; the token's version is asked
        # of the monolith at most once per FITCO_TOKEN_VERSION_CACHE_SECONDS per user.
        before, started = _check_token_calls(), time.monotonic()
        for _ in range(20):
            assert wod(user.token).day == first.day
        window = time.monotonic() - started
        asked = _check_token_calls() - before
        assert asked <= window / CACHE_SECONDS + 1, (asked, window)
        # Password change: the cached answer is no longer served to the old token...
        new_token = _change(c, user.token, user.password, NEW_PASSWORD).access_token
        took = _refused_within(lambda: wod(user.token), CACHE_SECONDS + SLACK)
        assert took <= CACHE_SECONDS + SLACK
        # ... while the new token gets it at once.
        assert wod(new_token).day == first.day
        # Logout: the same, for the token used.
        c.users.Logout(user_pb2.LogoutRequest(), metadata=_md(new_token))
        _refused_within(lambda: wod(new_token), CACHE_SECONDS + SLACK)
