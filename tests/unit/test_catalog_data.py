"""The seed data obeys the catalog's rules (ids, vocabularies, METs, muscles)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "monolith" / "migrations" / "data" / "catalog_v1.json"
EQUIPMENT = {
    "bodyweight", "dumbbell", "barbell", "kettlebell", "cable", "machine",
    "cardio_machine", "jump_rope", "pull_up_bar", "bench", "pool",
}  # fmt: skip
# 2011 Compendium values the catalog may use (domain-facts.md).
COMPENDIUM = {
    "02050": 6.0, "02054": 3.5, "02052": 5.0, "02020": 8.0, "02022": 3.8, "02024": 2.8,
    "02035": 4.3, "02040": 8.0, "02071": 4.8, "02010": 7.0, "02048": 5.0, "02068": 12.3,
    "02101": 2.3, "02150": 2.5, "02105": 3.0, "12020": 7.0, "12050": 9.8, "17200": 4.3,
    "18240": 5.8,
}  # fmt: skip


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA.read_text())
    return loaded


def test_muscle_groups(data: dict[str, Any]) -> None:
    groups = data["muscle_groups"]
    assert [g["id"] for g in groups] == list(range(1, 21))
    assert {g["size"] for g in groups} == {"large", "small"}
    assert {g["region"] for g in groups} == {"upper", "lower", "core"}


def test_exercises(data: dict[str, Any]) -> None:
    exercises = data["exercises"]
    assert [e["id"] for e in exercises] == list(range(1, len(exercises) + 1))
    assert len(exercises) >= 60
    assert len({e["name"] for e in exercises}) == len(exercises)
    primary_count: Counter[int] = Counter()
    for e in exercises:
        assert 1 <= e["difficulty"] <= 5, e["name"]
        assert e["equipment"] in EQUIPMENT, e["name"]
        assert e["equipment"] in e["equipment_needed"], e["name"]
        assert set(e["equipment_needed"]) <= EQUIPMENT, e["name"]
        assert e["mechanic"] in ("compound", "isolation")
        assert e["measure"] in ("reps", "seconds", "minutes")
        assert COMPENDIUM.get(e["met_code"]) == e["met_value"], e["name"]
        assert e["rm_bodyweight_ratio"] >= 0
        muscles = e["muscles"]
        assert 1 <= len(muscles) <= 6
        assert len({m["muscle_group_id"] for m in muscles}) == len(muscles)
        assert any(m["is_primary"] for m in muscles), e["name"]
        for m in muscles:
            assert 0 < m["intensity"] <= 1
            assert 1 <= m["muscle_group_id"] <= 20
            if m["is_primary"]:
                primary_count[m["muscle_group_id"]] += 1
    assert all(primary_count[g] >= 2 for g in range(1, 21)), primary_count
    per_equipment = Counter(e["equipment"] for e in exercises)
    for kind in ("bodyweight", "dumbbell", "barbell", "kettlebell", "cable", "machine"):
        assert per_equipment[kind] >= 4, kind
