"""Strength estimates: one-rep max from a set, and the load for a number of reps.

Sources: Epley (1985) `1RM = w·(1 + r/30)`; NSCA (Baechle & Earle) %1RM by repetitions to
failure. Estimates from sets of more than ~10-12 reps are unreliable, so sets above
MAX_RELIABLE_REPS do not count as a 1RM estimate.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# NSCA: %1RM against the repetitions a lifter can do to failure.
PERCENT_1RM_BY_REPS: Final[MappingProxyType[int, float]] = MappingProxyType(
    {1: 1.00, 2: 0.95, 3: 0.93, 4: 0.90, 5: 0.87, 6: 0.85, 7: 0.83, 8: 0.80,
     9: 0.77, 10: 0.75, 12: 0.67, 15: 0.65}
)  # fmt: skip
# Epley/Brzycki are accurate up to ~10 reps; we accept up to 12 (NSCA's table goes there).
MAX_RELIABLE_REPS: Final = 12


def epley_1rm(weight_kg: float, reps: int) -> float:
    """Estimated one-rep max (Epley); 0 when the set cannot estimate one (no load, no reps, or
    more reps than the estimate is reliable for)."""
    if weight_kg <= 0 or reps <= 0 or reps > MAX_RELIABLE_REPS:
        return 0.0
    if reps == 1:
        return weight_kg
    return weight_kg * (1 + reps / 30)


def percent_1rm_for_reps(reps: int) -> float:
    """The NSCA fraction of 1RM a lifter can move for `reps` reps to failure; a rep count
    between the table's entries uses the next higher entry (the lighter load)."""
    if reps <= 1:
        return 1.0
    for r in sorted(PERCENT_1RM_BY_REPS):
        if r >= reps:
            return PERCENT_1RM_BY_REPS[r]
    return PERCENT_1RM_BY_REPS[max(PERCENT_1RM_BY_REPS)]
