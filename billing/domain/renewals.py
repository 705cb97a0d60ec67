"""Renewals, driven by the service's clock: charge each paid period's successor when it is due,
retry failures over the grace period, end what must end (rules: billing.domain.renewal_policy).

One `run_due()`, in three steps, so no database transaction is open during a provider call:

1. Claim (one write transaction): due subscriptions, at most `policy.batch_size`, locked with
   SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite's write transaction serialises the
   loops). Those set to cancel at period end, or past_due beyond the grace period, are canceled
   here. For the others a `renewal` payment for the next period is created (pending) — or the
   one still unsettled for that period is reused — and the subscription is leased to this run
   (`next_attempt_at = now + claim_lease`), so another billing instance skips it even after
   this transaction commits.
2. Charge, outside any transaction, with the provider idempotency key `renewal-<payment id>`:
   whatever happens (a crash, a second instance after the lease), one payment row is charged
   at most once at the provider. A payment the provider already knows is read back instead.
3. Settle (one write transaction per payment): billing.domain.payments.settle_charge applies the
   outcome (active with the next period, or past_due); then the retry schedule: attempts + 1 and
   the next attempt, or canceled when none is left.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prometheus_client import Counter, Gauge
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from billing.domain import payments, states
from billing.domain.renewal_policy import DEFAULT_POLICY, RenewalPolicy
from billing.domain.times import utc
from billing.models import PaymentRow, SubscriptionRow
from billing.plans import PLANS, add_interval
from billing.provider import Charge, PaymentProvider, ProviderError, UnknownPaymentMethod
from fitcore.clock import Clock
from fitcore.db import Database

log = logging.getLogger("billing.renewals")

ACTOR: Final = "clock"
# Audit reasons of the cancellations made here (subscription_events.reason).
REASON_PERIOD_END: Final = "period_end"
REASON_RENEWAL_FAILED: Final = "renewal_failed"
UNKNOWN_PAYMENT_METHOD: Final = "unknown_payment_method"

RENEWALS_TOTAL = Counter(
    "fitco_billing_renewals_total",
    "Renewal outcomes (renewed, failed, canceled_period_end, canceled_renewal_failed, "
    "provider_unavailable)",
    ["outcome"],
)
RENEWAL_LAST_RUN = Gauge(
    "fitco_billing_renewals_last_run_timestamp_seconds", "When the renewal loop last finished a run"
)


@dataclass(frozen=True)
class _Job:
    """A renewal payment to charge (plain values: no row outlives its transaction)."""

    payment_id: int
    subscription_id: int
    user_id: int
    plan_id: str
    amount: int
    currency: str
    token: str
    provider_payment_id: str | None


def _due(now: datetime) -> list[ColumnElement[bool]]:
    """Conditions of a subscription the loop must look at now. A subscription leased by a run
    (next_attempt_at in the future) is left alone, even past the grace period: the run holding
    it settles it first (the lease is minutes, the grace period days)."""
    not_leased = or_(
        SubscriptionRow.next_attempt_at.is_(None), SubscriptionRow.next_attempt_at <= now
    )
    return [
        and_(
            SubscriptionRow.status == states.ACTIVE,
            SubscriptionRow.current_period_end <= now,
            not_leased,
        ),
        and_(SubscriptionRow.status == states.PAST_DUE, not_leased),
    ]


class Renewals:
    def __init__(
        self,
        db: Database,
        provider: PaymentProvider,
        clock: Clock,
        policy: RenewalPolicy = DEFAULT_POLICY,
    ) -> None:
        self.db = db
        self.provider = provider
        self.clock = clock
        self.policy = policy

    def run_due(self) -> int:
        """Handle what is due now; the number of subscriptions handled (charged or ended)."""
        now = self.clock.now()
        ended, jobs = self._claim(now)
        for job in jobs:
            charge = self._charge(job)
            self._settle(job, charge, now)
        return ended + len(jobs)

    def _claim(self, now: datetime) -> tuple[int, list[_Job]]:
        ended, jobs = 0, []
        with self.db.transaction() as s:
            due = s.scalars(
                select(SubscriptionRow)
                .where(or_(*_due(now)))
                .order_by(SubscriptionRow.current_period_end, SubscriptionRow.id)
                .limit(self.policy.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            for sub in due:
                job = self._claim_one(s, sub, now)
                if job is None:
                    ended += 1
                else:
                    jobs.append(job)
        return ended, jobs

    def _claim_one(self, s: Session, sub: SubscriptionRow, now: datetime) -> _Job | None:
        """Cancel `sub` (None) or return the renewal payment to charge for it."""
        end = utc(sub.current_period_end)
        plan = PLANS.get(sub.plan_id)
        if sub.status == states.ACTIVE and sub.cancel_at_period_end:
            self._cancel(s, sub, REASON_PERIOD_END, now)
            return None
        past_grace = sub.status == states.PAST_DUE and (
            end is None or self.policy.grace_over(end, now)
        )
        if end is None or plan is None or not plan.paid or past_grace:
            self._cancel(s, sub, REASON_RENEWAL_FAILED, now)
            return None
        payment = s.scalars(
            select(PaymentRow)
            .where(
                PaymentRow.subscription_id == sub.id,
                PaymentRow.kind == payments.RENEWAL,
                PaymentRow.period_start == end,
                PaymentRow.status.in_(payments.UNSETTLED),
            )
            .order_by(PaymentRow.id.desc())
            .limit(1)
        ).first()
        if payment is None:
            payment = PaymentRow(
                user_id=sub.user_id,
                subscription_id=sub.id,
                kind=payments.RENEWAL,
                plan_id=plan.id,
                amount=plan.amount,
                currency=plan.currency,
                status=payments.PENDING,
                amount_refunded=0,
                card_brand=sub.card_brand,
                card_last4=sub.card_last4,
                period_start=end,
                period_end=add_interval(end, plan.interval),
                created_at=now,
                updated_at=now,
            )
            s.add(payment)
            s.flush()
        sub.next_attempt_at = now + self.policy.claim_lease
        return _Job(
            payment.id,
            sub.id,
            sub.user_id,
            payment.plan_id,
            payment.amount,
            payment.currency,
            sub.payment_method_token,
            payment.provider_payment_id,
        )

    def _cancel(self, s: Session, sub: SubscriptionRow, reason: str, now: datetime) -> None:
        states.move(s, sub, states.CANCELED, reason=reason, actor=ACTOR, at=now)
        sub.next_attempt_at = None
        RENEWALS_TOTAL.labels(f"canceled_{reason}").inc()
        log.info(
            "subscription canceled",
            extra={"subscription_id": sub.id, "user_id": sub.user_id, "reason": reason},
        )

    def _charge(self, job: _Job) -> Charge | None:
        """The provider's answer for the job's payment; None when the provider could not
        be reached (the payment stays pending and is charged again with the same key)."""
        try:
            if job.provider_payment_id:
                return self.provider.get_charge(job.provider_payment_id)
            return self.provider.charge(
                payment_method_token=job.token,
                amount=job.amount,
                currency=job.currency,
                idempotency_key=f"renewal-{job.payment_id}",
                description=f"FitCo {job.plan_id} renewal",
                metadata={
                    "subscription_id": str(job.subscription_id),
                    "payment_id": str(job.payment_id),
                    "user_id": str(job.user_id),
                },
            )
        except UnknownPaymentMethod:
            # The card is gone at the provider: a failed renewal like a decline.
            return Charge(
                "", payments.FAILED, job.amount, job.currency, "", "", UNKNOWN_PAYMENT_METHOD
            )
        except ProviderError as exc:
            log.warning(
                "renewal charge: provider unavailable",
                extra={"payment_id": job.payment_id, "error": str(exc)},
            )
            return None
        except Exception:  # a bug in a provider client must not stop the other renewals
            log.exception("renewal charge failed", extra={"payment_id": job.payment_id})
            return None

    def _settle(self, job: _Job, charge: Charge | None, now: datetime) -> None:
        with self.db.transaction() as s:
            payment = payments.lock_payment(s, job.payment_id)
            if payment is None:
                return
            if charge is not None:
                payments.settle_provider_charge(s, payment, charge, at=now, actor=ACTOR)
            sub = s.get(
                SubscriptionRow,
                payment.subscription_id,
                with_for_update=True,
                populate_existing=True,
            )
            if sub is not None:
                self._schedule(s, sub, payment, now)

    def _schedule(
        self, s: Session, sub: SubscriptionRow, payment: PaymentRow, now: datetime
    ) -> None:
        """After the charge: the retry schedule of a subscription whose renewal did not pay."""
        end = utc(sub.current_period_end)
        if sub.status not in states.PREMIUM_STATES or end is None:
            return  # canceled meanwhile (settle_charge counted an orphan payment if it paid)
        if utc(payment.period_start) != end:
            RENEWALS_TOTAL.labels("renewed").inc()  # paid: settle_charge moved the period on
            return
        if payment.status == payments.PENDING:
            RENEWALS_TOTAL.labels("provider_unavailable").inc()
            sub.next_attempt_at = self.policy.provider_retry_at(end, now)
            return
        if payment.status not in (payments.FAILED, payments.REQUIRES_ACTION):
            return
        RENEWALS_TOTAL.labels("failed").inc()
        if sub.status == states.ACTIVE:
            # settle_charge moves a failed renewal to past_due itself; a renewal that needs the
            # cardholder's authentication is not paid either, so it is past_due just the same.
            reason = f"renewal payment {payment.id} {payment.status}"
            states.move(s, sub, states.PAST_DUE, reason=reason, actor=ACTOR, at=now)
        sub.renewal_attempts += 1
        retry_at = self.policy.next_attempt(end, sub.renewal_attempts, now)
        if retry_at is None:
            self._cancel(s, sub, REASON_RENEWAL_FAILED, now)
        else:
            sub.next_attempt_at = retry_at
        log.info(
            "renewal not paid",
            extra={
                "subscription_id": sub.id,
                "payment_id": payment.id,
                "failure_code": payment.failure_code,
                "attempts": sub.renewal_attempts,
            },
        )


class RenewalLoop:
    """Calls `renewals.run_due()` every `interval_seconds` on a daemon thread; an error is
    logged and the loop goes on. The last run is readable (last_run_at, last_handled,
    last_error, runs, failures) for health pages and tests."""

    def __init__(self, renewals: Renewals, interval_seconds: float) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.renewals = renewals
        self.interval_seconds = interval_seconds
        self.last_run_at: datetime | None = None
        self.last_handled = 0
        self.last_error = ""
        self.runs = 0
        self.failures = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="billing-renewals", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current run (a run in progress finishes its provider calls)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("renewal loop still running after stop", extra={"timeout": timeout})

    def run_once(self) -> None:
        try:
            self.last_handled = self.renewals.run_due()
            self.last_error = ""
            self.last_run_at = self.renewals.clock.now()
        except Exception as exc:  # never dies: the next interval tries again
            self.failures += 1
            self.last_error = type(exc).__name__
            log.exception("renewal run failed")
        self.runs += 1
        RENEWAL_LAST_RUN.set_to_current_time()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self.interval_seconds)
