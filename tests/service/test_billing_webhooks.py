"""Provider webhooks against real databases (SQLite and PostgreSQL): signed events settle the
payment they name, exactly once, in any order; forged, stale and malformed deliveries change
nothing. (The same code behind gRPC and Envoy is covered by the e2e tests.)
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from billing.domain import payments, states
from billing.domain.signatures import SignatureError
from billing.domain.webhooks import Webhooks
from billing.models import WebhookEventRow
from fitcore.clock import FixedClock
from fitcore.db import Database
from fitcore.errors import InvalidArgument
from tests.service.billing_webhook_fakes import (
    SECRET,
    audit,
    billing_db,  # noqa: F401  (fixture)
    event_body,
    event_count,
    payment,
    seed,
    signed,
    subscription,
)

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
TS = int(NOW.timestamp())


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def hooks(billing_db: Database, clock: FixedClock) -> Webhooks:  # noqa: F811
    return Webhooks(billing_db, clock, SECRET)


def deliver(hooks: Webhooks, body: bytes, at: int = TS) -> bool:
    return hooks.receive(body, signed(body, at))


def counted(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "fitco_billing_webhook_events_total", {"type": event_type, "outcome": outcome}
    )
    return value or 0.0


def test_succeeded_event_activates_the_incomplete_subscription(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.REQUIRES_ACTION)
    before = counted("charge.succeeded", "applied")
    body = event_body("charge.succeeded", row.charge_id, created=TS - 3)

    assert deliver(hooks, body) is False

    assert payment(billing_db, row.payment_id).status == payments.SUCCEEDED
    sub = subscription(billing_db, row.subscription_id)
    assert sub.status == states.ACTIVE
    assert audit(billing_db, row.subscription_id)[-1][1:2] == (states.ACTIVE,)
    assert audit(billing_db, row.subscription_id)[-1][3] == "provider"
    assert counted("charge.succeeded", "applied") == before + 1


def test_failed_first_payment_cancels_the_incomplete_subscription(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(
        hooks, event_body("charge.failed", row.charge_id, created=TS, failure_code="card_declined")
    )
    assert payment(billing_db, row.payment_id).failure_code == "card_declined"
    assert subscription(billing_db, row.subscription_id).status == states.CANCELED


def test_payment_found_by_metadata_records_the_charge_id(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    # The webhook can arrive before checkout stored the provider's answer.
    row = seed(
        billing_db,
        NOW,
        status=states.INCOMPLETE,
        payment_status=payments.PENDING,
        with_charge_id=False,
    )
    meta = {"payment_id": str(row.payment_id), "subscription_id": str(row.subscription_id)}
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS, metadata=meta))
    settled = payment(billing_db, row.payment_id)
    assert (settled.status, settled.provider_payment_id) == (payments.SUCCEEDED, row.charge_id)


def test_metadata_naming_another_charges_payment_is_ignored(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    meta = {"payment_id": str(row.payment_id)}
    deliver(hooks, event_body("charge.succeeded", "ch_someone_else", created=TS, metadata=meta))
    assert payment(billing_db, row.payment_id).status == payments.PENDING


def test_charge_amount_that_does_not_match_the_payment_is_ignored(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS, amount=1))
    assert payment(billing_db, row.payment_id).status == payments.PENDING


def test_duplicate_event_is_answered_and_not_applied_again(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    body = event_body("charge.succeeded", row.charge_id, created=TS)
    before = counted("charge.succeeded", "duplicate")

    assert deliver(hooks, body) is False
    trail = audit(billing_db, row.subscription_id)
    assert deliver(hooks, body, at=TS + 60) is True  # a retry: re-signed later, same event

    assert audit(billing_db, row.subscription_id) == trail
    assert counted("charge.succeeded", "duplicate") == before + 1


def test_concurrent_duplicates_apply_once(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.ACTIVE, payment_status=payments.SUCCEEDED)
    body = event_body(
        "charge.refunded", row.charge_id, created=TS, amount_refunded=300, status="succeeded"
    )
    start = threading.Barrier(8)

    def one(_: int) -> bool:
        start.wait()
        return deliver(hooks, body)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))

    assert answers.count(False) == 1
    refunded = payment(billing_db, row.payment_id)
    assert (refunded.status, refunded.amount_refunded) == (payments.PARTIALLY_REFUNDED, 300)
    assert subscription(billing_db, row.subscription_id).status == states.ACTIVE


def test_unknown_payment_is_recorded_and_ignored(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    before = counted("charge.succeeded", "unknown_payment")
    body = event_body("charge.succeeded", "ch_nobody_knows", created=TS, event_id="evt_unknown_pay")
    assert deliver(hooks, body) is False
    assert event_count(billing_db, "evt_unknown_pay") == 1
    assert counted("charge.succeeded", "unknown_payment") == before + 1
    assert deliver(hooks, body) is True


def test_unhandled_event_type_is_recorded_and_ignored(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    body = b'{"id": "evt_other_type", "type": "customer.created", "created": %d}' % TS
    assert deliver(hooks, body) is False
    assert event_count(billing_db, "evt_other_type") == 1


def test_lag_is_observed(hooks: Webhooks, billing_db: Database) -> None:  # noqa: F811
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    before = REGISTRY.get_sample_value("fitco_billing_webhook_lag_seconds_sum") or 0.0
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS - 42))
    after = REGISTRY.get_sample_value("fitco_billing_webhook_lag_seconds_sum") or 0.0
    assert after - before == pytest.approx(42)


# --- out of order: settle_charge only moves forward, so the second event changes nothing ---


def test_refunded_before_succeeded(hooks: Webhooks, billing_db: Database) -> None:  # noqa: F811
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(hooks, event_body("charge.refunded", row.charge_id, created=TS, amount_refunded=999))
    refunded = payment(billing_db, row.payment_id)
    assert (refunded.status, refunded.amount_refunded) == (payments.REFUNDED, 999)
    trail = audit(billing_db, row.subscription_id)

    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS - 10))

    assert payment(billing_db, row.payment_id).status == payments.REFUNDED
    assert audit(billing_db, row.subscription_id) == trail


def test_succeeded_twice_moves_once(hooks: Webhooks, billing_db: Database) -> None:  # noqa: F811
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS))
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS + 1))  # another id
    moves = [t for t in audit(billing_db, row.subscription_id) if t[1] == states.ACTIVE]
    assert len(moves) == 1


def test_failed_after_succeeded(hooks: Webhooks, billing_db: Database) -> None:  # noqa: F811
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS))
    deliver(hooks, event_body("charge.failed", row.charge_id, created=TS - 5, failure_code="x"))
    settled = payment(billing_db, row.payment_id)
    assert (settled.status, settled.failure_code) == (payments.SUCCEEDED, "")
    assert subscription(billing_db, row.subscription_id).status == states.ACTIVE


def test_requires_action_after_succeeded(hooks: Webhooks, billing_db: Database) -> None:  # noqa: F811
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    deliver(hooks, event_body("charge.succeeded", row.charge_id, created=TS))
    deliver(hooks, event_body("charge.requires_action", row.charge_id, created=TS - 5))
    assert payment(billing_db, row.payment_id).status == payments.SUCCEEDED
    assert subscription(billing_db, row.subscription_id).status == states.ACTIVE


def test_failed_renewal_event_makes_the_subscription_past_due(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(
        billing_db,
        NOW,
        status=states.ACTIVE,
        payment_status=payments.PENDING,
        kind=payments.RENEWAL,
    )
    deliver(
        hooks, event_body("charge.failed", row.charge_id, created=TS, failure_code="card_declined")
    )
    assert subscription(billing_db, row.subscription_id).status == states.PAST_DUE


# --- refused deliveries change nothing ---


def _refused(hooks: Webhooks, body: bytes, header: str) -> str:
    with pytest.raises(SignatureError) as caught:
        hooks.receive(body, header)
    return caught.value.reason


def test_forged_stale_and_unsigned_deliveries_are_refused(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
) -> None:
    row = seed(billing_db, NOW, status=states.INCOMPLETE, payment_status=payments.PENDING)
    body = event_body("charge.succeeded", row.charge_id, created=TS, event_id="evt_refused")
    before = counted("unknown", "rejected")

    assert _refused(hooks, body, signed(body, TS, b"not-the-secret-0123456789abcdefgh")) == (
        "SIGNATURE_INVALID"
    )
    assert _refused(hooks, body, signed(body, TS - 301)) == "SIGNATURE_EXPIRED"  # a replay
    assert _refused(hooks, body, signed(body, TS + 301)) == "SIGNATURE_EXPIRED"
    assert _refused(hooks, body + b" ", signed(body, TS)) == "SIGNATURE_INVALID"  # tampered
    assert _refused(hooks, body, "") == "SIGNATURE_MISSING"
    assert _refused(hooks, body, "t=1,v1") == "SIGNATURE_INVALID"

    assert counted("unknown", "rejected") == before + 6
    assert event_count(billing_db, "evt_refused") == 0
    assert payment(billing_db, row.payment_id).status == payments.PENDING


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "charge.succeeded", "created": 1}',
        b'{"id": "evt_x", "type": "charge.succeeded", "created": 1}',
        b'{"id": "evt_x", "type": "charge.succeeded", "created": "1", '
        b'"data": {"charge": {"id": "c"}}}',
        b'{"id": "evt_x", "type": "charge.failed", "created": 1, "data": {"charge": {"id": ""}}}',
        b'{"id": "%s", "type": "charge.failed", "created": 1}' % (b"e" * 65),
        b'{"id": "e", "type": "charge.failed", "created": 1, "data": {"charge": '
        b'{"id": "c", "amount": true}}}',
    ],
)
def test_signed_but_malformed_body_is_invalid_argument(
    hooks: Webhooks,
    billing_db: Database,  # noqa: F811
    body: bytes,
) -> None:
    with pytest.raises(InvalidArgument):
        deliver(hooks, body)
    with billing_db.transaction(write=False) as s:
        assert s.get(WebhookEventRow, "evt_x") is None


def test_clock_decides_the_tolerance(billing_db: Database) -> None:  # noqa: F811
    # The service's clock (a FileClock in e2e runs, shared with the sandbox) is the reference.
    later = FixedClock(NOW + timedelta(days=3))
    hooks = Webhooks(billing_db, later, SECRET)
    body = event_body("charge.succeeded", "ch_whatever", created=TS)
    with pytest.raises(SignatureError):
        deliver(hooks, body, at=TS)
    assert deliver(hooks, body, at=int(later.now().timestamp())) is False
