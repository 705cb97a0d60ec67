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

# NSCA %1RM by repetitions to failure.
PERCENT_1RM_BY_REPS = {
    1: 1.00, 2: 0.95, 3: 0.93, 4: 0.90, 5: 0.87, 6: 0.85, 7: 0.83, 8: 0.80,
    9: 0.77, 10: 0.75, 12: 0.67, 15: 0.65,
}  # fmt: skip

# Load steps that equipment allows (kg), and the least load it can carry.
LOAD_STEP = {"dumbbell": 1.0, "barbell": 2.5, "kettlebell": 4.0, "cable": 2.5, "machine": 2.5}
MIN_LOAD = {"barbell": 20.0, "kettlebell": 4.0}
# ACSM 2009 progression: +2-10 % once 1-2 reps over target; typically +1-2 kg upper body,
# +2-4 kg lower body. We add one equipment step, at least these:
PROGRESSION_MIN_KG = {"upper": 1.0, "core": 1.0, "lower": 2.5}
PROGRESSION_EXTRA_REPS = 2

# Recovery (ACSM 2011): 48 h before the same muscle group is trained hard again; 72 h for large
# lower-body groups. "Hard" = a primary mover at this intensity or more.
RECOVERY_HOURS = 48
RECOVERY_HOURS_LARGE_LOWER = 72
HARD_INTENSITY = 0.6
# An avoided muscle group must not be a primary mover nor worked at this intensity or more.
AVOID_INTENSITY = 0.3

SECONDS_PER_REP = 3.0
DEFAULT_BODY_WEIGHT_KG = 70.0
DEFAULT_SESSION_MINUTES = 45
MIN_SETS = 2
