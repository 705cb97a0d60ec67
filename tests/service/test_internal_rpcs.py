"""INTERNAL RPCs (RecordWod, ExtendWod, ReplaceWod): only a fitco service with a valid service
token may call them, and it acts for the user whose token it forwards. A user's or an admin's
token alone is refused."""

from __future__ import annotations

import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.coach.v1 import coach_pb2, coach_pb2_grpc
from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2

from coach.app import build as build_coach
from fitcore.config import Env
from fitcore.keys import load_service_private_key
from fitcore.service_auth import SERVICE_TOKEN_HEADER, ServiceTokenMinter
from tests.conftest import (
    RunningMonolith,
    bootstrap_key,
    make_env,
    onboard,
    register,
    service_md,
)
from tests.rpc import error_reason, expect_error


def _wod(monolith: RunningMonolith) -> history_pb2.RecordWodRequest:
    return history_pb2.RecordWodRequest(
        day=monolith.clock.now().date().isoformat(),
        implementation="coach",
        items=[history_pb2.WodItem(exercise_id=i, sets=3, reps=10) for i in range(1, 7)],
    )


def _coach_key(monolith: RunningMonolith) -> Ed25519PrivateKey:
    return load_service_private_key(Env({"FITCO_DATA_DIR": str(monolith.key_dir)}), "coach")


def _signed(key: Ed25519PrivateKey, kid: str = "coach", **override: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"service:{kid}",
        "sub": f"service:{kid}",
        "aud": "fitco-internal",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def test_a_user_token_alone_is_permission_denied(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    err = expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: monolith.client.history.RecordWod(_wod(monolith), metadata=user.md),
    )
    assert error_reason(err) == "SERVICE_IDENTITY_REQUIRED"
    # Nothing was recorded: the user's day is still free.
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: monolith.client.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=_wod(monolith).day), metadata=user.md
        ),
    )


def test_an_admin_token_alone_is_permission_denied(monolith: RunningMonolith) -> None:
    boot = monolith.client.users.BootstrapAdmin(
        user_pb2.BootstrapAdminRequest(email="root-internal@example.com", name="Root"),
        metadata=(("x-bootstrap-key", bootstrap_key(monolith.key_dir)),),
    )
    login = monolith.client.users.Login(
        user_pb2.LoginRequest(email=boot.email, password=boot.password)
    )
    admin_md = (("authorization", f"Bearer {login.access_token}"),)
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: monolith.client.history.RecordWod(_wod(monolith), metadata=admin_md),
    )


def test_the_coach_acting_for_a_user_is_accepted(monolith: RunningMonolith) -> None:
    user = register(monolith.client)
    resp = monolith.client.history.RecordWod(
        _wod(monolith), metadata=user.md + service_md(monolith.key_dir)
    )
    assert resp.created and resp.wod.implementation == "coach"
    served = monolith.client.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=resp.wod.day), metadata=user.md
    )
    assert [i.exercise_id for i in served.wod.items] == [1, 2, 3, 4, 5, 6]


def test_a_service_token_without_the_users_token_is_unauthenticated(
    monolith: RunningMonolith,
) -> None:
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: monolith.client.history.RecordWod(
            _wod(monolith), metadata=service_md(monolith.key_dir)
        ),
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            lambda key: ServiceTokenMinter("coach", key, clock=lambda: time.time() - 3600).mint(),
            "SERVICE_TOKEN_EXPIRED",
            id="expired",
        ),
        pytest.param(
            lambda key: _signed(key, aud="fitco-api"),
            "SERVICE_TOKEN_WRONG_AUDIENCE",
            id="wrong-audience",
        ),
        pytest.param(
            lambda key: _signed(Ed25519PrivateKey.generate()),
            "SERVICE_TOKEN_INVALID",
            id="wrong-key",
        ),
        pytest.param(lambda key: _signed(key, kid="evil"), "SERVICE_UNKNOWN", id="unknown-service"),
        pytest.param(
            lambda key: _signed(key, exp=int(time.time()) + 3600),
            "SERVICE_TOKEN_INVALID",
            id="lives-too-long",
        ),
        pytest.param(
            lambda key: _signed(key, sub="service:monolith"),
            "SERVICE_TOKEN_INVALID",
            id="wrong-sub",
        ),
        pytest.param(lambda key: _signed(key, exp=None), "SERVICE_TOKEN_INVALID", id="no-exp"),
        pytest.param(lambda key: "not.a.token", "SERVICE_TOKEN_INVALID", id="garbage"),
    ],
)
def test_bad_service_tokens_are_refused(monolith: RunningMonolith, token: Any, reason: str) -> None:
    user = register(monolith.client)
    md = (*user.md, (SERVICE_TOKEN_HEADER, token(_coach_key(monolith))))
    err = expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: monolith.client.history.RecordWod(_wod(monolith), metadata=md),
    )
    assert error_reason(err) == reason


