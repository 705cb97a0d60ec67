"""Pure rules behind the premium features: the meal split (coach.meals), the top-up and the
regeneration of a WOD (coach.wod_plans with the planner on the real catalog), when a served
WOD is topped up (fitrules.wod) and how far back free statistics reach (monolith stats)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fitco.history.v1 import history_pb2

from coach.meals import MEAL_SPLIT, meal_calculation, meal_split, shares_of
from coach.planner import PastEntry, plan_wod
from coach.wod_plans import as_done_yesterday, top_up_items, wod_item
from fitrules.wod import wants_top_up
from monolith.domain.stats import history_floor
from tests.unit.test_planner import EXERCISES, GROUPS, NOW, user

TODAY = NOW.date()


def test_the_meal_shares_are_data_adding_up_to_one() -> None:
    assert sum(m.share for m in MEAL_SPLIT) == pytest.approx(1.0)
    assert [m.name for m in MEAL_SPLIT] == ["breakfast", "lunch", "snack", "dinner"]
    calc = meal_calculation()
    assert "product rule" in calc.source and "ISSN" in calc.source
    assert calc.formula.startswith("breakfast 25%, lunch 35%")


@pytest.mark.parametrize("total", [0, 1, 7, 99, 1234, 2137, 3999])
def test_meal_shares_add_up_exactly_and_never_below_zero(total: int) -> None:
    parts = shares_of(total)
    assert sum(parts) == total and min(parts) >= 0


def test_meals_keep_the_days_proportions() -> None:
    """Carbohydrate near zero (a deep deficit) cannot make any meal negative."""
    meals = meal_split(1500, 180, 50, 3)
    assert [
        sum(getattr(m, f) for m in meals) for f in ("kcal", "protein_g", "fat_g", "carbs_g")
    ] == [
        1500,
        180,
        50,
        3,
    ]
    assert all(min(m.kcal, m.protein_g, m.fat_g, m.carbs_g) >= 0 for m in meals)
    lunch = next(m for m in meals if m.name == "lunch")
    assert (lunch.kcal, lunch.protein_g) == (525, 63)  # 35 % of each


def test_only_sized_wods_are_topped_up() -> None:
    assert (
        wants_top_up("training", 6, 9) and wants_top_up("", 6, 9) and wants_top_up("deload", 6, 9)
    )
    assert not wants_top_up("training", 9, 9) and not wants_top_up("training", 9, 6)
    assert not wants_top_up("recovery", 3, 9)  # sized by its minutes


def test_free_statistics_reach_the_last_four_weeks() -> None:
    today = date(2026, 11, 20)
    assert history_floor(today, 4) == date(2026, 10, 24)  # 28 days, today included
    assert history_floor(today, 1) == date(2026, 11, 14)
    assert history_floor(today, 0) == date.min  # unlimited


def _served(items: list[int]) -> history_pb2.ServedWod:
    return history_pb2.ServedWod(
        id=5,
        day=TODAY.isoformat(),
        kind="training",
        items=[history_pb2.WodItem(exercise_id=i, position=n) for n, i in enumerate(items)],
    )


def _yesterday(ids: list[int]) -> list[PastEntry]:
    at = NOW - timedelta(days=1)
    return [PastEntry(i, at, 3, 10, 0.0, 0, "logged") for i in ids]


def test_a_top_up_appends_what_the_full_size_plan_adds() -> None:
    me = user()
    history = _yesterday([1, 16])
    six = plan_wod(me, NOW, history, EXERCISES, GROUPS, size=6)
    nine = plan_wod(me, NOW, history, EXERCISES, GROUPS, size=9)
    served = _served([p.exercise_id for p in six.items])
    more = top_up_items(nine, served, 9)
    ids = [p.exercise_id for p in more]
    assert len(ids) == 3 and not set(ids) & {i.exercise_id for i in served.items}
    assert not set(ids) & {1, 16}  # never yesterday's
    assert top_up_items(nine, _served([p.exercise_id for p in nine.items]), 9) == []
    assert [wod_item(6 + n, p).position for n, p in enumerate(more)] == [6, 7, 8]


def test_a_regeneration_is_another_workout_never_yesterdays() -> None:
    me = user()
    history = _yesterday([1, 16])
    first = plan_wod(me, NOW, history, EXERCISES, GROUPS, size=9)
    served = _served([p.exercise_id for p in first.items])
    replaced = as_done_yesterday(served, TODAY, "")
    assert {e.performed_at.date() for e in replaced} == {TODAY - timedelta(days=1)}
    assert not any(e.is_work for e in replaced)  # weekly volume and progression ignore them
    again = plan_wod(me, NOW, history + replaced, EXERCISES, GROUPS, size=9)
    ids = {p.exercise_id for p in again.items}
    assert len(ids) == 9
    assert not ids & {i.exercise_id for i in served.items} and not ids & {1, 16}
