"""The JWT suite at the edge: bad tokens through Envoy, as JSON and as gRPC, and which layer
refused each.

Two layers check a token on its way in:
- **Envoy** (`jwt_authn`, the public key): signature, algorithm, `exp`, `nbf`, `iss`, `aud`.
  Its refusal is a local reply: 401 with `details` = Envoy's response code details (a string
  such as `jwt_authn_access_denied{Jwt_is_expired}`), no upstream was asked.
- **the service** behind it (the monolith here; the coach likewise, tests/service): everything
  again, plus what only it can know: `iat`, the claims' types and whether the token is revoked
  (logout, password change). Its refusal is the transcoded gRPC status: 401 with `details` a
  list holding a `google.rpc.ErrorInfo` whose reason says what was wrong (TOKEN_REVOKED, ...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, cast

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fitco.user.v1 import user_pb2, user_pb2_grpc
from grpc_status import rpc_status

from fitcore.config import Env
from fitcore.keys import default_key_paths, load_private_key
from tests.conftest import token_claims
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import JsonClient, Response, User, register
from tests.rpc import error_reason

pytestmark = pytest.mark.e2e

EDGE = "envoy"
SERVICE = "service"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _signed(mesh: RunningMesh, body: dict[str, Any]) -> str:
    key = load_private_key(Env({"FITCO_DATA_DIR": str(mesh.mesh.config.data_dir)}))
    return jwt.encode(body, key, algorithm="EdDSA")


def _hs256_with_public_key(mesh: RunningMesh, body: dict[str, Any]) -> str:
    public = default_key_paths(Env({"FITCO_DATA_DIR": str(mesh.mesh.config.data_dir)}))
    signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT'})}.{_b64json(body)}"
    mac = hmac.new(public.public_key.read_bytes(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac.digest())}"


# case -> (token maker, the layer that refuses it, what that layer says)
Maker = Callable[[RunningMesh, int], str]
CASES: dict[str, tuple[Maker, str, str]] = {
    "alg_none": (
        lambda m, u: f"{_b64json({'alg': 'none', 'typ': 'JWT'})}.{_b64json(token_claims(u))}.",
        EDGE,
        "jwt_authn_access_denied{Jwt_is_not_in_the_form_of_Header.Payload.Signature",
    ),
    "hs256_signed_with_the_public_key": (
        lambda m, u: _hs256_with_public_key(m, token_claims(u)),
        EDGE,
        "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}",
    ),
    "wrong_key": (
        lambda m, u: jwt.encode(token_claims(u), Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        EDGE,
        "jwt_authn_access_denied{Jwt_verification_fails}",
    ),
    "expired": (
        lambda m, u: _signed(m, token_claims(u, exp=int(time.time()) - 60)),
        EDGE,
        "jwt_authn_access_denied{Jwt_is_expired}",
    ),
    "not_yet_valid_nbf": (
        lambda m, u: _signed(m, token_claims(u, nbf=int(time.time()) + 600)),
        EDGE,
        "jwt_authn_access_denied{Jwt_not_yet_valid}",
    ),
    "wrong_audience": (
        lambda m, u: _signed(m, token_claims(u, aud="fitco-internal")),
        EDGE,
        "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}",
    ),
    "wrong_issuer": (
        lambda m, u: _signed(m, token_claims(u, iss="evil")),
        EDGE,
        "jwt_authn_access_denied{Jwt_issuer_is_not_configured}",
    ),
    # Envoy does not look at `iat`: a token issued in the future passes the edge and the
    # service refuses it (defence in depth).
    "issued_in_the_future_iat": (
        lambda m, u: _signed(m, token_claims(u, iat=int(time.time()) + 600)),
        SERVICE,
        "TOKEN_NOT_YET_VALID",
    ),
}


def _layer(r: Response) -> tuple[str, str]:
    """(who refused, what it said): Envoy's local reply or the service's transcoded status."""
    details = r.body.get("details") if isinstance(r.body, dict) else None
    if isinstance(details, str):
        return EDGE, details
    assert isinstance(details, list), r.body
    reasons = [d.get("reason", "") for d in details if "ErrorInfo" in d.get("@type", "")]
    assert reasons, r.body
    return SERVICE, reasons[0]


@pytest.fixture(scope="module")
def user(mesh: RunningMesh) -> User:
    return register(mesh.client())


@pytest.mark.parametrize("case", list(CASES))
def test_bad_tokens_are_401_and_say_which_layer_refused(
    mesh: RunningMesh, user: User, case: str
) -> None:
    make, layer, says = CASES[case]
    c = mesh.client()
    for path in ("/v1/profile", "/profile", "/fitness/wod"):
        r = c.get(path, token=make(mesh, user.id))
        assert r.status == 401, (case, path, r.status, r.body)
        assert r.headers["content-type"].startswith("application/json"), r.headers
        who, what = _layer(r)
        assert who == layer and what.startswith(says), (case, path, r.body)


def test_the_baseline_token_passes_both_layers(mesh: RunningMesh, user: User) -> None:
    """What the cases change is the only thing wrong with them."""
    r = mesh.client().get("/v1/profile", token=_signed(mesh, token_claims(user.id)))
    assert r.status == 200, r.body


def test_a_token_in_the_query_string_does_not_authenticate(mesh: RunningMesh, user: User) -> None:
    """jwt_authn reads only `Authorization: Bearer` (no `from_params`), and the services only
    the `authorization` metadata."""
    c = mesh.client()
    # The edge's first Lua filter refuses a token in the URL outright (401, before the
    # transcoder, jwt_authn or any service see the request), on private and public paths.
    for path in ("/v1/profile", "/profile", "/fitness/wod", "/fitness/exercises/1"):
        for query in (f"access_token={user.token}", f"page_size=5&ACCESS_TOKEN={user.token}"):
            r = c.get(f"{path}?{query}")
            assert r.status == 401, (path, r.status, r.body)
            assert _layer(r)[0] == EDGE, r.body
            assert "Authorization header" in r.body["message"]
            assert r.headers.get("www-authenticate") == "Bearer"
    for path in ("/v1/profile", "/profile", "/fitness/wod"):
        r = c.get(path)
        assert (r.status, _layer(r)) == (401, (EDGE, "jwt_authn_access_denied{Jwt_is_missing}"))
    # Native gRPC through Envoy has no query string; the token under another metadata key is
    # not looked at either. (`access_token` itself, with its underscore, is refused by Envoy's
    # header rules before anything else.)
    with grpc.insecure_channel(f"{mesh.host}:{mesh.port}") as ch:
        users = user_pb2_grpc.UserServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            users.GetProfile(
                user_pb2.GetProfileRequest(), metadata=(("x-access-token", user.token),)
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _reason(err: grpc.RpcError) -> str:
    """The ErrorInfo reason of a gRPC failure ("" for Envoy's own, which carry no status)."""
    call = cast("grpc.Call", err)
    return error_reason(call) if rpc_status.from_call(call) is not None else ""


def _wait_refused(c: JsonClient, path: str, token: str, seconds: float = 3.0) -> Response:
    """The revoked token's answer once every service refuses it (the coach may take its
    token-version cache time, 2 s)."""
    deadline = time.monotonic() + seconds
    while True:
        r = c.get(path, token=token)
        if r.status == 401 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["logout", "change-password"])
