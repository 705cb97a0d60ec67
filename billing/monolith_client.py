"""Billing's one call to the monolith: CheckToken, so billing refuses revoked user tokens too.

Billing verifies a user token's signature, expiry and audience itself (fitcore.auth); whether
the token was revoked (a logout, a password change) only the monolith knows. Billing asks it
like the coach does: CheckToken (INTERNAL) with the user's token and billing's own service
token, at most once per user every few seconds (fitcore.token_versions.TokenVersionCache).
Taking payments on a revoked token would be worse than a short outage, so when the monolith
cannot be asked the user's request fails (UNAVAILABLE); provider webhooks carry no user token
and never depend on it.
"""

from __future__ import annotations

import logging

import grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc

from fitcore.auth import Principal
from fitcore.clients import code_of, error_reason, forwarded_metadata, mesh_channel
from fitcore.errors import Unauthenticated, Unavailable
from fitcore.service_auth import ServiceTokenMinter

log = logging.getLogger("billing.monolith")


class MonolithClient:
    def __init__(self, target: str, deadline: float, identity: ServiceTokenMinter) -> None:
        self.target = target
        self.deadline = deadline
        self.identity = identity
        self.channel = mesh_channel(target)
        self.users = user_pb2_grpc.UserServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def token_version(self, principal: Principal) -> int:
        """The user's current token version; the token's own + 1 when the monolith says it is
        revoked (enough to refuse it). Another refusal is passed on with its reason."""
        md = forwarded_metadata(principal, self.identity)
        try:
            resp: user_pb2.CheckTokenResponse = self.users.CheckToken(
                user_pb2.CheckTokenRequest(), timeout=self.deadline, metadata=md
            )
        except grpc.RpcError as exc:
            code = code_of(exc)
            if code == grpc.StatusCode.UNAUTHENTICATED:
                reason = error_reason(exc)
                if reason == "TOKEN_REVOKED":
                    return principal.token_version + 1
                raise Unauthenticated("invalid token", reason=reason or "TOKEN_INVALID") from exc
            log.warning("CheckToken failed", extra={"code": code.name})
            raise Unavailable(
                "the account service is unavailable; retry shortly", reason="UPSTREAM_UNAVAILABLE"
            ) from exc
        return int(resp.token_version)
