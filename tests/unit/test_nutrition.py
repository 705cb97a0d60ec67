"""The nutrition rules (fitrules.nutrition) and the plan built from them (coach.nutrition): each
formula, factor, floor and default has a test that fails when it is removed or changed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from google.rpc import error_details_pb2

from coach.nutrition import (
    Inputs,
    PastSession,
    Plan,
    ProfileIncomplete,
    SessionSummary,
    plan,
    summarise_sessions,
)
from fitrules import nutrition as rules
from monolith.domain.profiles import ACTIVITY_LEVELS, GOALS

TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
MAN = Inputs(
    today=TODAY,
    time_zone="",
    birth_year=TODAY.year - 30,
    sex="male",
    height_cm=180,
    profile_weight_kg=80,
    activity_level="",
    goal="strength",
    training_days_per_week=3,
    sessions=SessionSummary(0, 0),
)


def _calc(p: Plan, quantity: str) -> rules.Calculation:
    return next(c for c in p.calculations if c.quantity == quantity)


def typeset(formula: str) -> str:
    """An ASCII formula as the plan writes it (TIMES for "*", MINUS for " - ")."""
    return formula.replace("*", rules.TIMES).replace(" - ", f" {rules.MINUS} ")


# -- formulas --------------------------------------------------------------------------------


def test_mifflin_st_jeor_man_80_kg_180_cm_30_years_is_1780() -> None:
    calc = rules.mifflin_st_jeor("male", 80, 180, 30)
    assert calc.value == 1780
    assert calc.formula == typeset("10*80 kg + 6.25*180 cm - 5*30 y + 5 (male) = 1780")
    assert "Mifflin" in calc.source


def test_mifflin_st_jeor_woman_subtracts_161() -> None:
    # 10*60 + 6.25*165 - 5*40 - 161 = 1270.25
    calc = rules.mifflin_st_jeor("female", 60, 165, 40)
    assert calc.value == 1270 and typeset(" - 161 (female)") in calc.formula


def test_katch_mcardle_from_lean_body_mass() -> None:
    lbm = rules.lean_body_mass(80, 20)
    assert lbm.value == 64.0
    bmr = rules.katch_mcardle(lbm.value)
    assert bmr.value == round(370 + 21.6 * 64) == 1752
    assert "Katch" in bmr.source and typeset("370 + 21.6*64 kg") in bmr.formula


@pytest.mark.parametrize(
    ("level", "factor"),
    [("sedentary", 1.2), ("light", 1.375), ("moderate", 1.55), ("active", 1.725),
     ("very_active", 1.9)],
)  # fmt: skip
def test_activity_factors(level: str, factor: float) -> None:
    used, calc, notes = rules.activity(level)
    assert (used, calc.value, notes) == (level, factor, [])
    assert rules.tdee(1780, factor).value == rules.round_half_up(1780 * factor)


def test_activity_levels_and_goals_are_the_profiles() -> None:
    assert tuple(rules.ACTIVITY_FACTORS) == ACTIVITY_LEVELS
    assert set(rules.GOAL_ENERGY) == set(GOALS)


def test_no_activity_level_is_sedentary_with_a_note() -> None:
    used, calc, notes = rules.activity("")
    assert (used, calc.value) == ("sedentary", 1.2)
    assert len(notes) == 1 and "sedentary" in notes[0]


def test_weight_loss_is_a_500_kcal_deficit() -> None:
    goal, calc, notes = rules.energy_target(2500, "weight_loss", "male")
    assert (goal, calc.value, notes) == ("weight_loss", 2000, [])
    assert "AHA/ACC/TOS" in calc.source


def test_muscle_gain_is_a_10_percent_surplus() -> None:
    goal, calc, _ = rules.energy_target(2500, "muscle_gain", "female")
    assert (goal, calc.value) == ("muscle_gain", 2750)
    assert "Iraki" in calc.source


@pytest.mark.parametrize("goal", ["strength", "endurance", "general_fitness"])
def test_other_goals_keep_maintenance(goal: str) -> None:
    assert rules.energy_target(2345, goal, "male")[1].value == 2345


def test_no_goal_is_maintenance_with_a_note() -> None:
    goal, calc, notes = rules.energy_target(2345, "", "male")
    assert (goal, calc.value) == ("general_fitness", 2345) and len(notes) == 1


@pytest.mark.parametrize(("sex", "floor"), [("female", 1200), ("male", 1500)])
def test_safety_floors(sex: str, floor: int) -> None:
    _, calc, notes = rules.energy_target(floor + 100, "weight_loss", sex)
    assert calc.value == floor
    assert "safety floor" in calc.formula and len(notes) == 1 and str(floor) in notes[0]
    # Just above it: the plain deficit, no note.
    _, calc, notes = rules.energy_target(floor + 600, "weight_loss", sex)
    assert (calc.value, notes) == (floor + 100, [])


def test_protein_fat_and_carbs_by_body_weight() -> None:
    m = rules.macros(2500, 80, in_deficit=False)
    assert (m.protein.value, m.fat.value) == (128, 64)  # 1.6 and 0.8 g/kg
    assert m.carbs.value == (2500 - 4 * 128 - 9 * 64) // 4 == 353
    assert "ISSN" in m.protein.source and m.notes == ()


def test_more_protein_in_a_deficit() -> None:
    m = rules.macros(2000, 80, in_deficit=True)
    assert m.protein.value == 176  # 2.2 g/kg
    assert "2.3-3.1" in m.protein.source and "ISSN" in m.protein.source


def test_low_carbohydrate_is_noted() -> None:
    # 60 kg at 1500 kcal, deficit: 132 g protein, 48 g fat → 135 g carbs < 3 g/kg (180 g).
    m = rules.macros(1500, 60, in_deficit=True)
    assert m.carbs.value == 135
    assert any("carbohydrate is below 3 g/kg" in n for n in m.notes)


def test_protein_and_fat_never_pass_the_energy_target() -> None:
    m = rules.macros(1500, 160, in_deficit=True)  # 352 g protein alone = 1408 kcal
    p, f, c = int(m.protein.value), int(m.fat.value), int(m.carbs.value)
    assert f == 80 and c == 0  # fat down to 0.5 g/kg
    assert 4 * p + 9 * f <= 1500 and p == (1500 - 9 * 80) // 4
    assert len(m.notes) >= 2


def test_energy_per_gram() -> None:
    assert dict(rules.KCAL_PER_G) == {"protein": 4, "carbohydrate": 4, "fat": 9}
    assert rules.carbs_for("carbs_g", 1000, 50, 20).value == (1000 - 200 - 180) // 4


def test_age_from_the_birth_year_in_the_users_year() -> None:
    calc = rules.age(1996, TODAY, "Europe/Paris")
    assert (
        calc.value == 30
        and "Europe/Paris" in calc.formula
        and typeset("2026 - 1996") in calc.formula
    )


def test_session_average() -> None:
    assert rules.session_average(900, 3).value == 300
    assert rules.session_average(0, 0).value == 0


def test_training_days_add_the_session_and_rest_days_give_it_back() -> None:
    rest, training, notes = rules.day_energy(2100, 350, 3, 1500)
    assert (rest.value, training.value, notes) == (1950, 2300, [])
    assert (3 * training.value + 4 * rest.value) / 7 == 2100  # the week averages the target


def test_rest_days_never_below_the_floor() -> None:
    rest, training, notes = rules.day_energy(1500, 400, 5, 1500)
    assert (rest.value, training.value) == (1500, 1900) and len(notes) == 1


def test_rounding_is_half_up() -> None:
    assert rules.round_half_up(1780.5) == 1781 and rules.round_half_up(1780.49) == 1780


# -- the plan --------------------------------------------------------------------------------


def test_plan_for_a_30_year_old_man_of_80_kg_and_180_cm() -> None:
    p = plan(MAN)
    assert (p.bmr_kcal, p.bmr_formula, p.age, p.weight_kg) == (1780, "mifflin_st_jeor", 30, 80)
    assert (p.activity_level, p.activity_factor, p.tdee_kcal) == ("sedentary", 1.2, 2136)
    assert (p.goal, p.target_kcal) == ("strength", 2136)
    assert (p.protein_g, p.fat_g, p.carbs_g) == (128, 64, (2136 - 512 - 576) // 4)
    assert p.training_day == p.rest_day and p.session_kcal == 0
    quantities = {c.quantity for c in p.calculations}
    assert {
        "age", "weight_kg", "bmr_kcal", "activity_factor", "tdee_kcal", "target_kcal",
        "protein_g", "fat_g", "carbs_g", "session_kcal", "training_days_per_week",
        "training_day.kcal", "training_day.carbs_g", "rest_day.kcal", "rest_day.carbs_g",
    } <= quantities  # fmt: skip
    for c in p.calculations:
        assert c.formula and c.source, c
    assert any("sedentary" in n for n in p.notes)
    assert any("no ended session" in n for n in p.notes)


def test_a_body_fat_measurement_switches_to_katch_mcardle() -> None:
    p = plan(replace(MAN, metric_weight_kg=82, metric_body_fat_percent=15, metric_day="2026-11-19"))
    assert p.bmr_formula == "katch_mcardle" and p.weight_kg == 82
    assert p.bmr_kcal == rules.round_half_up(370 + 21.6 * 69.7)
    assert _calc(p, "weight_kg").source == "latest body metric (2026-11-19)"
    assert _calc(p, "lean_body_mass_kg").value == 69.7
    # A metric without body fat: its weight, Mifflin-St Jeor.
    p = plan(replace(MAN, metric_weight_kg=82))
    assert (p.bmr_formula, p.bmr_kcal) == ("mifflin_st_jeor", 1800)


def test_weight_loss_plan_has_a_deficit_more_protein_and_training_days() -> None:
    i = replace(
        MAN,
        goal="weight_loss",
        activity_level="moderate",
        training_days_per_week=4,
        sessions=SessionSummary(sessions=4, calories=1400),
    )
    p = plan(i)
    assert p.tdee_kcal == rules.round_half_up(1780 * 1.55) == 2759
    assert p.target_kcal == 2259 and p.protein_g == 176
    assert p.session_kcal == 350
    assert p.rest_day.kcal == 2259 - 200 and p.training_day.kcal == 2059 + 350
    assert (4 * p.training_day.kcal + 3 * p.rest_day.kcal) / 7 == p.target_kcal
    for day in (p.training_day, p.rest_day):
        assert (day.protein_g, day.fat_g) == (p.protein_g, p.fat_g)
        assert day.carbs_g == (day.kcal - 4 * day.protein_g - 9 * day.fat_g) // 4


def test_no_session_data_and_no_training_days_are_noted() -> None:
    p = plan(replace(MAN, sessions=None, training_days_per_week=0))
    assert p.session_kcal == 0 and p.training_days_per_week == 3
    assert any("not available" in n for n in p.notes)
    assert any("3 assumed" in n for n in p.notes)


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"birth_year": 0}, ["birth_year"]),
        ({"birth_year": TODAY.year + 1}, ["birth_year"]),
        ({"sex": ""}, ["sex"]),
        ({"profile_weight_kg": 0}, ["weight"]),
        ({"height_cm": 0}, ["height"]),
        (
            {"birth_year": 0, "sex": "", "profile_weight_kg": 0, "height_cm": 0},
            ["birth_year", "sex", "weight", "height"],
        ),
    ],
)
def test_missing_inputs_are_named_never_guessed(
    changes: dict[str, object], missing: list[str]
) -> None:
    with pytest.raises(ProfileIncomplete) as info:
        plan(replace(MAN, **changes))  # type: ignore[arg-type]
    err = info.value
    assert err.missing == missing and err.reason == "PROFILE_INCOMPLETE"
    for name in missing:
        assert name in err.message
    failure = error_details_pb2.PreconditionFailure()
    assert err.details()[0].Unpack(failure)
    assert [v.subject for v in failure.violations] == missing


def test_a_body_metric_weight_stands_in_for_the_profiles() -> None:
    assert plan(replace(MAN, profile_weight_kg=0, metric_weight_kg=80)).bmr_kcal == 1780


def test_sessions_of_the_last_4_weeks_that_ended() -> None:
    def s(days_ago: float, kcal: int, ended: bool = True) -> PastSession:
        return PastSession(NOW - timedelta(days=days_ago), ended, kcal)

    listed = [s(0, 999, ended=False), s(1, 300), s(10, 500), s(27.9, 400), s(28.1, 800)]
    assert summarise_sessions(listed, NOW) == SessionSummary(3, 1200, False)
    assert summarise_sessions(listed[:4], NOW, more_pages=True).truncated
    assert not summarise_sessions(listed, NOW, more_pages=True).truncated


def test_the_edge_routes_nutrition_to_the_coach_instances_only() -> None:
    from fitco.nutrition.v1 import nutrition_pb2

    import fitedge
    from fitedge.config import routes

    params = fitedge.EnvoyParams(
        listen=("127.0.0.1", 8080),
        admin=("127.0.0.1", 9901),
        monolith=fitedge.Endpoints([("127.0.0.1", 50051)]),
        coach=fitedge.Endpoints([("127.0.0.1", 50061), ("127.0.0.1", 50062)]),
        descriptor="fitco.binpb",
        jwks={"keys": []},
    )
    paths = [r.path for r in params.contract.of_services(nutrition_pb2)]
    assert paths == ["/fitco.nutrition.v1.NutritionService/GetNutrition"]
    route = next(r for r in routes(params) if r["match"].get("path") == paths[0])["route"]
    assert route["cluster"] == fitedge.COACH_HOSTS
    retry = route["retry_policy"]
    assert "unavailable" in retry["retry_on"] and "reset" in retry["retry_on"]
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
