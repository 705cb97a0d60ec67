"""Training prescription numbers, in one place, with their sources (shared/domain-facts.md).

NSCA = Baechle & Earle, Essentials of Strength Training and Conditioning.
ACSM 2009 = Progression models in resistance training for healthy adults.
ACSM 2011 = Quantity and quality of exercise (position stand).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prescription:
    reps: int
    sets: int
    rest_seconds: int
    min_rest_seconds: int  # the least rest the session-length fitting may go down to
    load: float  # fraction of an estimated 1RM
    slots: tuple[str, ...]  # exercise kinds of a six-exercise session, in choosing order
    cardio_seconds: int


GOALS: dict[str, Prescription] = {
    # NSCA: strength >= 85 % 1RM, <= 6 reps, 2-6 sets, 2-5 min rest.
    "strength": Prescription(
        5, 4, 180, 120, 0.85, ("compound",) * 4 + ("strength", "strength"), 600
    ),
    # NSCA / ACSM 2009: hypertrophy 67-85 % 1RM, 6-12 reps, 3-6 sets, 30-90 s rest.
    "muscle_gain": Prescription(10, 3, 75, 30, 0.75, ("compound",) * 3 + ("isolation",) * 3, 600),
    # NSCA / ACSM 2011: endurance <= 67 % 1RM, >= 12 reps, 2-3 sets, <= 30 s rest.
    "endurance": Prescription(
        15, 3, 30, 15, 0.60, ("compound",) * 3 + ("isolation", "core", "cardio"), 900
    ),
    # ACSM 2011, WHO 2020: moderate loads in circuits, 10-15 reps, short rest, plus aerobic work.
    "weight_loss": Prescription(
        12, 3, 30, 15, 0.65, ("compound",) * 3 + ("core", "any", "cardio"), 900
    ),
    # ACSM 2009 general fitness: 8-12 reps at about 70 % 1RM, 1-2 min rest.
    "general_fitness": Prescription(
        10, 3, 60, 30, 0.70, ("compound",) * 3 + ("isolation", "core", "cardio"), 600
    ),
}
DEFAULT_GOAL = "general_fitness"

# ACSM 2009: novices 8-12 RM; ACSM: start sedentary beginners at 40-50 % 1RM.
BEGINNER_REPS = (8, 12)
BEGINNER_MAX_SETS = 3
BEGINNER_LOAD = 0.45

# Highest difficulty (1-5) offered at each experience level.
DIFFICULTY_CAP = {"beginner": 3, "intermediate": 4, "advanced": 5}
# Estimated 1RM relative to the catalog's novice ratio.
EXPERIENCE_STRENGTH = {"beginner": 1.0, "intermediate": 1.3, "advanced": 1.6}
HOLD_SECONDS = {"beginner": 30, "intermediate": 45, "advanced": 60}
ADVANCED_EXTRA_SET_GOALS = frozenset({"muscle_gain"})  # NSCA: 3-6 sets for hypertrophy

# Load steps that equipment allows (kg), and the least load it can carry.
LOAD_STEP = {"dumbbell": 1.0, "barbell": 2.5, "kettlebell": 4.0, "cable": 2.5, "machine": 2.5}
MIN_LOAD = {"barbell": 20.0, "kettlebell": 4.0}
# Double progression (ACSM 2009; NSCA): the WOD prescribes the top of the goal's rep range
# (GOALS[...].reps); the load stays until every set at the working weight reaches it, then goes
# up by one equipment step, at least these (ACSM 2009: +2-10 %, typically +1-2 kg upper body,
# +2-4 kg lower body). A set counts when it reached the reps at an RPE of at most this (RPE 0 =
# not given: the reps decide alone). Product rule: RPE 8 leaves about two reps in reserve.
PROGRESSION_MIN_KG = {"upper": 1.0, "core": 1.0, "lower": 2.5}
PROGRESSION_MAX_RPE = 8.0
# Suggested load = best estimated 1RM (Epley, fitrules.strength) of the last E1RM_DAYS x the NSCA
# %1RM for the prescribed reps, rounded down to the equipment step. Safety (product rule): the
# load may exceed that by at most one progression step, whatever the last working weight says.
E1RM_DAYS = 14

# Deload (NSCA periodization: a planned lighter week every 4-6 weeks, e.g. 3 loading weeks then
# 1 unloading week). Product rule: after DELOAD_AFTER_HARD_WEEKS consecutive full weeks each with
# at least HARD_SETS_PER_WEEK sets at RPE >= HARD_RPE, this week is a deload; so is any day within
# DROP_RECENT_DAYS of a session whose best estimated 1RM of an exercise fell by DROP_FRACTION or
# more since the exposure before (a sign of accumulated fatigue; 5-10 % is the usual band).
DELOAD_AFTER_HARD_WEEKS = 3
HARD_SETS_PER_WEEK = 6
HARD_RPE = 9.0
DROP_FRACTION = 0.10
DROP_RECENT_DAYS = 7
# A deload halves the sets (at least one) and takes 10 % off the load (NSCA: reduce volume and
# intensity during unloading weeks).
DELOAD_SET_FRACTION = 0.5
DELOAD_MIN_SETS = 1
DELOAD_LOAD = 0.90

# Weekly sets per primary muscle group the choice steers towards (sets logged this week, the
# user's Monday-to-Sunday week). Schoenfeld 2016/2017: >= 10 sets per muscle per week for growth.
# WHO 2020: strength work for all major muscles >= 2 days a week (about 2 x 2 sets: product rule
# for the other goals); strength 6 (product rule: fewer, heavier sets).
WEEKLY_SETS_TARGET = {
    "muscle_gain": 10,
    "strength": 6,
    "endurance": 4,
    "weight_loss": 4,
    "general_fitness": 4,
}
# Score bonus for a candidate whose least-trained primary group is short of its target, scaled by
# how short (0-1): larger than the random jitter (< 1), smaller than a tier (10).
VOLUME_WEIGHT = 1.5

# Training and rest days: preferences.training_days_per_week (1-7), 3 by default (ACSM 2009:
# novices 2-3 days a week). Today is a planned rest day when this week's training days (days with
# logged work, today excluded) reached the quota, or when the user trained on each of the last
# REST_AFTER_DAYS days and the rest of the week still leaves room for the quota (product rule).
DEFAULT_TRAINING_DAYS = 3
REST_AFTER_DAYS = 2

# A rest day's recovery session: light work only. Compendium 2011: < 3 MET is light, >= 6 MET
# vigorous; ACSM 2011 flexibility: hold a stretch 10-30 s, 2-4 times (60 s per stretch).
RECOVERY_SIZE = 4
RECOVERY_ROLES = ("mobility", "mobility", "hold", "cardio")  # choosing order
RECOVERY_MAX_DIFFICULTY = 2
VIGOROUS_MET = 6.0
LIGHT_MET = 3.0
STRETCH_SETS, STRETCH_SECONDS, STRETCH_REST = 2, 30, 15
RECOVERY_HOLD_SETS, RECOVERY_HOLD_SECONDS, RECOVERY_HOLD_REST = 2, 20, 30
RECOVERY_CARDIO_SECONDS, RECOVERY_CARDIO_MIN_SECONDS = 600, 300
GENTLE_SETS, GENTLE_REPS, GENTLE_REST = 2, 10, 30

# Recovery (ACSM 2011): 48 h before the same muscle group is trained hard again; 72 h for large
# lower-body groups. "Hard" = a primary mover at this intensity or more.
RECOVERY_HOURS = 48
RECOVERY_HOURS_LARGE_LOWER = 72
HARD_INTENSITY = 0.6
# An avoided muscle group must not be a primary mover nor worked at this intensity or more.
AVOID_INTENSITY = 0.3

DEFAULT_BODY_WEIGHT_KG = 70.0
DEFAULT_SESSION_MINUTES = 45
MIN_SETS = 2