def test_a_service_token_is_not_a_user_token(monolith: RunningMonolith) -> None:
    token = service_md(monolith.key_dir)[0][1]
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: monolith.client.users.GetProfile(
            user_pb2.GetProfileRequest(), metadata=(("authorization", f"Bearer {token}"),)
        ),
    )


def test_the_coach_records_its_wod_through_the_monolith(monolith: RunningMonolith) -> None:
    """The coach's own client carries its service token: its WOD is recorded."""
    user = register(monolith.client)
    onboard(monolith.client, user)
    url = monolith.app.db.engine.url.render_as_string(hide_password=False)
    env = make_env(monolith.key_dir, url, FITCO_MONOLITH_TARGET=monolith.target)
    coach = build_coach(env, clock=monolith.clock, address="127.0.0.1:0")
    coach.service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{coach.port}") as channel:
            wod = coach_pb2_grpc.CoachServiceStub(channel).GetWod(
                coach_pb2.GetWodRequest(), metadata=user.md
            )
    finally:
        coach.stop()
    assert wod.implementation == "coach"
    served = monolith.client.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=wod.day), metadata=user.md
    )
    assert served.wod.implementation == "coach"
    assert [i.exercise_id for i in served.wod.items] == [e.id for e in wod.exercises]


def _replace(
    monolith: RunningMonolith, served: history_pb2.ServedWod
) -> history_pb2.ReplaceWodRequest:
    return history_pb2.ReplaceWodRequest(
        day=served.day,
        implementation="coach",
        items=[history_pb2.WodItem(exercise_id=i, sets=3, reps=10) for i in range(20, 26)],
        regenerations=served.regenerations,
        max_regenerations=3,
    )


def _extend(served: history_pb2.ServedWod) -> history_pb2.ExtendWodRequest:
    return history_pb2.ExtendWodRequest(
        day=served.day,
        wod_id=served.id,
        items=[history_pb2.WodItem(exercise_id=i, sets=3, reps=10) for i in range(30, 36)],
        size=9,
    )


def test_extend_and_replace_wod_refuse_a_user_token_alone(monolith: RunningMonolith) -> None:
    """The top-up and the regeneration of a WOD are INTERNAL like RecordWod: a user cannot
    grow or swap their WOD (nor skip the plan's regeneration limit) by calling them."""
    user = register(monolith.client)
    served = monolith.client.history.RecordWod(
        _wod(monolith), metadata=user.md + service_md(monolith.key_dir)
    ).wod
    for call in (
        lambda: monolith.client.history.ReplaceWod(_replace(monolith, served), metadata=user.md),
        lambda: monolith.client.history.ExtendWod(_extend(served), metadata=user.md),
    ):
        err = expect_error(grpc.StatusCode.PERMISSION_DENIED, call)
        assert error_reason(err) == "SERVICE_IDENTITY_REQUIRED"
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        lambda: monolith.client.history.ReplaceWod(
            _replace(monolith, served), metadata=service_md(monolith.key_dir)
        ),
    )
    after = monolith.client.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=served.day), metadata=user.md
    ).wod
    assert after == served


def test_the_coach_extends_and_replaces_the_users_own_wod(monolith: RunningMonolith) -> None:
    """With its service token, acting for the user whose token it forwards: that user's WOD
    only; another user's stays as it was."""
    alice, bob = register(monolith.client), register(monolith.client)
    internal = service_md(monolith.key_dir)
    alice_wod = monolith.client.history.RecordWod(_wod(monolith), metadata=alice.md + internal).wod
    bob_wod = monolith.client.history.RecordWod(_wod(monolith), metadata=bob.md + internal).wod
    extended = monolith.client.history.ExtendWod(_extend(bob_wod), metadata=bob.md + internal)
    assert extended.extended and [i.exercise_id for i in extended.wod.items] == [
        1,
        2,
        3,
        4,
        5,
        6,
        30,
        31,
        32,
    ]
    replaced = monolith.client.history.ReplaceWod(
        _replace(monolith, extended.wod), metadata=bob.md + internal
    )
    assert replaced.replaced and replaced.wod.regenerations == 1
    assert [i.exercise_id for i in replaced.wod.items] == list(range(20, 26))
    # Alice's WOD id with Bob's token names Bob's day: nothing of hers is reached or changed.
    theirs = monolith.client.history.ExtendWod(_extend(alice_wod), metadata=bob.md + internal)
    assert not theirs.extended and theirs.wod.id == bob_wod.id
    mine = monolith.client.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=alice_wod.day), metadata=alice.md
    ).wod
    assert mine == alice_wod
