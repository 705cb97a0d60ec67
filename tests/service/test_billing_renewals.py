"""Renewals against real databases (SQLite and PostgreSQL), driven by a clock the tests move:
a paid renewal extends the period, a declined one goes past_due, is retried on schedule and ends
canceled, a subscription set to cancel at period end ends there, and concurrent loops never
charge twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from billing.domain import payments, states
from billing.domain.renewal_policy import DEFAULT_POLICY, RenewalPolicy
from billing.domain.renewals import RenewalLoop, Renewals
from billing.domain.times import utc
from billing.models import SubscriptionRow
from billing.plans import add_interval
from fitcore.clock import FixedClock
from fitcore.db import Database, make_engine
from tests.service.billing_webhook_fakes import (
    RecordingProvider,
    audit,
    billing_db,  # noqa: F401  (fixture)
    renewal_payments,
    seed,
    subscription,
)

START = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
END = add_interval(START, "month")
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
def renewals(billing_db: Database, provider: RecordingProvider, clock: FixedClock) -> Renewals:  # noqa: F811
    return Renewals(billing_db, provider, clock, DEFAULT_POLICY)


def active(db: Database, token: str = "tok_visa", cancel_at_period_end: bool = False) -> int:
    """An active monthly subscription paid for START..END; its id."""
    return seed(db, START, token=token, cancel_at_period_end=cancel_at_period_end).subscription_id


def set_token(db: Database, subscription_id: int, token: str) -> None:
    """The user changed their card."""
    with db.transaction() as s:
        s.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == subscription_id)
            .values(payment_method_token=token)
        )


def mine(provider: RecordingProvider, payment_ids: list[int]) -> list[str]:
    """The idempotency keys charged for these payments (other tests share the database)."""
    wanted = {f"renewal-{pid}" for pid in payment_ids}
    return [k for k in provider.keys if k in wanted]


def test_nothing_is_due_before_the_period_ends(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db)
    clock.at = END - timedelta(seconds=1)
    renewals.run_due()
    assert renewal_payments(billing_db, sub_id) == []


def test_paid_renewal_extends_the_period(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db)
    clock.at = END + timedelta(minutes=1)

    assert renewals.run_due() >= 1

    sub = subscription(billing_db, sub_id)
    assert sub.status == states.ACTIVE
    assert utc(sub.current_period_start) == END
    assert utc(sub.current_period_end) == add_interval(END, "month")
    assert (sub.renewal_attempts, sub.next_attempt_at) == (0, None)
    [paid] = renewal_payments(billing_db, sub_id)
    assert (paid.status, paid.amount, paid.currency) == (payments.SUCCEEDED, 999, "EUR")
    assert paid.provider_payment_id and provider.metadata[paid.provider_payment_id] == {
        "subscription_id": str(sub_id),
        "payment_id": str(paid.id),
        "user_id": str(sub.user_id),
    }
    assert mine(provider, [paid.id]) == [f"renewal-{paid.id}"]
    assert audit(billing_db, sub_id)[-1][1:2] == (states.ACTIVE,)
    assert audit(billing_db, sub_id)[-1][3] == "clock"

    renewals.run_due()  # the new period is not due: nothing more
    assert len(renewal_payments(billing_db, sub_id)) == 1


def test_declined_renewal_goes_past_due_is_retried_then_canceled(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db, token="tok_chargeDeclined")
    clock.at = END

    renewals.run_due()
    sub = subscription(billing_db, sub_id)
    assert (sub.status, sub.renewal_attempts) == (states.PAST_DUE, 1)
    assert utc(sub.next_attempt_at) == END + DAY
    assert utc(sub.current_period_end) == END  # premium runs on in the grace period

    clock.at = END + DAY - timedelta(minutes=1)  # not yet
    renewals.run_due()
    assert len(renewal_payments(billing_db, sub_id)) == 1

    for at, attempts, retry in [(END + DAY, 2, END + 3 * DAY), (END + 3 * DAY, 3, END + 5 * DAY)]:
        clock.at = at
        renewals.run_due()
        sub = subscription(billing_db, sub_id)
        assert (sub.status, sub.renewal_attempts, utc(sub.next_attempt_at)) == (
            states.PAST_DUE,
            attempts,
            retry,
        )

    clock.at = END + 5 * DAY
    renewals.run_due()
    sub = subscription(billing_db, sub_id)
    assert sub.status == states.CANCELED
    assert audit(billing_db, sub_id)[-1][1:] == (states.CANCELED, "renewal_failed", "clock")

    tries = renewal_payments(billing_db, sub_id)
    assert [p.status for p in tries] == [payments.FAILED] * 4
    assert {p.failure_code for p in tries} == {"card_declined"}
    assert mine(provider, [p.id for p in tries]) == [f"renewal-{p.id}" for p in tries]

    clock.at = END + 30 * DAY
    renewals.run_due()
    assert len(renewal_payments(billing_db, sub_id)) == 4


def test_retry_that_succeeds_makes_it_active_for_the_next_period(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db, token="tok_insufficient")
    clock.at = END
    renewals.run_due()
    assert subscription(billing_db, sub_id).status == states.PAST_DUE

    set_token(billing_db, sub_id, "tok_visa")
    clock.at = END + DAY
    renewals.run_due()

    sub = subscription(billing_db, sub_id)
    assert (sub.status, sub.renewal_attempts, sub.next_attempt_at) == (states.ACTIVE, 0, None)
    assert utc(sub.current_period_end) == add_interval(END, "month")
    assert [p.status for p in renewal_payments(billing_db, sub_id)] == [
        payments.FAILED,
        payments.SUCCEEDED,
    ]


def test_past_due_beyond_the_grace_period_is_canceled_without_a_charge(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db, token="tok_chargeDeclined")
    clock.at = END
    renewals.run_due()

    clock.at = END + DEFAULT_POLICY.grace_period  # the loop was down for a week
    renewals.run_due()

    assert subscription(billing_db, sub_id).status == states.CANCELED
    assert audit(billing_db, sub_id)[-1][1:] == (states.CANCELED, "renewal_failed", "clock")
    assert len(renewal_payments(billing_db, sub_id)) == 1


def test_cancel_at_period_end_cancels_at_the_end(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db, cancel_at_period_end=True)
    clock.at = END - timedelta(seconds=1)
    renewals.run_due()
    assert subscription(billing_db, sub_id).status == states.ACTIVE

    clock.at = END
    renewals.run_due()

    sub = subscription(billing_db, sub_id)
    assert (sub.status, utc(sub.canceled_at)) == (states.CANCELED, END)
    assert audit(billing_db, sub_id)[-1][1:] == (states.CANCELED, "period_end", "clock")
    assert renewal_payments(billing_db, sub_id) == []


def test_renewal_needing_authentication_is_past_due_until_confirmed(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db, token="tok_3ds")
    clock.at = END
    renewals.run_due()
    [pending] = renewal_payments(billing_db, sub_id)
    assert pending.status == payments.REQUIRES_ACTION
    assert subscription(billing_db, sub_id).status == states.PAST_DUE

    assert pending.provider_payment_id
    provider.confirm(pending.provider_payment_id)  # the cardholder authenticated meanwhile
    clock.at = END + DAY
    renewals.run_due()

    # The retry read the same charge back (no second charge for the period) and found it paid.
    [paid] = renewal_payments(billing_db, sub_id)
    assert (paid.id, paid.status) == (pending.id, payments.SUCCEEDED)
    assert mine(provider, [paid.id]) == [f"renewal-{paid.id}"]
    assert subscription(billing_db, sub_id).status == states.ACTIVE


def test_provider_outage_retries_the_same_payment_with_the_same_key(
    renewals: Renewals,
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    sub_id = active(billing_db)
    provider.down = True
    clock.at = END
    renewals.run_due()
    [pending] = renewal_payments(billing_db, sub_id)
    sub = subscription(billing_db, sub_id)
    assert (pending.status, sub.status, sub.renewal_attempts) == (
        payments.PENDING,
        states.ACTIVE,
        0,
    )
    assert utc(sub.next_attempt_at) == END + DEFAULT_POLICY.provider_retry

    provider.down = False
    clock.at = END + DEFAULT_POLICY.provider_retry
    renewals.run_due()

    [paid] = renewal_payments(billing_db, sub_id)
    assert (paid.id, paid.status) == (pending.id, payments.SUCCEEDED)
    assert mine(provider, [paid.id]) == [f"renewal-{paid.id}"] * 2
    assert subscription(billing_db, sub_id).status == states.ACTIVE


def test_concurrent_loops_charge_each_subscription_once(
    billing_db: Database,  # noqa: F811
    clock: FixedClock,
) -> None:
    # Two billing instances: their own engines, their own threads, a slow provider so the
    # runs overlap.
    subs = [active(billing_db) for _ in range(4)]
    provider = RecordingProvider(delay=0.05)
    clock.at = END
    second = Database(make_engine(str(billing_db.engine.url.render_as_string(hide_password=False))))
    loops = [Renewals(db, provider, clock, DEFAULT_POLICY) for db in (billing_db, second)] * 2
    start = threading.Barrier(len(loops))

    def run(renewals: Renewals) -> None:
        start.wait()
        renewals.run_due()

    try:
        threads = [threading.Thread(target=run, args=(r,)) for r in loops]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        second.dispose()

    for sub_id in subs:
        [paid] = renewal_payments(billing_db, sub_id)
        assert paid.status == payments.SUCCEEDED
        assert mine(provider, [paid.id]) == [f"renewal-{paid.id}"]
        assert subscription(billing_db, sub_id).status == states.ACTIVE


def test_a_run_handles_a_bounded_batch(
    billing_db: Database,  # noqa: F811
    provider: RecordingProvider,
    clock: FixedClock,
) -> None:
    # Due long ago, so these come first in the run's order (other tests' rows are due later).
    early = START - timedelta(days=400)
    subs = [
        seed(billing_db, early, period_end=early + timedelta(days=30)).subscription_id
        for _ in range(3)
    ]
    clock.at = early + timedelta(days=31)
    renewals = Renewals(billing_db, provider, clock, RenewalPolicy(batch_size=2))

    assert renewals.run_due() == 2
    assert sum(len(renewal_payments(billing_db, s)) for s in subs) == 2
    renewals.run_due()
    assert sum(len(renewal_payments(billing_db, s)) for s in subs) == 3


class _Flaky:
    """A Renewals stand-in whose runs fail every other time."""

    def __init__(self) -> None:
        self.clock = FixedClock(START)
        self.calls = 0

    def run_due(self) -> int:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("database went away")
        return 7


@pytest.fixture
def flaky_loop() -> Iterator[tuple[_Flaky, RenewalLoop]]:
    flaky = _Flaky()
    loop = RenewalLoop(flaky, 0.01)  # type: ignore[arg-type]
    yield flaky, loop
    loop.stop()


def test_loop_survives_errors_and_stops(flaky_loop: tuple[_Flaky, RenewalLoop]) -> None:
    flaky, loop = flaky_loop
    loop.start()
    deadline = time.monotonic() + 5
    while flaky.calls < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert flaky.calls >= 4
    assert loop.failures >= 2 and loop.runs >= 4
    assert loop.last_run_at == START
    calls = flaky.calls
    time.sleep(0.05)
    assert flaky.calls == calls  # stopped: no more runs
