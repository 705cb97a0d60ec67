"""The sandbox's configuration, read once from the environment (FITCO_SANDBOX_*).

Secrets come from billing/dev_secrets.py, the one place billing reads them too, so both
processes agree. The chaos settings make webhook delivery misbehave on purpose, for tests only
(refused in production, like the test clock).

    FITCO_SANDBOX_ADDRESS            host:port to listen on (127.0.0.1:8090)
    FITCO_SANDBOX_PUBLIC_URL         base of next_action URLs (http://<address>)
    FITCO_SANDBOX_WEBHOOK_URL        where events go (billing through Envoy)
    FITCO_PROVIDER_API_KEY[_FILE]    the key billing presents (generated for local runs)
    FITCO_WEBHOOK_SECRET[_FILE]      the signing secret (generated for local runs)
    FITCO_SANDBOX_WEBHOOK_RETRY_SECONDS / _MAX_DELAY_SECONDS / _MAX_ATTEMPTS / _TIMEOUT_SECONDS
                                     back-off 1 s doubling to 300 s, 16 attempts, 5 s per POST
    FITCO_SANDBOX_WEBHOOK_QUEUE      pending deliveries kept (10000)
    FITCO_SANDBOX_WEBHOOK_CHAOS      on: duplicates and held-back events (tests)
    FITCO_SANDBOX_WEBHOOK_CHAOS_SEED / _DUPLICATE_RATE / _HOLD_RATE / _HOLD_SECONDS
                                     0, 0.2, 0.2, 2.0
    FITCO_SANDBOX_CAPACITY           entries per in-memory table (10000)
    FITCO_SANDBOX_MAX_BODY_BYTES / _MAX_CONNECTIONS / _REQUEST_TIMEOUT_SECONDS / _GRACE_SECONDS
                                     16 KiB, 64, 10 s, 5 s
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from billing import dev_secrets
from fitcore.config import ConfigError, Env, is_production
from sandboxpay.store import DEFAULT_CAPACITY
from sandboxpay.webhooks import Chaos, RetryPolicy

DEFAULT_ADDRESS: Final = "127.0.0.1:8090"
DEFAULT_WEBHOOK_URL: Final = "http://127.0.0.1:8080/v1/billing/webhooks"


@dataclass(frozen=True)
class SandboxConfig:
    host: str
    port: int
    api_key: str
    webhook_url: str
    webhook_secret: bytes
    public_url: str = ""  # base of next_action URLs; default http://<bound address>
    chaos: bool = False
    chaos_seed: int = 0
    chaos_duplicate_rate: float = 0.2
    chaos_hold_rate: float = 0.2
    chaos_hold_seconds: float = 2.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    webhook_timeout: float = 5.0
    webhook_queue: int = 10_000
    capacity: int = DEFAULT_CAPACITY
    max_body_bytes: int = 16 * 1024
    max_connections: int = 64
    request_timeout: float = 10.0
    grace_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Env) -> SandboxConfig:
        host, port = parse_address(env.get_str("FITCO_SANDBOX_ADDRESS", DEFAULT_ADDRESS))
        webhook_url = env.get_str("FITCO_SANDBOX_WEBHOOK_URL", DEFAULT_WEBHOOK_URL)
        if urlsplit(webhook_url).scheme not in ("http", "https"):
            raise ConfigError("FITCO_SANDBOX_WEBHOOK_URL must be an http(s) URL")
        chaos = env.get_bool("FITCO_SANDBOX_WEBHOOK_CHAOS", False)
        if chaos and is_production(env):
            raise ConfigError("FITCO_SANDBOX_WEBHOOK_CHAOS is for tests only, not production")
        rates = {
            name: env.get_float(f"FITCO_SANDBOX_WEBHOOK_CHAOS_{name.upper()}_RATE", 0.2)
            for name in ("duplicate", "hold")
        }
        if not all(0.0 <= rate <= 1.0 for rate in rates.values()):
            raise ConfigError("the FITCO_SANDBOX_WEBHOOK_CHAOS_*_RATE values are 0 to 1")
        return cls(
            host=host,
            port=port,
            api_key=dev_secrets.provider_api_key(env),
            webhook_url=webhook_url,
            webhook_secret=dev_secrets.webhook_secret(env),
            public_url=env.get_str("FITCO_SANDBOX_PUBLIC_URL", "").rstrip("/"),
            chaos=chaos,
            chaos_seed=env.get_int("FITCO_SANDBOX_WEBHOOK_CHAOS_SEED", 0),
            chaos_duplicate_rate=rates["duplicate"],
            chaos_hold_rate=rates["hold"],
            chaos_hold_seconds=env.get_float("FITCO_SANDBOX_WEBHOOK_CHAOS_HOLD_SECONDS", 2.0),
            retry=RetryPolicy(
                base_seconds=env.get_float("FITCO_SANDBOX_WEBHOOK_RETRY_SECONDS", 1.0),
                max_delay_seconds=env.get_float("FITCO_SANDBOX_WEBHOOK_MAX_DELAY_SECONDS", 300.0),
                max_attempts=env.get_int("FITCO_SANDBOX_WEBHOOK_MAX_ATTEMPTS", 16),
            ),
            webhook_timeout=env.get_float("FITCO_SANDBOX_WEBHOOK_TIMEOUT_SECONDS", 5.0),
            webhook_queue=env.get_int("FITCO_SANDBOX_WEBHOOK_QUEUE", 10_000),
            capacity=env.get_int("FITCO_SANDBOX_CAPACITY", DEFAULT_CAPACITY),
            max_body_bytes=env.get_int("FITCO_SANDBOX_MAX_BODY_BYTES", 16 * 1024),
            max_connections=env.get_int("FITCO_SANDBOX_MAX_CONNECTIONS", 64),
            request_timeout=env.get_float("FITCO_SANDBOX_REQUEST_TIMEOUT_SECONDS", 10.0),
            grace_seconds=env.get_float("FITCO_SANDBOX_GRACE_SECONDS", 5.0),
        )

    def make_chaos(self) -> Chaos | None:
        if not self.chaos:
            return None
        return Chaos(
            self.chaos_seed,
            self.chaos_duplicate_rate,
            self.chaos_hold_rate,
            self.chaos_hold_seconds,
        )


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"FITCO_SANDBOX_ADDRESS must be host:port, got {address!r}")
    return host, int(port)
