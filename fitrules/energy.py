"""Energy expenditure of activity (Compendium of Physical Activities, 2011 edition).

`kcal/min = MET x 3.5 x kg / 200` (gross; MET - 1 would be net). Each exercise of the catalog
carries its Compendium MET value and activity code (exercises.met_value / met_code).
"""

from __future__ import annotations

from typing import Final

# ml O2 per kg per minute of one MET, and kcal per litre of O2 (the 3.5 / 200 of the formula).
ML_O2_PER_KG_MIN: Final = 3.5
ML_PER_KCAL: Final = 200.0
FORMULA: Final = "MET x 3.5 x kg / 200 x minutes (Compendium of Physical Activities, 2011)"


def kcal_per_minute(met: float, body_weight_kg: float) -> float:
    """Gross kcal per minute of an activity of `met` for a person of `body_weight_kg`."""
    return met * ML_O2_PER_KG_MIN * body_weight_kg / ML_PER_KCAL


def kcal(met: float, body_weight_kg: float, minutes: float) -> float:
    """Gross kcal of `minutes` of an activity of `met`."""
    return kcal_per_minute(met, body_weight_kg) * minutes
