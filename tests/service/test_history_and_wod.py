"""HistoryService and the legacy WOD: yesterday's exercises are never served again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
from fitco.catalog.v1 import catalog_pb2
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from google.protobuf import timestamp_pb2

from tests.conftest import RunningMonolith, onboard, register, service_md
from tests.rpc import expect_error, field_violations


def _at(moment: object) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)  # type: ignore[arg-type]
    return ts


def test_record_and_list_history(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    now = monolith.clock.now()
    for hours, ex in ((30, 16), (26, 17), (2, 1)):
        c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=ex,
                sets=3,
                reps=5,
                weight_kg=100,
                performed_at=_at(now - timedelta(hours=hours)),
            ),
            metadata=user.md,
        )
    listed = c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=user.md).entries
    assert [e.exercise_id for e in listed] == [1, 17, 16]
    assert listed[0].exercise_name == "Bench Press" and listed[0].source == "logged"
    ranged = c.history.ListHistory(
        history_pb2.ListHistoryRequest(
            start_time=_at(now - timedelta(hours=28)), end_time=_at(now - timedelta(hours=1))
        ),
        metadata=user.md,
    ).entries
    assert [e.exercise_id for e in ranged] == [1, 17]
    page = c.history.ListHistory(history_pb2.ListHistoryRequest(page_size=2), metadata=user.md)
    rest = c.history.ListHistory(
        history_pb2.ListHistoryRequest(page_size=2, page_token=page.next_page_token),
        metadata=user.md,
    )
    assert [e.exercise_id for e in [*page.entries, *rest.entries]] == [1, 17, 16]


def test_record_exercise_validation(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=424242,
                sets=50,
                reps=-1,
                weight_kg=5000,
                performed_at=_at(monolith.clock.now() + timedelta(days=2)),
            ),
            metadata=user.md,
        ),
    )
    # The limits the contract declares are checked first (fitcore.validation) ...
    assert set(field_violations(err)) == {"sets", "reps", "weight_kg"}
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=424242,
                sets=5,
                performed_at=_at(monolith.clock.now() + timedelta(days=2)),
            ),
            metadata=user.md,
        ),
    )
    # ... then the domain's rules that need the catalog or the clock.
    assert set(field_violations(err)) == {"exercise_id", "performed_at"}
    assert not c.history.ListHistory(history_pb2.ListHistoryRequest(), metadata=user.md).entries
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.history.ListExercisesOnDay(
            history_pb2.ListExercisesOnDayRequest(day="yesterday"), metadata=user.md
        ),
    )


def test_exercises_on_day_and_delete(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    yesterday = monolith.clock.now() - timedelta(days=1)
    e1 = c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(
            exercise_id=4, sets=3, reps=8, performed_at=_at(yesterday)
        ),
        metadata=user.md,
    ).entry
    c.history.RecordExercise(
        history_pb2.RecordExerciseRequest(
            exercise_id=2, sets=3, reps=20, performed_at=_at(yesterday)
        ),
        metadata=user.md,
    )
    day = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=yesterday.date().isoformat()), metadata=user.md
    )
    assert list(day.exercise_ids) == [2, 4]
    c.history.DeleteHistoryEntry(
        history_pb2.DeleteHistoryEntryRequest(entry_id=e1.id), metadata=user.md
    )
    day = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=yesterday.date().isoformat()), metadata=user.md
    )
    assert list(day.exercise_ids) == [2]


def test_legacy_wod_excludes_yesterday_and_is_stable_for_the_day(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    onboard(c, user)
    yesterday = monolith.clock.now() - timedelta(days=1)
    # Yesterday the user did most of the catalog except a handful of exercises.
    catalog_ids = [e.id for e in c.catalog.GetCatalog(catalog_pb2.GetCatalogRequest()).exercises]
    left = set(catalog_ids[-8:])
    for ex in catalog_ids[:-8]:
        c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=ex, sets=1, reps=1, performed_at=_at(yesterday)
            ),
            metadata=user.md,
        )
    wod = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
    ids = [e.id for e in wod.exercises]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert set(ids) <= left, "the WOD repeated one of yesterday's exercises"
    assert wod.implementation == "legacy"
    assert wod.day == monolith.clock.now().date().isoformat()
    for e in wod.exercises:
        assert e.name and e.muscle_groups and e.sets > 0
        assert e.suggested_reps > 0 or e.suggested_duration_seconds > 0
        assert all(0 < m.intensity <= 1 for m in e.muscle_groups)
    assert wod.estimated_minutes > 0 and wod.estimated_kcal > 0
    # Same day: the same WOD.
    again = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
    assert [e.id for e in again.exercises] == ids
    assert again.generated_at == wod.generated_at
    # The served WOD is in today's history ...
    served = c.history.GetServedWod(
        history_pb2.GetServedWodRequest(day=wod.day), metadata=user.md
    ).wod
    assert [i.exercise_id for i in served.items] == ids
    # ... so tomorrow's WOD avoids it.
    monolith.clock.at += timedelta(days=1)
    tomorrow = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
    assert not set(ids) & {e.id for e in tomorrow.exercises}


def test_legacy_wod_falls_back_to_full_catalog(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    yesterday = monolith.clock.now() - timedelta(days=1)
    ids = [e.id for e in c.catalog.GetCatalog(catalog_pb2.GetCatalogRequest()).exercises]
    for ex in ids[:-3]:
        c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=ex, sets=1, reps=1, performed_at=_at(yesterday)
            ),
            metadata=user.md,
        )
    wod = c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)
    assert len(wod.exercises) == 6  # only 3 were left: the whole catalog is used


def test_record_wod_first_writer_wins_under_concurrency(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    day = monolith.clock.now().date().isoformat()
    as_coach = user.md + service_md(monolith.key_dir)  # RecordWod is INTERNAL

    def attempt(offset: int) -> history_pb2.RecordWodResponse:
        return c.history.RecordWod(
            history_pb2.RecordWodRequest(
                day=day,
                implementation="coach",
                items=[
                    history_pb2.WodItem(exercise_id=offset + i, sets=3, reps=10)
                    for i in range(1, 7)
                ],
            ),
            metadata=as_coach,
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(0, 40, 5)))
    assert sum(r.created for r in results) == 1
    winners = {tuple(i.exercise_id for i in r.wod.items) for r in results}
    assert len(winners) == 1
    listed = c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=day), metadata=user.md
    )
    assert len(listed.entries) == 6  # no half-written or duplicate WOD


def test_record_wod_validation(monolith: RunningMonolith) -> None:
    c = monolith.client
    user = register(c)
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.history.RecordWod(
            history_pb2.RecordWodRequest(
                day="2001-01-01",
                implementation="magic",
                items=[history_pb2.WodItem(exercise_id=1), history_pb2.WodItem(exercise_id=1)],
            ),
            metadata=user.md + service_md(monolith.key_dir),
        ),
    )
    assert set(field_violations(err)) == {"implementation"}  # declared in the contract
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: c.history.RecordWod(
            history_pb2.RecordWodRequest(
                day="2001-01-01",
                implementation="coach",
                items=[history_pb2.WodItem(exercise_id=1), history_pb2.WodItem(exercise_id=1)],
            ),
            metadata=user.md + service_md(monolith.key_dir),
        ),
    )
    assert {"day", "items"} <= set(field_violations(err))  # the domain's rules
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: c.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=monolith.clock.now().date().isoformat()),
            metadata=user.md,
        ),
    )
