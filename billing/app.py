"""Wiring of the billing service: configuration, domain objects, the servicer, the gRPC server.

Who the callers are:
- users (Checkout, GetSubscription, CancelSubscription) and admins (ListSubscriptions,
  RefundPayment): their access tokens are verified here (signature, expiry, audience) and
  checked against revocation with the monolith's CheckToken, cached per user for
  FITCO_TOKEN_VERSION_CACHE_SECONDS (fitcore/token_check.py says why);
- the coach and the monolith (GetEntitlements, INTERNAL): their service tokens, and no other
  service's, are trusted;
- the payment provider (ReceiveWebhook, PUBLIC): its signature, checked by the domain.

Beside the server: the renewal loop (every FITCO_BILLING_RENEWAL_INTERVAL_SECONDS, default 60),
a purge of expired idempotency keys (every FITCO_BILLING_IDEMPOTENCY_PURGE_SECONDS) and the
outbox relay publishing SUBSCRIPTION_CHANGED events to the bus at FITCO_NATS_URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fitco.billing.v1 import billing_pb2, billing_pb2_grpc

import billing.metrics  # noqa: F401 - registers billing's metrics with the exporter
from billing.api.billing import BillingServicer
from billing.dev_secrets import provider_api_key, webhook_secret
from billing.domain.checkout import Checkout
from billing.domain.idempotency import Idempotency
from billing.domain.renewals import RenewalLoop, Renewals
from billing.domain.subscriptions import Subscriptions
from billing.domain.webhooks import Webhooks
from billing.migrations import MIGRATIONS
from billing.provider import PaymentProvider
from billing.sandbox_client import SandboxProvider
from fitcore.auth import TokenVerifier
from fitcore.clock import Clock
from fitcore.config import Env
from fitcore.db import Database, database_url_from_env, db_error_to_service_error, open_database
from fitcore.interceptor import AccessPolicy
from fitcore.keys import (
    ensure_dev_keys,
    load_public_key,
    load_service_private_key,
    load_service_public_keys,
)
from fitcore.outbox_relay import OutboxRelay
from fitcore.periodic import Background, Periodic
from fitcore.server import ServerSettings, Service
from fitcore.service_auth import ServiceTokenMinter, ServiceTokenVerifier
from fitcore.settings import clock_from_env, token_settings
from fitcore.token_check import MonolithTokenCheck
from fitcore.token_versions import DEFAULT_TTL_SECONDS, TokenVersionCache

log = logging.getLogger("billing")

DEFAULT_ADDRESS = "127.0.0.1:50071"
DEFAULT_PROVIDER_URL = "http://127.0.0.1:8090"
# Who may call billing's RPCs: their access options in the contract.
POLICY = AccessPolicy.of_modules(billing_pb2)
# Billing's identity towards the monolith (`service:billing` in its service tokens).
SERVICE_NAME = "billing"
# The services trusted with INTERNAL RPCs (GetEntitlements): they act for a user.
TRUSTED_CALLERS = ("coach", "monolith")


def database_url(env: Env) -> str:
    """BILLING_DATABASE_URL (default: billing.db in the data directory, never the monolith's
    database). The password may come from a mounted secret file instead of the URL:
    FITCO_BILLING_DATABASE_PASSWORD_FILE."""
    return database_url_from_env(
        env, "BILLING_DATABASE_URL", "FITCO_BILLING_DATABASE_PASSWORD_FILE", "billing.db"
    )


def sandbox_provider(env: Env) -> PaymentProvider:
    """The provider of local runs, compose and Kubernetes: the sandbox (`python -m sandboxpay`)."""
    return SandboxProvider(
        env.get_str("FITCO_PROVIDER_URL", DEFAULT_PROVIDER_URL),
        provider_api_key(env),
        env.get_float("FITCO_PROVIDER_TIMEOUT_SECONDS", 10.0),
    )


@dataclass
class Billing:
    service: Service
    db: Database
    monolith: MonolithTokenCheck
    checkout: Checkout
    subscriptions: Subscriptions
    idempotency: Idempotency
    webhooks: Webhooks
    renewals: Renewals
    background: list[Background] = field(default_factory=list)
    # Started with the background work, stopped after the server (its last RPCs' events).
    relay: OutboxRelay | None = None

    @property
    def port(self) -> int:
        return self.service.port

    def start_background(self) -> None:
        """Run the background work: renewals, purging expired idempotency keys, the relay."""
        for task in self.background:
            task.start()
        if self.relay is not None:
            self.relay.start()

    def start(self) -> None:
        """Serve, with the background work (tests; `python -m billing` uses fitcore.serve)."""
        self.start_background()
        self.service.start()

    def stop(self) -> None:
        for task in self.background:
            task.stop()
        self.service.stop()
        if self.relay is not None:
            self.relay.stop()
        self.monolith.close()
        self.db.dispose()


def build(
    env: Env,
    *,
    clock: Clock | None = None,
    address: str | None = None,
    provider: PaymentProvider | None = None,
) -> Billing:
    """The billing service, not started yet. `provider`: the payment provider (default: the
    sandbox at FITCO_PROVIDER_URL); tests pass a double."""
    ensure_dev_keys(env)
    tokens = token_settings(env)
    clock = clock or clock_from_env(env)
    provider = provider or sandbox_provider(env)
    db, head = open_database(env, database_url(env), MIGRATIONS, log)
    monolith = MonolithTokenCheck(
        env.get_str("FITCO_MONOLITH_TARGET", "127.0.0.1:50051"),
        env.get_float("FITCO_BILLING_MONOLITH_DEADLINE_SECONDS", 2.0),
        ServiceTokenMinter(SERVICE_NAME, load_service_private_key(env, SERVICE_NAME)),
    )
    idempotency = Idempotency(
        db, clock, wait_seconds=env.get_float("FITCO_BILLING_IDEMPOTENCY_WAIT_SECONDS", 5.0)
    )
    checkout = Checkout(db, provider, clock)
    subscriptions = Subscriptions(db, provider, clock)
    webhooks = Webhooks(db, clock, webhook_secret(env))
    renewals = Renewals(db, provider, clock)

    def ready() -> bool:
        """Serving when its database answers at the current schema. The provider is not
        required: webhooks and reads work without it, checkouts answer UNAVAILABLE."""
        return db.ping() and MIGRATIONS.current_revision(db.engine) == head

    trusted = {k: v for k, v in load_service_public_keys(env).items() if k in TRUSTED_CALLERS}
    servicer = BillingServicer(checkout, idempotency, subscriptions, webhooks)
    settings = ServerSettings.from_env(env, "FITCO_BILLING", DEFAULT_ADDRESS).with_address(address)
    service = Service(
        settings=settings,
        service_names=POLICY.table.services,
        register=[lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s)],
        policy=POLICY,
        verifier=TokenVerifier(
            load_public_key(env),
            tokens,
            TokenVersionCache(
                monolith.token_version,
                env.get_float("FITCO_TOKEN_VERSION_CACHE_SECONDS", DEFAULT_TTL_SECONDS),
            ),
        ),
        service_verifier=ServiceTokenVerifier(trusted, leeway_seconds=tokens.leeway_seconds),
        readiness=ready,
        error_mapper=db_error_to_service_error,
    )
    background: list[Background] = [
        # Renewals are driven by the service's clock (a FileClock in tests that move time).
        RenewalLoop(renewals, env.get_float("FITCO_BILLING_RENEWAL_INTERVAL_SECONDS", 60.0)),
        Periodic(
            "idempotency-purge",
            env.get_float("FITCO_BILLING_IDEMPOTENCY_PURGE_SECONDS", 3600.0),
            idempotency.purge,
        ),
    ]
    relay = OutboxRelay.from_env(env, db, SERVICE_NAME)
    return Billing(
        service,
        db,
        monolith,
        checkout,
        subscriptions,
        idempotency,
        webhooks,
        renewals,
        background,
        relay,
    )
