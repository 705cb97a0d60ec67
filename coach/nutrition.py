"""A nutrition plan from what the monolith knows of a user: plain inputs in, a plain plan out,
every number with its `Calculation` (the formulas and numbers: fitrules.nutrition). No I/O.

Required inputs are age (from the birth year), sex, weight and height: without one of them
there is no plan (ProfileIncomplete, naming the missing profile fields), never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from fitcore.errors import FailedPrecondition
from fitrules import nutrition as rules
from fitrules.nutrition import Calculation

# Why each profile field is needed, for the error's PreconditionFailure violations.
REQUIRED_FIELDS: dict[str, str] = {
    "birth_year": "the year of birth gives the age the BMR formula needs",
    "sex": "the BMR formula and the safety floor differ for men and women",
    "weight": "body weight (the latest body metric, else the profile's) sizes every target",
    "height": "height is part of the BMR formula",
}


class ProfileIncomplete(FailedPrecondition):
    """FAILED_PRECONDITION naming the missing fields: in the message, and as a
    google.rpc.PreconditionFailure with one violation per field (subject = the field)."""

    reason = "PROFILE_INCOMPLETE"

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "a nutrition plan needs your age, sex, weight and height; missing from your "
            f"profile: {', '.join(self.missing)}"
        )

    def details(self) -> list[any_pb2.Any]:
        failure = any_pb2.Any()
        failure.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type="PROFILE_INCOMPLETE", subject=name, description=REQUIRED_FIELDS[name]
                    )
                    for name in self.missing
                ]
            )
        )
        return [failure, *super().details()]


@dataclass(frozen=True, slots=True)
class PastSession:
    started_at: datetime
    ended: bool
    calories: int


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """Ended sessions of the window: how many and their calories; `truncated` when more
    existed than were read."""

    sessions: int
    calories: int
    truncated: bool = False


def summarise_sessions(
    sessions: Iterable[PastSession], now: datetime, *, more_pages: bool = False
) -> SessionSummary:
    """The ended sessions started in the last 4 weeks (sessions newest first; `more_pages`
    when the list was cut and its oldest is still in the window)."""
    since = now - timedelta(days=rules.SESSION_WINDOW_DAYS)
    listed = list(sessions)
    recent = [s for s in listed if s.ended and s.started_at >= since]
    truncated = more_pages and bool(listed) and listed[-1].started_at >= since
    return SessionSummary(len(recent), sum(s.calories for s in recent), truncated)


@dataclass(frozen=True, slots=True)
class Inputs:
    today: date  # the user's own day (in time_zone)
    time_zone: str
    birth_year: int  # 0 = unknown
    sex: str  # "male", "female", "" = unknown
    height_cm: float  # 0 = unknown
    profile_weight_kg: float  # 0 = unknown
    activity_level: str
    goal: str
    metric_weight_kg: float = 0.0  # the latest body metric (0 = none)
    metric_body_fat_percent: float = 0.0
    metric_day: str = ""
    training_days_per_week: int = 0  # 0 = not set
    sessions: SessionSummary | None = None  # None: session statistics not available


@dataclass(frozen=True, slots=True)
class Day:
    kcal: int
    protein_g: int
    fat_g: int
    carbs_g: int


@dataclass(frozen=True, slots=True)
class Plan:
    bmr_kcal: int
    bmr_formula: str
    activity_level: str
    activity_factor: float
    tdee_kcal: int
    goal: str
    target_kcal: int
    protein_g: int
    fat_g: int
    carbs_g: int
    training_day: Day
    rest_day: Day
    session_kcal: int
    training_days_per_week: int
    weight_kg: float
    age: int
    calculations: list[Calculation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def missing_fields(i: Inputs) -> list[str]:
    out = []
    if i.birth_year <= 0 or i.birth_year >= i.today.year:
        out.append("birth_year")
    if i.sex not in rules.MSJ_SEX_CONSTANT:
        out.append("sex")
    if i.metric_weight_kg <= 0 and i.profile_weight_kg <= 0:
        out.append("weight")
    if i.height_cm <= 0:
        out.append("height")
    return out


def _weight(i: Inputs) -> Calculation:
    if i.metric_weight_kg > 0:
        origin = f"latest body metric ({i.metric_day})" if i.metric_day else "latest body metric"
        return Calculation("weight_kg", i.metric_weight_kg, f"{i.metric_weight_kg:g} kg", origin)
    return Calculation("weight_kg", i.profile_weight_kg, f"{i.profile_weight_kg:g} kg", "profile")


def _bmr(i: Inputs, weight_kg: float, age: int) -> tuple[str, list[Calculation]]:
    if i.metric_weight_kg > 0 and i.metric_body_fat_percent > 0:
        lbm = rules.lean_body_mass(i.metric_weight_kg, i.metric_body_fat_percent)
        return "katch_mcardle", [lbm, rules.katch_mcardle(lbm.value)]
    return "mifflin_st_jeor", [rules.mifflin_st_jeor(i.sex, weight_kg, i.height_cm, age)]


def _training_days(i: Inputs, notes: list[str]) -> Calculation:
    if 1 <= i.training_days_per_week <= rules.DAYS_PER_WEEK:
        days, origin = i.training_days_per_week, "preferences"
    else:
        days, origin = rules.DEFAULT_TRAINING_DAYS, "default"
        notes.append(f"training days per week not set: {days} assumed")
    return Calculation("training_days_per_week", days, f"{days} days/week", origin)


def _sessions(i: Inputs, notes: list[str]) -> Calculation:
    s = i.sessions
    if s is None:
        notes.append(
            "session statistics are not available: training days and rest days get the same target"
        )
        return Calculation("session_kcal", 0, "no session data = 0", rules.SESSIONS_SOURCE)
    if s.sessions == 0:
        notes.append(
            "no ended session in the last 4 weeks: training days and rest days get the same target"
        )
    elif s.truncated:
        notes.append(f"session_kcal averages your latest {s.sessions} sessions only")
    return rules.session_average(s.calories, s.sessions)


def _day(quantity: str, kcal: int, protein_g: int, fat_g: int) -> tuple[Day, list[Calculation]]:
    """A day's targets: protein and fat are the same every day, carbohydrate takes the
    difference in energy."""
    same = "protein and fat are the same every day; carbohydrate takes the difference"
    carbs = rules.carbs_for(f"{quantity}.carbs_g", kcal, protein_g, fat_g)
    return Day(kcal, protein_g, fat_g, int(carbs.value)), [
        Calculation(f"{quantity}.protein_g", protein_g, f"= protein_g = {protein_g} g", same),
        Calculation(f"{quantity}.fat_g", fat_g, f"= fat_g = {fat_g} g", same),
        carbs,
    ]


def plan(i: Inputs) -> Plan:
    """The plan, or ProfileIncomplete when a required input is missing."""
    missing = missing_fields(i)
    if missing:
        raise ProfileIncomplete(missing)
    notes: list[str] = []
    age = rules.age(i.birth_year, i.today, i.time_zone)
    years = int(age.value)
    if years < 18:
        notes.append("these formulas were validated in adults: ask a professional under 18")
    weight = _weight(i)
    bmr_formula, bmr_calcs = _bmr(i, weight.value, years)
    bmr = int(bmr_calcs[-1].value)
    level, factor, level_notes = rules.activity(i.activity_level)
    tdee = rules.tdee(bmr, factor.value)
    goal, target, target_notes = rules.energy_target(int(tdee.value), i.goal, i.sex)
    kcal = int(target.value)
    m = rules.macros(kcal, weight.value, in_deficit=kcal < tdee.value)
    protein_g, fat_g = int(m.protein.value), int(m.fat.value)
    days = _training_days(i, notes)
    session = _sessions(i, notes)
    rest_kcal, training_kcal, day_notes = rules.day_energy(
        kcal, int(session.value), int(days.value), rules.floor_kcal(i.sex)
    )
    training_day, training_calcs = _day("training_day", int(training_kcal.value), protein_g, fat_g)
    rest_day, rest_calcs = _day("rest_day", int(rest_kcal.value), protein_g, fat_g)
    return Plan(
        bmr_kcal=bmr,
        bmr_formula=bmr_formula,
        activity_level=level,
        activity_factor=factor.value,
        tdee_kcal=int(tdee.value),
        goal=goal,
        target_kcal=kcal,
        protein_g=protein_g,
        fat_g=fat_g,
        carbs_g=int(m.carbs.value),
        training_day=training_day,
        rest_day=rest_day,
        session_kcal=int(session.value),
        training_days_per_week=int(days.value),
        weight_kg=weight.value,
        age=years,
        calculations=[
            age,
            weight,
            *bmr_calcs,
            factor,
            tdee,
            target,
            m.protein,
            m.fat,
            m.carbs,
            session,
            days,
            training_kcal,
            *training_calcs,
            rest_kcal,
            *rest_calcs,
        ],
        notes=[*level_notes, *target_notes, *m.notes, *notes, *day_notes],
    )
