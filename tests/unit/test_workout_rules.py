"""The pure rules of workout sessions and statistics (monolith.domain.workout_rules): a set's
time and energy, a session's totals, streaks, statistics periods, weekly sets per primary
muscle group and personal records. Each test fails when its rule is removed or changed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fitrules.energy import kcal
from fitrules.wod import SECONDS_PER_REP
from monolith.domain.workout_rules import (
    AUTO_CLOSE_AFTER,
    MAX_SET_GAP,
    MAX_SETS_PER_SESSION,
    SetWork,
    best_records,
    calories_basis,
    period_start,
    session_totals,
    set_minutes,
    set_volume_kg,
    streak_days,
    weekly_muscle_sets,
    work_seconds,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BENCH_MET = 6.0  # Compendium 2011, resistance training vigorous (02050)
PLANK_MET = 2.8


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bench(minutes: float, reps: int = 8, kg: float = 60) -> SetWork:
    return SetWork(at(minutes), reps, kg, 0, BENCH_MET)


def test_constants_are_the_contracts() -> None:
    assert AUTO_CLOSE_AFTER.total_seconds() == 4 * 3600
    assert MAX_SET_GAP.total_seconds() == 5 * 60
    assert MAX_SETS_PER_SESSION == 200
    assert SECONDS_PER_REP == 3.0


def test_work_is_the_duration_else_reps_at_three_seconds() -> None:
    assert work_seconds(reps=10, duration_seconds=0) == 30.0
    assert work_seconds(reps=0, duration_seconds=45) == 45.0
    assert work_seconds(reps=10, duration_seconds=45) == 45.0  # a timed set: its own clock


def test_set_minutes_are_the_gap_since_the_previous_set() -> None:
    assert set_minutes(at(0), bench(2)) == pytest.approx(2.0)
    # A gap longer than five minutes is a pause: it counts five.
    assert set_minutes(at(0), bench(30)) == pytest.approx(5.0)
    # Never less than the set's own work: 8 reps are 24 s even when logged right after.
    assert set_minutes(at(0), bench(0)) == pytest.approx(24 / 60)
    long_hold = SetWork(at(1), 0, 0, 20 * 60, PLANK_MET)
    assert set_minutes(at(0), long_hold) == pytest.approx(20.0)  # beyond the cap: its work
    # A set stamped before the previous one (clock skew) is not negative time.
    assert set_minutes(at(5), bench(4)) == pytest.approx(24 / 60)


def test_session_totals() -> None:
    sets = [
        bench(2),  # 2 min since the start
        bench(4, reps=6, kg=70),  # 2 min since the previous set
        SetWork(at(14), 0, 0, 60, PLANK_MET),  # 10 min later: capped at 5
    ]
    totals = session_totals(at(0), at(15), sets, body_weight_kg=75)
    assert totals.duration_seconds == 15 * 60
    assert totals.set_count == 3
    assert totals.volume_kg == 60 * 8 + 70 * 6
    # MET x 3.5 x kg / 200 per minute: bench 7.875 kcal/min for 4 min, plank 3.675 for 5.
    assert totals.calories == pytest.approx(7.875 * 4 + 3.675 * 5)
    assert totals.calories == pytest.approx(kcal(BENCH_MET, 75, 4) + kcal(PLANK_MET, 75, 5))


def test_session_totals_without_a_body_weight_or_sets() -> None:
    totals = session_totals(at(0), at(30), [bench(2)], body_weight_kg=0)
    assert (totals.calories, totals.volume_kg, totals.set_count) == (0.0, 480.0, 1)
    empty = session_totals(at(0), at(30), [], body_weight_kg=80)
    assert (empty.duration_seconds, empty.calories, empty.set_count) == (1800, 0.0, 0)


def test_volume_is_weight_times_reps() -> None:
    assert set_volume_kg(8, 60) == 480
    assert set_volume_kg(20, 0) == 0  # bodyweight work moves no logged load
    assert session_totals(at(0), at(1), [bench(1, 3, 0.1), bench(1, 3, 0.2)], 0).volume_kg == (
        0.9
    )  # no float noise


def test_calories_basis_names_the_formula_and_the_weight() -> None:
    basis = calories_basis(80)
    assert "MET x 3.5 x kg / 200" in basis and "80 kg" in basis and "Compendium" in basis
    assert "no body weight" in calories_basis(0)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ({date(2026, 11, 20), date(2026, 11, 19), date(2026, 11, 18)}, 3),
        # Nothing yet today: the streak still stands up to yesterday.
        ({date(2026, 11, 19), date(2026, 11, 18)}, 2),
        # A gap ends it.
        ({date(2026, 11, 20), date(2026, 11, 18), date(2026, 11, 17)}, 1),
        # Nothing today or yesterday: no streak.
        ({date(2026, 11, 18), date(2026, 11, 17)}, 0),
        (set(), 0),
    ],
)
def test_streak_days(days: set[date], expected: int) -> None:
    assert streak_days(days, date(2026, 11, 20)) == expected


@pytest.mark.parametrize(
    ("period", "today", "start"),
    [
        ("WEEK", date(2026, 11, 20), date(2026, 11, 16)),  # Friday -> Monday
        ("WEEK", date(2026, 11, 16), date(2026, 11, 16)),  # Monday itself
        ("WEEK", date(2026, 11, 22), date(2026, 11, 16)),  # Sunday ends the week
        ("MONTH", date(2026, 11, 20), date(2026, 11, 1)),
        ("YEAR", date(2026, 11, 20), date(2026, 1, 1)),
    ],
)
def test_period_start(period: str, today: date, start: date) -> None:
    assert period_start(period, today) == start


def test_weekly_sets_per_primary_muscle_group() -> None:
    primaries = {1: [10], 16: [20, 30]}  # bench: chest; squats: quadriceps and glutes
    rows = [
        (date(2026, 11, 16), 1, 3),  # Monday
        (date(2026, 11, 22), 1, 2),  # Sunday, same week
        (date(2026, 11, 23), 1, 1),  # next Monday: next week
        (date(2026, 11, 18), 16, 4),  # one set counts for each primary mover
        (date(2026, 11, 18), 99, 5),  # not in the catalog (any more): no muscle group
        (date(2026, 11, 18), 1, 0),  # a logged entry without sets counts nothing
    ]
    assert weekly_muscle_sets(rows, primaries) == {
        (date(2026, 11, 16), 10): 5,
        (date(2026, 11, 23), 10): 1,
        (date(2026, 11, 16), 20): 4,
        (date(2026, 11, 16), 30): 4,
    }


def test_best_records_by_epley() -> None:
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 10), date(2026, 11, 20)
    records = best_records(
        [
            (1, 5, 100.0, d1),  # 116.67
            (1, 3, 105.0, d2),  # 115.5
            (1, 20, 90.0, d3),  # beyond 12 reps: no estimate
            (16, 1, 140.0, d2),  # a single: the load itself
            (16, 8, 0.0, d3),  # bodyweight: no estimate
            (17, 10, 100.0, d3),  # 133.33
            (17, 10, 100.0, d1),  # the same, earlier: that one set the record
        ]
    )
    assert set(records) == {1, 16, 17}
    assert records[1].estimated_1rm_kg == pytest.approx(100 * (1 + 5 / 30))
    assert (records[1].weight_kg, records[1].reps, records[1].day) == (100.0, 5, d1)
    assert records[16].estimated_1rm_kg == 140.0
    assert records[17].day == d1
