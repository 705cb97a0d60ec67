"""The maths of goal progress: percent of the way, the least-squares trend, the projection and
when a goal is on track. Each test fails when the rule it names is removed."""

from __future__ import annotations

from datetime import date

import pytest

from monolith.domain import goal_progress as gp
from monolith.domain.goal_checks import years_after

TODAY = date(2026, 11, 20)
LOSS = gp.KINDS["weight_loss"]
GAIN = gp.KINDS["muscle_gain"]
STRENGTH = gp.KINDS["strength"]


def test_kinds_directions_units_and_ranges() -> None:
    assert set(gp.KINDS) == {"weight_loss", "muscle_gain", "strength", "endurance"}
    assert (LOSS.direction, GAIN.direction) == (gp.DOWN, gp.UP)
    assert STRENGTH.direction == gp.UP and gp.KINDS["endurance"].direction == gp.UP
    assert (LOSS.low, LOSS.high, LOSS.unit) == (20, 400, "kg")
    assert (STRENGTH.low, STRENGTH.high) == (1, 1000)
    assert (gp.KINDS["endurance"].high, gp.KINDS["endurance"].unit) == (7 * 24 * 60, "min/week")


@pytest.mark.parametrize(
    ("current", "target", "direction", "expected"),
    [
        (75.0, 75.0, gp.DOWN, True),  # reaching the target counts
        (74.0, 75.0, gp.DOWN, True),
        (76.0, 75.0, gp.DOWN, False),
        (100.0, 100.0, gp.UP, True),
        (99.9, 100.0, gp.UP, False),
    ],
)
def test_reached_in_the_goals_direction(
    current: float, target: float, direction: int, expected: bool
) -> None:
    assert gp.reached(current, target, direction) is expected


def test_percent_of_the_way_from_start_to_target() -> None:
    assert gp.percent_done(80, 78, 75, gp.DOWN) == pytest.approx(40.0)
    assert gp.percent_done(100, 110, 120, gp.UP) == pytest.approx(50.0)
    assert gp.percent_done(0, 30, 120, gp.UP) == pytest.approx(25.0)  # strength from nothing


def test_percent_is_clamped_to_0_100() -> None:
    assert gp.percent_done(80, 82, 75, gp.DOWN) == 0.0  # moved away from the target
    assert gp.percent_done(80, 70, 75, gp.DOWN) == 100.0  # went past it
    assert gp.percent_done(100, 90, 120, gp.UP) == 0.0


def test_percent_when_start_equals_target() -> None:
    assert gp.percent_done(80, 80, 80, gp.DOWN) == 100.0
    assert gp.percent_done(80, 81, 80, gp.DOWN) == 0.0


def test_least_squares_line() -> None:
    line = gp.fit_line([(0, 1), (1, 3), (2, 5)])
    assert line is not None
    assert line == pytest.approx((1.0, 2.0))
    # Noisy points: the least-squares fit, not the line through the first and last point.
    line = gp.fit_line([(0, 0), (1, 2), (2, 1), (3, 3)])
    assert line is not None
    assert line[1] == pytest.approx(0.8) and line[0] == pytest.approx(0.3)


def test_no_line_without_spread_in_x() -> None:
    assert gp.fit_line([(1, 1)]) is None
    assert gp.fit_line([(2, 1), (2, 5), (2, 9)]) is None


def test_projection_from_a_falling_weight() -> None:
    # -0.5 kg a day from 80 kg three days ago: 78.5 today (x = 0), 75 after 7 more days.
    points = [(-3.0, 80.0), (-2.0, 79.5), (-1.0, 79.0), (0.0, 78.5)]
    assert gp.days_to_target(points, 75.0, gp.DOWN) == pytest.approx(7.0)
    assert gp.projected_date(points, 75.0, gp.DOWN, TODAY) == date(2026, 11, 27)


