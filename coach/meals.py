"""The meal split of a nutrition plan (premium): the day's targets shared among meals. Pure data
and arithmetic, no I/O; the servicer decides who gets it (fitcore.entitlements).

The shares are a product rule of ours, not a published norm: three meals and an afternoon snack,
the largest at midday. What the literature does say is kept: protein is eaten at every meal
rather than in one sitting (ISSN position stand on protein and exercise, Jäger et al. 2017:
spread over the day, every 3-4 hours). Every meal gets the same share of protein, fat and
carbohydrate as of energy, so a meal never needs a negative amount of anything whatever the
day's macros; the rounding remainder goes to the largest meal, so the meals add up to the daily
targets exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fitrules.nutrition import Calculation, round_half_up


@dataclass(frozen=True, slots=True)
class MealShare:
    name: str
    share: float  # of every daily target


# In the order they are eaten; the shares add up to 1.
MEAL_SPLIT: Final = (
    MealShare("breakfast", 0.25),
    MealShare("lunch", 0.35),
    MealShare("snack", 0.10),
    MealShare("dinner", 0.30),
)
MEAL_SPLIT_SOURCE: Final = (
    "product rule (fitco): breakfast 25 %, lunch 35 %, snack 10 %, dinner 30 % of every daily "
    "target; protein at every meal (ISSN 2017, Jäger et al.: spread over the day every 3-4 h)"
)
# What the free plan leaves out of a nutrition plan, said in its notes.
FREE_PLAN_NOTE: Final = "premium: meal split and training/rest-day targets"


@dataclass(frozen=True, slots=True)
class Meal:
    name: str
    share: float
    kcal: int
    protein_g: int
    fat_g: int
    carbs_g: int


def shares_of(total: int, split: tuple[MealShare, ...] = MEAL_SPLIT) -> list[int]:
    """`total` in whole units per meal, adding up to `total` exactly (the remainder of the
    rounding goes to the meal with the largest share)."""
    parts = [round_half_up(total * m.share) for m in split]
    largest = max(range(len(split)), key=lambda n: split[n].share)
    parts[largest] += total - sum(parts)
    return parts


def meal_split(
    kcal: int, protein_g: int, fat_g: int, carbs_g: int, split: tuple[MealShare, ...] = MEAL_SPLIT
) -> list[Meal]:
    """The day's targets as meals."""
    columns = [shares_of(total, split) for total in (kcal, protein_g, fat_g, carbs_g)]
    return [Meal(m.name, m.share, *(column[n] for column in columns)) for n, m in enumerate(split)]


def meal_calculation(split: tuple[MealShare, ...] = MEAL_SPLIT) -> Calculation:
    """How the meals were computed, for the plan's `calculations`."""
    formula = ", ".join(f"{m.name} {m.share:.0%}" for m in split) + " of each daily target"
    return Calculation("meals", len(split), formula, MEAL_SPLIT_SOURCE)
