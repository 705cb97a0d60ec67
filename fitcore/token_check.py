"""Asking the monolith whether a user's token was revoked: CheckToken (INTERNAL), with the
user's token and the calling service's own service token, for services that verify tokens
themselves but cannot know about logouts and password changes (adr/05).

Used behind fitcore.token_versions.TokenVersionCache, so the monolith is asked at most once per
user every few seconds. When the monolith cannot be asked the user's request fails
(UNAVAILABLE): serving a revoked token (taking a payment on it, streaming a user's events)
would be worse than a short outage. Billing and the realtime service use it; the coach asks
through its own monolith client, behind its circuit breaker.
"""

from __future__ import annotations

import logging

import grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc

from fitcore.auth import Principal
from fitcore.clients import code_of, error_reason, forwarded_metadata, mesh_channel
from fitcore.errors import Unauthenticated, Unavailable
from fitcore.service_auth import ServiceTokenMinter

log = logging.getLogger("fitcore.token_check")


class MonolithTokenCheck:
    """`token_version` is a TokenVersionCache source. Blocking: an asyncio caller runs it on a
    thread (fitcore.aio_server authenticates on threads of its own)."""

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
