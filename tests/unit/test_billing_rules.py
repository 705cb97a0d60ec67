"""Billing's rules without servers: entitlements (pure), the Idempotency-Key checks, and
settle_charge — payments only move forward and move their subscription as documented — on a
migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing.domain import entitlements, payments, states
from billing.domain.idempotency import check_key, request_hash
from billing.domain.payments import settle_charge
from billing.domain.views import SubscriptionView
from billing.migrations import MIGRATIONS
from billing.models import PaymentRow, SubscriptionEventRow, SubscriptionRow
from billing.plans import GRACE_PERIOD, PLANS, add_interval
from fitcore.db import Database, make_engine
from fitcore.errors import InvalidArgument

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
END = add_interval(NOW, "month")

# -- entitlements -------------------------------------------------------------------------


def test_active_is_premium_until_the_period_end() -> None:
    got = entitlements.decide(states.ACTIVE, "premium_monthly", END, NOW)
    assert got.premium and got.premium_until == END
    assert got.allowance == PLANS["premium_monthly"].allowance
    assert got.allowance.wod_exercises == 9
    assert not entitlements.decide(states.ACTIVE, "premium_monthly", END, END).premium


def test_past_due_keeps_premium_for_the_grace_period() -> None:
    during = END + GRACE_PERIOD - timedelta(seconds=1)
    got = entitlements.decide(states.PAST_DUE, "premium_yearly", END, during)
    assert got.premium and got.premium_until == END + GRACE_PERIOD
    assert not entitlements.decide(
        states.PAST_DUE, "premium_yearly", END, END + GRACE_PERIOD
    ).premium


@pytest.mark.parametrize("status", [states.INCOMPLETE, states.CANCELED, states.NONE, None])
def test_other_states_are_free(status: str | None) -> None:
    got = entitlements.decide(status, "premium_monthly", END, NOW)
    assert not got.premium and got.plan_id == "free" and got.premium_until is None
    assert got.allowance.wod_exercises == 6 and got.allowance.stats_history_weeks == 4


def test_a_plan_that_is_not_paid_is_free() -> None:
    assert not entitlements.decide(states.ACTIVE, "free", END, NOW).premium
    assert not entitlements.decide(states.ACTIVE, "gold", END, NOW).premium


def test_of_subscription_ignores_a_canceled_one() -> None:
    view = SubscriptionView(
        1, 7, "premium_monthly", states.CANCELED, NOW, END, False, NOW, "", "", NOW
    )
    assert not entitlements.of_subscription(view, NOW).premium
    assert not entitlements.of_subscription(None, NOW).premium


# -- idempotency keys ---------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "short", "x" * 256, "tab\there-ok?", "ünïcode-key"])
def test_bad_idempotency_keys(key: str | None) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_key(key)
    assert info.value.violations[0].field == "Idempotency-Key"


def test_good_idempotency_keys_and_hashes() -> None:
    assert check_key("a1b2c3d4") == "a1b2c3d4"
    assert check_key("x" * 255) == "x" * 255
    one = request_hash("Checkout", {"plan_id": "a", "payment_method_token": "b"})
    assert one == request_hash("Checkout", {"payment_method_token": "b", "plan_id": "a"})
    assert one != request_hash("Checkout", {"plan_id": "a", "payment_method_token": "c"})
    assert len(one) == 64


# -- settle_charge ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('billing')) / 'billing.db'}"
    MIGRATIONS.upgrade(url)
    database = Database(make_engine(url))
    yield database
    database.dispose()


_users = iter(range(1, 10**6))


def _subscription(
    db: Database, status: str = states.INCOMPLETE, end: datetime | None = None
) -> int:
    with db.transaction() as s:
        sub = SubscriptionRow(
            user_id=next(_users),
            plan_id="premium_monthly",
            status=status,
            current_period_start=None if end is None else NOW,
            current_period_end=end,
            cancel_at_period_end=False,
            payment_method_token="tok",
            card_brand="",
            card_last4="",
            renewal_attempts=2 if status == states.PAST_DUE else 0,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(sub)
        states.record_created(s, sub, "test", "user", NOW)
        return sub.id


def _payment(
    db: Database, sub_id: int, kind: str = payments.CHECKOUT, start: datetime = NOW
) -> int:
    with db.transaction() as s:
        sub = s.get(SubscriptionRow, sub_id)
        assert sub is not None
        row = PaymentRow(
            user_id=sub.user_id,
            subscription_id=sub_id,
            kind=kind,
            plan_id="premium_monthly",
            amount=999,
            currency="EUR",
            status=payments.PENDING,
            amount_refunded=0,
            failure_code="",
            card_brand="",
            card_last4="",
            period_start=start,
            period_end=add_interval(start, "month"),
            next_action_url="",
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(row)
        s.flush()
        return row.id


def _settle(db: Database, payment_id: int, status: str, **kw: object) -> tuple[str, int]:
    with db.transaction() as s:
        pay = payments.lock_payment(s, payment_id)
        assert pay is not None
        settle_charge(s, pay, status=status, at=NOW, actor="provider", **kw)  # type: ignore[arg-type]
        return pay.status, pay.amount_refunded


def _sub(db: Database, sub_id: int) -> SubscriptionRow:
    with db.transaction(write=False) as s:
        sub = s.get(SubscriptionRow, sub_id)
        assert sub is not None
        return sub


def _events(db: Database, sub_id: int) -> int:
    with db.transaction(write=False) as s:
        return int(
            s.scalar(select(func.count()).where(SubscriptionEventRow.subscription_id == sub_id))
            or 0
        )


def test_a_first_payment_activates_once(db: Database) -> None:
    sub_id = _subscription(db)
    pay = _payment(db, sub_id)
    _settle(db, pay, "succeeded", card_brand="visa", card_last4="4242", charge_id="ch_a1")
    sub = _sub(db, sub_id)
    assert sub.status == states.ACTIVE and (sub.card_brand, sub.card_last4) == ("visa", "4242")
    assert sub.current_period_end is not None
    assert sub.current_period_end.replace(tzinfo=UTC) == END
    events = _events(db, sub_id)
    # Duplicates and late contrary reports change nothing, and record nothing.
    for late in ("succeeded", "failed", "requires_action", "pending"):
        assert _settle(db, pay, late, failure_code="card_declined") == ("succeeded", 0)
    assert _events(db, sub_id) == events and _sub(db, sub_id).status == states.ACTIVE


def test_a_failed_first_payment_cancels_and_stays_failed(db: Database) -> None:
    sub_id = _subscription(db)
    pay = _payment(db, sub_id)
    _settle(db, pay, "requires_action", next_action_url="http://x/confirm")
    assert _sub(db, sub_id).status == states.INCOMPLETE
    assert _settle(db, pay, "failed", failure_code="card_declined") == ("failed", 0)
    assert _sub(db, sub_id).status == states.CANCELED
    assert _settle(db, pay, "succeeded") == ("failed", 0)
    assert _sub(db, sub_id).status == states.CANCELED


def test_refunds_only_grow_and_a_full_one_cancels(db: Database) -> None:
    sub_id = _subscription(db)
    pay = _payment(db, sub_id)
    _settle(db, pay, "succeeded")
    assert _settle(db, pay, "succeeded", amount_refunded=300) == ("partially_refunded", 300)
    assert _settle(db, pay, "succeeded", amount_refunded=200) == ("partially_refunded", 300)
    assert _sub(db, sub_id).status == states.ACTIVE
    assert _settle(db, pay, "refunded", amount_refunded=999) == ("refunded", 999)
    assert _sub(db, sub_id).status == states.CANCELED


def test_a_refund_reported_before_the_success_settles_both(db: Database) -> None:
    sub_id = _subscription(db)
    pay = _payment(db, sub_id)
    assert _settle(db, pay, "refunded", amount_refunded=999) == ("refunded", 999)
    assert _sub(db, sub_id).status == states.CANCELED
    assert _events(db, sub_id) == 3  # none → incomplete → active → canceled


def test_renewals_extend_fail_to_past_due_and_recover(db: Database) -> None:
    sub_id = _subscription(db, states.ACTIVE, END)
    first = _payment(db, sub_id, payments.RENEWAL, END)
    _settle(db, first, "failed", failure_code="insufficient_funds")
    assert _sub(db, sub_id).status == states.PAST_DUE
    retry = _payment(db, sub_id, payments.RENEWAL, END)
    _settle(db, retry, "failed", failure_code="insufficient_funds")
    assert _sub(db, sub_id).status == states.PAST_DUE
    last = _payment(db, sub_id, payments.RENEWAL, END)
    _settle(db, last, "succeeded")
    sub = _sub(db, sub_id)
    assert sub.status == states.ACTIVE and sub.renewal_attempts == 0
    assert sub.current_period_end is not None
    assert sub.current_period_end.replace(tzinfo=UTC) == add_interval(END, "month")


def test_a_full_refund_of_an_older_period_does_not_cancel(db: Database) -> None:
    sub_id = _subscription(db)
    old = _payment(db, sub_id)
    _settle(db, old, "succeeded")
    renewal = _payment(db, sub_id, payments.RENEWAL, END)
    _settle(db, renewal, "succeeded")
    assert _settle(db, old, "refunded", amount_refunded=999) == ("refunded", 999)
    assert _sub(db, sub_id).status == states.ACTIVE


def test_a_success_for_a_canceled_subscription_is_kept_but_moves_nothing(db: Database) -> None:
    sub_id = _subscription(db)
    pay = _payment(db, sub_id)
    with db.transaction() as s:
        sub = s.get(SubscriptionRow, sub_id)
        assert sub is not None
        states.move(s, sub, states.CANCELED, reason="test", actor="user", at=NOW)
    assert _settle(db, pay, "succeeded") == ("succeeded", 0)
    assert _sub(db, sub_id).status == states.CANCELED


def test_an_unknown_status_is_a_bug(db: Database) -> None:
    pay = _payment(db, _subscription(db))
    with pytest.raises(ValueError, match="unknown charge status"):
        _settle(db, pay, "paid")
