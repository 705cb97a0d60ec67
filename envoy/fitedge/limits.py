"""Edge rate limits: local token buckets per client IP and per verified user.

Three places in the chain (adr/04-availability.md): every request per client IP, first of
all; the auth family per client IP, after the transcoder (exact gRPC paths, so JSON, legacy and
gRPC share one bucket); per user, after jwt_authn, the expensive RPCs and, in a small bucket of
its own, checkout (each one charges a card at the payment provider: a stolen token must not be
able to test cards in bulk), and the opening of streams (adr/10: a client that reconnects in a
tight loop would otherwise replay its missed events over and over).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JWT_METADATA = "jwt"  # the verified token's claims, in jwt_authn's dynamic metadata

_BUCKET = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*(s|m|h)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, None: 1}


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `tokens` requests, refilled every `seconds` (burst = tokens)."""

    tokens: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Bucket:
        """'20/60s' (or '20/1m'): 20 requests per minute, in bursts of up to 20."""
        m = _BUCKET.match(text)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ValueError(f"a rate limit is N/PERIOD, e.g. 20/60s or 300/1s, not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)) * _UNIT[m.group(3)])

    @property
    def retry_after(self) -> int:
        """Seconds until the bucket holds a token again, rounded up."""
        return max(1, -(-self.seconds // self.tokens))

    def envoy(self) -> dict[str, Any]:
        return {
            "max_tokens": self.tokens,
            "tokens_per_fill": self.tokens,
            "fill_interval": f"{self.seconds}s",
        }

    def __str__(self) -> str:
        return f"{self.tokens}/{self.seconds}s"


@dataclass(frozen=True)
class RateLimits:
    """Edge rate limits. FITCO_RATE_LIMITS: `on` (default), `off` (no per-IP limits: load
    tests from one machine), `none` (no limits at all: single-user micro-benchmarks only)."""

    per_ip: bool = True
    per_user: bool = True
    auth: Bucket = Bucket(20, 60)  # per client IP: login, /oauth/token, register, bootstrap
    general: Bucket = Bucket(100, 1)  # per client IP: every request
    expensive: Bucket = Bucket(60, 60)  # per user: GetWod and GetNutrition (coach work)
    # per user: Checkout (a purchase, its retries with the same Idempotency-Key, a second card)
    checkout: Bucket = Bucket(10, 600)
    # per user: streams opened (WatchEvents, Connect); a stream stays open for up to an hour.
    streams: Bucket = Bucket(30, 60)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimits:
        mode = (env.get("FITCO_RATE_LIMITS") or "on").strip().lower()
        if mode not in ("on", "off", "none"):
            raise ValueError("FITCO_RATE_LIMITS must be on, off or none")
        d = cls()
        return cls(
            per_ip=mode == "on",
            per_user=mode != "none",
            auth=Bucket.parse(env.get("FITCO_RATE_LIMIT_AUTH") or str(d.auth)),
            general=Bucket.parse(env.get("FITCO_RATE_LIMIT_GENERAL") or str(d.general)),
            expensive=Bucket.parse(env.get("FITCO_RATE_LIMIT_EXPENSIVE") or str(d.expensive)),
            checkout=Bucket.parse(env.get("FITCO_RATE_LIMIT_CHECKOUT") or str(d.checkout)),
            streams=Bucket.parse(env.get("FITCO_RATE_LIMIT_STREAMS") or str(d.streams)),
        )


def _exact_paths(paths: list[str]) -> dict[str, Any]:
    return {"safe_regex": {"regex": "^(" + "|".join(re.escape(p) for p in paths) + ")$"}}


def _rate_limit(
    name: str, bucket: Bucket, actions: list[dict[str, Any]], entries: list[dict[str, str]]
) -> dict[str, Any]:
    """A local rate limit filter with one bucket per distinct descriptor value (client IP or
    user id: wildcard entries), answering 429 / RESOURCE_EXHAUSTED with Retry-After."""
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": f"envoy.filters.http.local_ratelimit.{name}",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": f"rl_{name}",
            # The filter-wide bucket is not the limit (the descriptors are): never reached.
            "token_bucket": {
                "max_tokens": 1000000,
                "tokens_per_fill": 1000000,
                "fill_interval": "1s",
            },
            "always_consume_default_token_bucket": False,
            "filter_enabled": always | {"runtime_key": f"ratelimit.{name}.enabled"},
            "filter_enforced": always | {"runtime_key": f"ratelimit.{name}.enforced"},
            "max_dynamic_descriptors": 20000,
            "rate_limited_as_resource_exhausted": True,
            "response_headers_to_add": [
                {
                    "header": {"key": "retry-after", "value": str(bucket.retry_after)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
            "rate_limits": [{"actions": actions}],
            "descriptors": [{"entries": entries, "token_bucket": bucket.envoy()}],
        },
    }


def _per_user(name: str, family: str, bucket: Bucket, paths: list[str]) -> dict[str, Any]:
    """A bucket per verified user id for the requests to `paths`."""
    return _rate_limit(
        name,
        bucket,
        [
            {
                "header_value_match": {
                    "descriptor_key": "family",
                    "descriptor_value": family,
                    "headers": [{"name": ":path", "string_match": _exact_paths(paths)}],
                }
            },
            {
                "metadata": {
                    "descriptor_key": "user",
                    "metadata_key": {
                        "key": "envoy.filters.http.jwt_authn",
                        "path": [{"key": JWT_METADATA}, {"key": "sub"}],
                    },
                    "source": "DYNAMIC",
                }
            },
        ],
        [{"key": "family", "value": family}, {"key": "user"}],
    )


def rate_limit_filters(
    limits: RateLimits,
    auth_paths: list[str],
    expensive_paths: list[str],
    checkout_paths: list[str] | None = None,
    stream_paths: list[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The rate limit filters by their place in the chain: `edge` first of all (every
    request, per client IP), `auth` after the transcoder (the auth family's gRPC paths, per
    client IP), `user` after jwt_authn (the expensive RPCs' paths, the checkout paths and the
    streaming RPCs' paths, each family per verified user id)."""
    out: dict[str, list[dict[str, Any]]] = {"edge": [], "auth": [], "user": []}
    if limits.per_ip:
        out["edge"].append(
            _rate_limit(
                "per_ip",
                limits.general,
                [{"remote_address": {}}],
                [{"key": "remote_address"}],
            )
        )
        out["auth"].append(
            _rate_limit(
                "auth_per_ip",
                limits.auth,
                [
                    {
                        "header_value_match": {
                            "descriptor_key": "family",
                            "descriptor_value": "auth",
                            "headers": [
                                {"name": ":path", "string_match": _exact_paths(auth_paths)}
                            ],
                        }
                    },
                    {"remote_address": {}},
                ],
                [{"key": "family", "value": "auth"}, {"key": "remote_address"}],
            )
        )
    if limits.per_user:
        out["user"].append(
            _per_user("expensive_per_user", "expensive", limits.expensive, expensive_paths)
        )
        if checkout_paths:
            out["user"].append(
                _per_user("checkout_per_user", "checkout", limits.checkout, checkout_paths)
            )
        if stream_paths:
            out["user"].append(
                _per_user("streams_per_user", "streams", limits.streams, stream_paths)
            )
    return out