def test_projected_day_is_the_day_the_line_gets_there() -> None:
    points = [(-2.0, 100.0), (-1.0, 101.0), (0.0, 102.0)]
    # 102 + 1 a day reaches 104.5 after 2.5 days: during the day after tomorrow.
    assert gp.projected_date(points, 104.5, gp.UP, TODAY) == date(2026, 11, 22)


def test_no_projection_with_fewer_than_three_points() -> None:
    assert gp.MIN_TREND_POINTS == 3
    two = [(-1.0, 80.0), (0.0, 79.0)]
    assert gp.projected_date(two, 75.0, gp.DOWN, TODAY) is None
    assert gp.projected_date([*two, (0.5, 78.5)], 75.0, gp.DOWN, TODAY) is not None


def test_no_projection_when_the_trend_goes_the_wrong_way_or_is_flat() -> None:
    rising = [(-2.0, 78.0), (-1.0, 79.0), (0.0, 80.0)]
    assert gp.projected_date(rising, 75.0, gp.DOWN, TODAY) is None
    assert gp.projected_date(rising, 85.0, gp.UP, TODAY) is not None
    flat = [(-2.0, 80.0), (-1.0, 80.0), (0.0, 80.0)]
    assert gp.projected_date(flat, 75.0, gp.DOWN, TODAY) is None


def test_no_projection_beyond_the_horizon() -> None:
    slow = [(-2.0, 80.0), (-1.0, 79.999), (0.0, 79.998)]  # 1 g a day: 5 kg in ~13.7 years
    assert gp.days_to_target(slow, 75.0, gp.DOWN) is None
    assert gp.days_to_target(slow, 79.0, gp.DOWN) == pytest.approx(998.0)


def test_a_line_already_past_the_target_projects_today() -> None:
    # The fitted line crossed 79 yesterday although the last value has not: today, not the past.
    points = [(-3.0, 82.0), (-2.0, 79.0), (-1.0, 78.0), (0.0, 79.5)]
    assert gp.projected_date(points, 79.0, gp.DOWN, TODAY) == TODAY


def test_active_goal_on_track_when_projected_by_the_target_date() -> None:
    points = [(-3.0, 80.0), (-2.0, 79.5), (-1.0, 79.0), (0.0, 78.5)]  # 75 on 2026-11-27
    on_time = gp.progress(LOSS, gp.ACTIVE, 80, 78.5, 75, points, TODAY, date(2026, 11, 27))
    assert on_time == gp.Progress(pytest.approx(30.0), True, date(2026, 11, 27))  # type: ignore[arg-type]
    late = gp.progress(LOSS, gp.ACTIVE, 80, 78.5, 75, points, TODAY, date(2026, 11, 26))
    assert (late.on_track, late.projected_date) == (False, date(2026, 11, 27))


def test_without_projection_not_on_track() -> None:
    p = gp.progress(LOSS, gp.ACTIVE, 80, 79, 75, [(0.0, 79.0)], TODAY, date(2027, 6, 1))
    assert (p.on_track, p.projected_date) == (False, None)
    assert p.percent == pytest.approx(20.0)


def test_achieved_goal_is_done_and_on_track() -> None:
    p = gp.progress(LOSS, gp.ACHIEVED, 80, 76, 75, [], TODAY, date(2027, 1, 1))
    assert p == gp.Progress(100.0, True, None)


def test_closed_goals_show_how_far_they_got_without_projection() -> None:
    points = [(-2.0, 80.0), (-1.0, 79.0), (0.0, 78.0)]
    for status in (gp.ABANDONED, gp.EXPIRED):
        p = gp.progress(LOSS, status, 80, 78, 75, points, TODAY, date(2027, 1, 1))
        assert p == gp.Progress(pytest.approx(40.0), False, None)  # type: ignore[arg-type]


def test_target_dates_years_ahead() -> None:
    assert years_after(date(2026, 11, 20), 5) == date(2031, 11, 20)
    assert years_after(date(2028, 2, 29), 5) == date(2033, 2, 28)
