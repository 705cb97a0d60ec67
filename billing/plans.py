"""What can be bought, and what each plan allows: data in one place (ListPlans shows it,
checkout charges it, entitlements read it). Prices in integer minor units."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

FREE: Final = "free"
CURRENCY: Final = "EUR"
# How long a past_due subscription keeps premium after its period ended while the renewal is
# retried (billing.domain.renewals cancels it when this is over; entitlements read it for
# premium_until). Our choice: one week of retries, within the range providers default to
# (Stripe's Smart Retries: up to 8 attempts within 2 weeks).
GRACE_PERIOD: Final = timedelta(days=7)


@dataclass(frozen=True)
class Allowance:
    """What a plan allows (fitco.billing.v1.Entitlements)."""

    wod_exercises: int
    wod_regenerations_per_day: int
    nutrition_detail: bool
    stats_history_weeks: int  # 0 = unlimited


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    amount: int  # minor units per period
    currency: str
    interval: str  # "month" | "year" | "" (free)
    allowance: Allowance
    features: tuple[str, ...]

    @property
    def paid(self) -> bool:
        return self.amount > 0


FREE_ALLOWANCE: Final = Allowance(6, 0, False, 4)
PREMIUM_ALLOWANCE: Final = Allowance(9, 3, True, 0)
_PREMIUM_FEATURES = (
    "9-exercise workout of the day",
    "up to 3 new workouts a day",
    "meal split and training/rest-day nutrition",
    "statistics over your whole history",
)

PLANS: Final[MappingProxyType[str, Plan]] = MappingProxyType(
    {
        FREE: Plan(
            FREE,
            "Free",
            0,
            CURRENCY,
            "",
            FREE_ALLOWANCE,
            ("6-exercise workout of the day", "nutrition targets", "4 weeks of statistics"),
        ),
        "premium_monthly": Plan(
            "premium_monthly",
            "Premium (monthly)",
            999,
            CURRENCY,
            "month",
            PREMIUM_ALLOWANCE,
            _PREMIUM_FEATURES,
        ),
        "premium_yearly": Plan(
            "premium_yearly",
            "Premium (yearly)",
            9900,
            CURRENCY,
            "year",
            PREMIUM_ALLOWANCE,
            _PREMIUM_FEATURES,
        ),
    }
)


def add_interval(start: datetime, interval: str) -> datetime:
    """The end of a period of `interval` that starts at `start` (same day of the next month or
    year, clamped to the month's last day: 31 Jan + 1 month = 28/29 Feb)."""
    months = {"month": 1, "year": 12}[interval]
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
