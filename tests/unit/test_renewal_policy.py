"""The product rules of renewals (billing.domain.renewal_policy): when a failed renewal is
retried and when the subscription ends. Each test fails when its rule is removed or changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain import entitlements
from billing.domain.renewal_policy import DEFAULT_POLICY, RenewalPolicy
from billing.plans import GRACE_PERIOD

END = datetime(2026, 12, 20, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
P = DEFAULT_POLICY


def test_retries_1_3_and_5_days_after_the_period_end() -> None:
    assert P.next_attempt(END, 1, END) == END + DAY
    assert P.next_attempt(END, 2, END + DAY) == END + 3 * DAY
    assert P.next_attempt(END, 3, END + 3 * DAY) == END + 5 * DAY


def test_no_retry_left_after_the_last_one() -> None:
    assert P.next_attempt(END, 4, END + 5 * DAY) is None
    assert P.next_attempt(END, 0, END) is None


def test_grace_period_is_a_week_and_shared_with_entitlements() -> None:
    assert P.grace_period == GRACE_PERIOD == timedelta(days=7)
    # A past_due subscription keeps premium exactly as long as renewals keep it alive.
    assert entitlements.premium_until("past_due", END) == END + P.grace_period
    assert not P.grace_over(END, END + P.grace_period - timedelta(seconds=1))
    assert P.grace_over(END, END + P.grace_period)


def test_every_retry_falls_inside_the_grace_period() -> None:
    for attempts in range(1, len(P.retry_after) + 1):
        at = P.next_attempt(END, attempts, END)
        assert at is not None and at < END + P.grace_period


def test_late_failures_are_not_retried_in_a_burst() -> None:
    # After downtime the scheduled slot may be past: the retry waits at least the minimum gap.
    now = END + 2 * DAY
    assert P.next_attempt(END, 1, now) == now + P.min_retry_gap


def test_a_retry_that_would_land_after_the_grace_period_is_none() -> None:
    assert P.next_attempt(END, 3, END + 7 * DAY - timedelta(minutes=30)) is None


def test_provider_outage_retry_is_soon_and_never_past_the_grace_period() -> None:
    assert P.provider_retry_at(END, END) == END + P.provider_retry
    late = END + P.grace_period - timedelta(minutes=1)
    assert P.provider_retry_at(END, late) == END + P.grace_period


def test_custom_schedule() -> None:
    policy = RenewalPolicy(retry_after=(timedelta(hours=6),), grace_period=2 * DAY)
    assert policy.next_attempt(END, 1, END) == END + timedelta(hours=6)
    assert policy.next_attempt(END, 2, END) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"retry_after": (3 * DAY, DAY)}, {"batch_size": 0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        RenewalPolicy(**kwargs)  # type: ignore[arg-type]