def test_revoked_tokens_pass_the_edge_and_the_service_refuses_them(
    mesh: RunningMesh, how: str
) -> None:
    """Envoy checks signatures only; revocation is the services' (monolith and coach)."""
    c = mesh.client()
    user = register(c)
    for path in ("/v1/profile", "/fitness/wod"):
        assert c.get(path, token=user.token).status == 200
    if how == "logout":
        r = c.post("/v1/auth/logout", token=user.token)
        assert r.status == 200 and r.body == {}, r.body
        fresh = None
    else:
        r = c.post(
            "/v1/auth/change-password",
            {"current_password": user.password, "new_password": "an even longer passphrase"},
            token=user.token,
        )
        assert r.status == 200 and r.body["token_type"] == "bearer", r.body
        fresh = r.body["access_token"]
    mesh.admin.shift(mesh.mesh, 100)  # the WOD from the coach, whose answer is cached
    try:
        for path in ("/v1/profile", "/fitness/wod"):
            r = _wait_refused(c, path, user.token)
            assert r.status == 401, (how, path, r.body)
            assert _layer(r) == (SERVICE, "TOKEN_REVOKED"), (how, path, r.body)
            if fresh:
                assert c.get(path, token=fresh).status == 200
    finally:
        mesh.admin.shift(mesh.mesh, 0)
    with grpc.insecure_channel(f"{mesh.host}:{mesh.port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            user_pb2_grpc.UserServiceStub(ch).GetProfile(
                user_pb2.GetProfileRequest(),
                metadata=(("authorization", f"Bearer {user.token}"),),
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _reason(info.value) == "TOKEN_REVOKED"


def test_bad_tokens_over_grpc_are_refused_at_the_edge(mesh: RunningMesh, user: User) -> None:
    """A gRPC client through Envoy gets UNAUTHENTICATED from jwt_authn itself: no ErrorInfo,
    the upstream never saw the call."""
    with grpc.insecure_channel(f"{mesh.host}:{mesh.port}") as ch:
        users = user_pb2_grpc.UserServiceStub(ch)
        for case in ("alg_none", "wrong_key", "expired", "wrong_audience"):
            token = CASES[case][0](mesh, user.id)
            with pytest.raises(grpc.RpcError) as info:
                users.GetProfile(
                    user_pb2.GetProfileRequest(), metadata=(("authorization", f"Bearer {token}"),)
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, case
            assert _reason(info.value) == "", case  # not a service's status


def test_another_users_history_entry_is_404_through_the_edge(mesh: RunningMesh) -> None:
    """BOLA through Envoy: an id of someone else's answers like an id nobody has."""
    c = mesh.client()
    alice, bob = register(c), register(c)
    r = c.post("/v1/history", {"exercise_id": 1, "sets": 3, "reps": 8}, token=alice.token)
    assert r.status == 200, r.body
    entry_id = int(r.body["entry"]["id"])
    theirs = c.request("DELETE", f"/v1/history/{entry_id}", token=bob.token)
    nobodys = c.request("DELETE", f"/v1/history/{entry_id + 1_000_000}", token=bob.token)
    assert (theirs.status, nobodys.status) == (404, 404), (theirs.body, nobodys.body)
    assert c.get("/v1/history", token=alice.token).body["entries"][0]["id"] == str(entry_id)
