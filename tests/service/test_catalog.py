"""CatalogService: the seeded catalog, filters, pagination, versions."""

from __future__ import annotations

import json

import grpc
from fitco.catalog.v1 import catalog_pb2
from fitco.legacy.v1 import legacy_pb2, legacy_pb2_grpc

from tests.conftest import RunningMonolith
from tests.rpc import expect_error, field_violations

LEGACY = [
    "Bench Press", "Push-ups", "Dumbbell Flyes", "Pull-ups", "Barbell Rows", "Lat Pulldowns",
    "Overhead Press", "Lateral Raises", "Face Pulls", "Bicep Curls", "Tricep Pushdowns",
    "Hammer Curls", "Crunches", "Plank", "Russian Twists", "Squats", "Deadlifts", "Lunges",
    "Leg Press", "Calf Raises",
]  # fmt: skip


def test_catalog_keeps_legacy_ids_and_grows(monolith: RunningMonolith) -> None:
    cat = monolith.client.catalog.GetCatalog(catalog_pb2.GetCatalogRequest())
    by_id = {e.id: e for e in cat.exercises}
    assert [by_id[i].name for i in range(1, 21)] == LEGACY
    assert len(cat.exercises) >= 60
    assert len(cat.muscle_groups) == 20
    assert cat.muscle_groups[0].name == "Pectoralis Major"
    for e in cat.exercises:
        assert 1 <= e.difficulty <= 5
        assert e.met_value > 0 and len(e.met_code) == 5
        assert any(m.is_primary for m in e.muscle_groups)
        assert all(0 < m.intensity <= 1 for m in e.muscle_groups)
    equipment = {e.equipment for e in cat.exercises}
    assert {"bodyweight", "dumbbell", "barbell", "kettlebell", "cable", "machine"} <= equipment


def test_catalog_version_revalidation(monolith: RunningMonolith) -> None:
    first = monolith.client.catalog.GetCatalog(catalog_pb2.GetCatalogRequest())
    again = monolith.client.catalog.GetCatalog(
        catalog_pb2.GetCatalogRequest(known_version=first.version)
    )
    assert again.not_modified and not again.exercises and again.version == first.version


def test_list_filters_and_pagination(monolith: RunningMonolith) -> None:
    c = monolith.client.catalog
    chest = c.ListExercises(catalog_pb2.ListExercisesRequest(muscle_group_id=1, page_size=200))
    assert chest.exercises and all(any(m.id == 1 for m in e.muscle_groups) for e in chest.exercises)
    kb = c.ListExercises(catalog_pb2.ListExercisesRequest(equipment="kettlebell", difficulty=3))
    assert all(e.equipment == "kettlebell" and e.difficulty == 3 for e in kb.exercises)
    seen: list[int] = []
    token = ""
    while True:
        page = c.ListExercises(catalog_pb2.ListExercisesRequest(page_size=7, page_token=token))
        seen += [e.id for e in page.exercises]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen)
    assert len(seen) == page.total_size == len(set(seen))
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.ListExercises(catalog_pb2.ListExercisesRequest(difficulty=9, page_size=-1)),
    )
    assert "difficulty" in field_violations(err) or "page_size" in field_violations(err)


def test_get_exercise_and_not_found(monolith: RunningMonolith) -> None:
    c = monolith.client.catalog
    assert c.GetExercise(catalog_pb2.GetExerciseRequest(exercise_id=16)).exercise.name == "Squats"
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.GetExercise(catalog_pb2.GetExerciseRequest(exercise_id=99999)),
    )


def test_legacy_catalog_paths_render_bare_json(monolith: RunningMonolith) -> None:
    legacy = legacy_pb2_grpc.LegacyServiceStub(monolith.client.channel)
    resp = legacy.ListExercises(legacy_pb2.ListExercisesRequest(muscle_group_id=16))
    assert resp.body.content_type == "application/json"
    exercises = json.loads(resp.body.data)
    assert exercises
    assert all(any(m["id"] == 16 for m in e["muscle_groups"]) for e in exercises)
    everything = json.loads(legacy.ListExercises(legacy_pb2.ListExercisesRequest()).body.data)
    assert len(everything) > len(exercises)
    assert [e["id"] for e in everything[:20]] == list(range(1, 21))
    squats = json.loads(legacy.GetExercise(legacy_pb2.GetExerciseRequest(exercise_id=16)).body.data)
    assert squats["name"] == "Squats"
    assert squats["id"] == 16  # a JSON number, as legacy clients read it
    assert {"id", "name", "body_part", "description", "is_primary"} <= set(
        squats["muscle_groups"][0]
    )
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: legacy.GetExercise(legacy_pb2.GetExerciseRequest(exercise_id=12345)),
    )
    groups = monolith.client.catalog.ListMuscleGroups(catalog_pb2.ListMuscleGroupsRequest())
    assert [g.id for g in groups.muscle_groups] == list(range(1, 21))
