"""The product rules of renewals, as data in one place (pure: no I/O, the time is an argument).

- A paid period ends at `current_period_end`; the renewal is due then. A subscription set to
  cancel at period end is canceled instead.
- When the renewal charge fails (declined, or the card needs authentication the cardholder is
  not there to give), the subscription becomes `past_due` and keeps premium for the grace
  period (billing.plans.GRACE_PERIOD, 7 days after the period end; entitlements read the same
  constant). The charge is retried 1, 3 and 5 days after the period end.
- When the grace period is over, or the last retry failed, the subscription is canceled (reason
  renewal_failed). A retry that succeeds makes it `active` again for the next period.

Why these numbers: our choice, inside what providers do by default (Stripe's Smart Retries make
up to 8 attempts within 2 weeks; its fixed schedules retry after days, not hours), short enough
that an unpaid premium ends within a week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.plans import GRACE_PERIOD


@dataclass(frozen=True)
class RenewalPolicy:
    # When to retry, counted from the period end (the first attempt), one per failed attempt.
    retry_after: tuple[timedelta, ...] = (timedelta(days=1), timedelta(days=3), timedelta(days=5))
    grace_period: timedelta = GRACE_PERIOD
    # Never retry sooner than this after a failure (after downtime, the schedule's past slots
    # are caught up one at a time, not in a burst of charges).
    min_retry_gap: timedelta = timedelta(hours=1)
    # A claimed subscription is left alone by other billing instances for this long, so two
    # loops never charge it twice; longer than any provider call (which have timeouts).
    claim_lease: timedelta = timedelta(minutes=10)
    # When the provider could not be reached: try again after this (not counted as an attempt:
    # it is not the card's fault).
    provider_retry: timedelta = timedelta(minutes=15)
    # Subscriptions handled per run_due (a bounded transaction; the rest waits for the next run).
    batch_size: int = 50

    def __post_init__(self) -> None:
        if list(self.retry_after) != sorted(self.retry_after) or self.batch_size < 1:
            raise ValueError("retry_after must be increasing and batch_size positive")

    def grace_over(self, period_end: datetime, now: datetime) -> bool:
        """True when a past_due subscription whose period ended at `period_end` must end."""
        return now >= period_end + self.grace_period

    def next_attempt(
        self, period_end: datetime, failed_attempts: int, now: datetime
    ) -> datetime | None:
        """When to retry a renewal due at `period_end` after `failed_attempts` failures (the
        first attempt at the period end included); None when there is no retry left (cancel)."""
        if failed_attempts < 1 or failed_attempts > len(self.retry_after):
            return None
        at = max(period_end + self.retry_after[failed_attempts - 1], now + self.min_retry_gap)
        if at >= period_end + self.grace_period:
            return None
        return at

    def provider_retry_at(self, period_end: datetime, now: datetime) -> datetime:
        """When to try again after the provider could not be reached (never past the end of
        the grace period, when the subscription is canceled instead)."""
        return min(now + self.provider_retry, max(now, period_end + self.grace_period))


DEFAULT_POLICY = RenewalPolicy()
