"""Energy and macronutrient targets: the published formulas and numbers (shared/domain-facts.md),
each beside its source, and pure functions that return every value WITH how it was computed
(a `Calculation`: the formula with the person's own numbers, and where it comes from).

Rounding: every shown number is rounded half up to a whole kcal or gram, and the next step
starts from the rounded number, so each formula reads true with the numbers the user sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

# -- sources ---------------------------------------------------------------------------------

MIFFLIN_ST_JEOR: Final = "Mifflin-St Jeor (Mifflin et al. 1990, Am J Clin Nutr 51:241)"
KATCH_MCARDLE: Final = "Katch-McArdle (McArdle, Katch & Katch, Exercise Physiology)"
ACTIVITY_SOURCE: Final = (
    "activity multipliers 1.2 / 1.375 / 1.55 / 1.725 / 1.9 (McArdle, Katch & Katch; "
    "shared/domain-facts.md)"
)
DEFICIT_SOURCE: Final = "AHA/ACC/TOS 2013 obesity guideline: a 500-750 kcal/day deficit"
SURPLUS_SOURCE: Final = "Iraki et al. 2019 (Sports 7:154): +10-20 % over maintenance"
FLOOR_SOURCE: Final = (
    "AHA/ACC/TOS 2013 / NHLBI: not below 1200 kcal/day (women) or 1500 (men) without "
    "medical supervision"
)
PROTEIN_SOURCE: Final = (
    "ISSN position stand, protein and exercise (Jäger et al. 2017): 1.4-2.0 g/kg/day"
)
PROTEIN_DEFICIT_SOURCE: Final = (
    "ISSN 2017 (Jäger et al.): above 2.0 g/kg/day in an energy deficit, where 2.3-3.1 g/kg "
    "of lean mass preserves muscle (Helms et al. 2014); 2.2 g/kg of body weight is that range "
    "at a typical 5-25 % body fat"
)
FAT_SOURCE: Final = "0.5-1.5 g/kg/day (ISSN guidance, shared/domain-facts.md)"
CARBS_SOURCE: Final = (
    "carbohydrate fills the rest, at 4/4/9 kcal per g of protein/carbohydrate/fat (Atwater)"
)
AGE_SOURCE: Final = "profile birth_year"
SESSIONS_SOURCE: Final = (
    "the user's ended sessions of the last 4 weeks (gross calories, Compendium 2011 METs)"
)

# -- numbers ---------------------------------------------------------------------------------

# Mifflin-St Jeor: 10·kg + 6.25·cm - 5·age + s, s = +5 men, -161 women.
MSJ_PER_KG: Final = 10.0
MSJ_PER_CM: Final = 6.25
MSJ_PER_YEAR: Final = -5.0
MSJ_SEX_CONSTANT: Final[MappingProxyType[str, float]] = MappingProxyType(
    {"male": 5.0, "female": -161.0}
)
# Katch-McArdle: 370 + 21.6·LBM, LBM = kg·(1 - bf%/100).
KATCH_CONSTANT: Final = 370.0
KATCH_PER_LBM_KG: Final = 21.6

ACTIVITY_FACTORS: Final[MappingProxyType[str, float]] = MappingProxyType(
    {"sedentary": 1.2, "light": 1.375, "moderate": 1.55, "active": 1.725, "very_active": 1.9}
)
DEFAULT_ACTIVITY: Final = "sedentary"  # the lowest: never overestimates what a person burns

WEIGHT_LOSS_DEFICIT_KCAL: Final = 500  # the low end of AHA/ACC/TOS's 500-750
MUSCLE_GAIN_SURPLUS: Final = 0.10  # the low end of Iraki's 10-20 %: less fat gained
SAFETY_FLOOR_KCAL: Final[MappingProxyType[str, int]] = MappingProxyType(
    {"female": 1200, "male": 1500}
)
MAINTENANCE_SOURCE: Final = "maintenance: energy balance at the TDEE"


@dataclass(frozen=True, slots=True)
class GoalEnergy:
    """A goal's change to the TDEE: kcal/day added (negative: a deficit) and/or a fraction of
    the TDEE added (a surplus)."""

    delta_kcal: int = 0
    surplus: float = 0.0
    source: str = MAINTENANCE_SOURCE


# The profile's goals (fitness_goal follows the user's primary goal).
GOAL_ENERGY: Final[MappingProxyType[str, GoalEnergy]] = MappingProxyType(
    {
        "weight_loss": GoalEnergy(delta_kcal=-WEIGHT_LOSS_DEFICIT_KCAL, source=DEFICIT_SOURCE),
        "muscle_gain": GoalEnergy(surplus=MUSCLE_GAIN_SURPLUS, source=SURPLUS_SOURCE),
        "strength": GoalEnergy(),
        "endurance": GoalEnergy(),
        "general_fitness": GoalEnergy(),
    }
)
DEFAULT_GOAL: Final = "general_fitness"

PROTEIN_G_PER_KG: Final = 1.6  # ISSN 1.4-2.0
PROTEIN_G_PER_KG_DEFICIT: Final = 2.2  # see PROTEIN_DEFICIT_SOURCE
FAT_G_PER_KG: Final = 0.8  # within 0.5-1.5
FAT_G_PER_KG_MIN: Final = 0.5  # how far fat may go down when energy is short
CARBS_G_PER_KG_MIN: Final = 3.0  # ISSN: ≥ 3-5 g/kg/day when training
KCAL_PER_G: Final[MappingProxyType[str, int]] = MappingProxyType(
    {"protein": 4, "carbohydrate": 4, "fat": 9}
)

SESSION_WINDOW_DAYS: Final = 28
DEFAULT_TRAINING_DAYS: Final = 3  # the preferences' default
DAYS_PER_WEEK: Final = 7


# Signs of the formulas people read, escaped so that the source stays ASCII.
TIMES: Final = "\u00d7"
MINUS: Final = "\u2212"


@dataclass(frozen=True, slots=True)
class Calculation:
    """One number and how it was computed."""

    quantity: str
    value: float
    formula: str
    source: str


def round_half_up(x: float) -> int:
    """Whole kcal or grams (Python's round() goes to even: 1780.5 would be 1780)."""
    return math.floor(x + 0.5)


def _n(x: float) -> str:
    """A number as people write it: 80, 72.5, 1.375."""
    return f"{x:g}" if abs(x) < 1e6 else f"{x:.0f}"


# -- energy ----------------------------------------------------------------------------------


def age(birth_year: int, today: date, zone_name: str) -> Calculation:
    """Whole years from the birth year alone (the birthday is not known: up to one year
    over), in the year of the user's own day."""
    years = today.year - birth_year
    where = zone_name or "UTC"
    return Calculation(
        "age",
        years,
        f"{today.year} {MINUS} {birth_year} = {years} y (current year in {where}; the birthday is "
        "not known, so this may be one year over)",
        AGE_SOURCE,
    )


def mifflin_st_jeor(sex: str, weight_kg: float, height_cm: float, age_years: int) -> Calculation:
    constant = MSJ_SEX_CONSTANT[sex]
    value = round_half_up(
        MSJ_PER_KG * weight_kg + MSJ_PER_CM * height_cm + MSJ_PER_YEAR * age_years + constant
    )
    sign = "+" if constant >= 0 else MINUS
    return Calculation(
        "bmr_kcal",
        value,
        f"{_n(MSJ_PER_KG)}{TIMES}{_n(weight_kg)} kg + {_n(MSJ_PER_CM)}{TIMES}{_n(height_cm)} cm "
        f"{MINUS} {_n(-MSJ_PER_YEAR)}{TIMES}{age_years} y {sign} {_n(abs(constant))} ({sex}) "
        f"= {value}",
        MIFFLIN_ST_JEOR,
    )


def lean_body_mass(weight_kg: float, body_fat_percent: float) -> Calculation:
    value = round(weight_kg * (1 - body_fat_percent / 100), 1)
    return Calculation(
        "lean_body_mass_kg",
        value,
        f"{_n(weight_kg)} kg {TIMES} (1 {MINUS} {_n(body_fat_percent)} % / 100) = {_n(value)} kg",
        KATCH_MCARDLE,
    )


def katch_mcardle(lean_mass_kg: float) -> Calculation:
    value = round_half_up(KATCH_CONSTANT + KATCH_PER_LBM_KG * lean_mass_kg)
    return Calculation(
        "bmr_kcal",
        value,
        f"{_n(KATCH_CONSTANT)} + {_n(KATCH_PER_LBM_KG)}{TIMES}{_n(lean_mass_kg)} kg lean mass "
        f"= {value}",
        KATCH_MCARDLE,
    )


def activity(level: str) -> tuple[str, Calculation, list[str]]:
    """The level used (the profile's, or sedentary when not set), its factor, notes."""
    notes: list[str] = []
    if level not in ACTIVITY_FACTORS:
        notes.append(
            f"no activity level in your profile: sedentary ({TIMES}1.2) assumed; set "
            "activity_level for a closer estimate"
        )
        level = DEFAULT_ACTIVITY
    factor = ACTIVITY_FACTORS[level]
    calc = Calculation("activity_factor", factor, f"{level} = {TIMES}{_n(factor)}", ACTIVITY_SOURCE)
    return level, calc, notes


def tdee(bmr_kcal: int, factor: float) -> Calculation:
    value = round_half_up(bmr_kcal * factor)
    return Calculation(
        "tdee_kcal",
        value,
        f"{bmr_kcal} kcal {TIMES} {_n(factor)} = {value}",
        f"BMR {TIMES} activity factor; {ACTIVITY_SOURCE}",
    )


def floor_kcal(sex: str) -> int:
    return SAFETY_FLOOR_KCAL[sex]


def energy_target(tdee_kcal: int, goal: str, sex: str) -> tuple[str, Calculation, list[str]]:
    """The goal used, the daily target (the goal's deficit or surplus, never below the safety
    floor), notes."""
    notes: list[str] = []
    if goal not in GOAL_ENERGY:
        notes.append("no primary goal set: the target keeps your weight (maintenance)")
        goal = DEFAULT_GOAL
    rule = GOAL_ENERGY[goal]
    source = rule.source
    if rule.surplus:
        raw = round_half_up(tdee_kcal * (1 + rule.surplus))
        formula = (
            f"{tdee_kcal} {TIMES} {_n(1 + rule.surplus)} (+{_n(rule.surplus * 100)} % surplus) "
            f"= {raw}"
        )
    elif rule.delta_kcal < 0:
        raw = tdee_kcal + rule.delta_kcal
        formula = f"{tdee_kcal} {MINUS} {-rule.delta_kcal} kcal deficit = {raw}"
    else:
        raw = tdee_kcal + rule.delta_kcal
        formula = f"{tdee_kcal} (maintenance for {goal}) = {raw}"
    floor = floor_kcal(sex)
    if raw < floor:
        formula += f"; raised to the {sex} safety floor {floor}"
        source += f"; {FLOOR_SOURCE}"
        notes.append(
            f"the target was raised to the safety floor of {floor} kcal/day ({sex}): eating "
            "less needs medical supervision"
        )
        raw = floor
    return goal, Calculation("target_kcal", raw, formula, source), notes


# -- macronutrients --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Macros:
    protein: Calculation
    fat: Calculation
    carbs: Calculation
    notes: tuple[str, ...]


def _grams_kcal(protein_g: int, fat_g: int) -> int:
    return protein_g * KCAL_PER_G["protein"] + fat_g * KCAL_PER_G["fat"]


def carbs_for(quantity: str, kcal: int, protein_g: int, fat_g: int) -> Calculation:
    """Carbohydrate grams that fill `kcal` after protein and fat (never below 0)."""
    kp, kf, kc = KCAL_PER_G["protein"], KCAL_PER_G["fat"], KCAL_PER_G["carbohydrate"]
    rest = kcal - _grams_kcal(protein_g, fat_g)
    value = max(0, math.floor(rest / kc))
    return Calculation(
        quantity,
        value,
        f"({kcal} {MINUS} {kp}{TIMES}{protein_g} g protein {MINUS} {kf}{TIMES}{fat_g} g fat) "
        f"/ {kc} = {value} g",
        CARBS_SOURCE,
    )


def macros(target_kcal: int, weight_kg: float, in_deficit: bool) -> Macros:
    """Protein by body weight (more in a deficit), fat by body weight, carbohydrate the rest.
    When protein and fat alone pass the target, fat goes down towards 0.5 g/kg, then protein
    to what fits: the energy target is the safety rule, the grams follow it."""
    notes: list[str] = []
    per_kg = PROTEIN_G_PER_KG_DEFICIT if in_deficit else PROTEIN_G_PER_KG
    protein_g = round_half_up(per_kg * weight_kg)
    p_formula = f"{_n(per_kg)} g/kg {TIMES} {_n(weight_kg)} kg = {protein_g} g"
    p_source = PROTEIN_DEFICIT_SOURCE if in_deficit else PROTEIN_SOURCE
    fat_g = round_half_up(FAT_G_PER_KG * weight_kg)
    f_formula = f"{_n(FAT_G_PER_KG)} g/kg {TIMES} {_n(weight_kg)} kg = {fat_g} g"
    kp, kf = KCAL_PER_G["protein"], KCAL_PER_G["fat"]
    if _grams_kcal(protein_g, fat_g) > target_kcal:
        least_fat = round_half_up(FAT_G_PER_KG_MIN * weight_kg)
        fat_g = max(least_fat, math.floor((target_kcal - protein_g * kp) / kf))
        f_formula += f"; lowered to {fat_g} g (≥ {_n(FAT_G_PER_KG_MIN)} g/kg) to fit {target_kcal}"
        notes.append("fat was lowered so that protein and fat fit the energy target")
        if _grams_kcal(protein_g, fat_g) > target_kcal:
            protein_g = max(0, math.floor((target_kcal - fat_g * kf) / kp))
            p_formula += f"; lowered to {protein_g} g to fit {target_kcal} kcal"
            notes.append("protein was lowered to fit the energy target")
    carbs = carbs_for("carbs_g", target_kcal, protein_g, fat_g)
    if carbs.value < CARBS_G_PER_KG_MIN * weight_kg:
        notes.append(
            f"carbohydrate is below {_n(CARBS_G_PER_KG_MIN)} g/kg/day, the least ISSN advises "
            "when training: expect lower performance in hard sessions"
        )
    return Macros(
        Calculation("protein_g", protein_g, p_formula, p_source),
        Calculation("fat_g", fat_g, f_formula, FAT_SOURCE),
        carbs,
        tuple(notes),
    )


# -- training days and rest days -------------------------------------------------------------


def session_average(calories: int, sessions: int) -> Calculation:
    value = round_half_up(calories / sessions) if sessions > 0 else 0
    formula = (
        f"{calories} kcal / {sessions} sessions = {value}"
        if sessions > 0
        else "no ended session in the last 4 weeks = 0"
    )
    return Calculation("session_kcal", value, formula, SESSIONS_SOURCE)


def day_energy(
    target_kcal: int, session_kcal: int, training_days: int, floor: int
) -> tuple[Calculation, Calculation, list[str]]:
    """Rest-day and training-day kcal: a training day adds the average session, rest days give
    the week's sessions back so the week averages the target; a rest day never goes below the
    safety floor (then the week averages a little more)."""
    notes: list[str] = []
    given_back = training_days * session_kcal / DAYS_PER_WEEK
    rest = round_half_up(target_kcal - given_back)
    formula = (
        f"{target_kcal} {MINUS} {training_days}{TIMES}{session_kcal} / {DAYS_PER_WEEK} = {rest}"
    )
    if rest < floor:
        rest = floor
        formula += f"; raised to the safety floor {floor}"
        notes.append(
            f"rest days were raised to the safety floor of {floor} kcal/day, so the week "
            "averages more than the target"
        )
    training = rest + session_kcal
    return (
        Calculation("rest_day.kcal", rest, formula, "the week averages target_kcal"),
        Calculation(
            "training_day.kcal",
            training,
            f"{rest} + {session_kcal} (average session) = {training}",
            SESSIONS_SOURCE,
        ),
        notes,
    )
