"""fitco.history.v1.HistoryService."""

from __future__ import annotations

import grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc

from fitcore.auth import current_principal
from fitcore.errors import NotFound
from monolith.api import convert
from monolith.domain.common import parse_day
from monolith.domain.history import ExerciseLog, History
from monolith.domain.served_wods import Replacement, ServedWods


class HistoryServicer(history_pb2_grpc.HistoryServiceServicer):
    def __init__(self, history: History, wods: ServedWods) -> None:
        self._history = history
        self._wods = wods

    def RecordExercise(
        self, request: history_pb2.RecordExerciseRequest, context: grpc.ServicerContext
    ) -> history_pb2.RecordExerciseResponse:
        view = self._history.record_exercise(
            current_principal().user_id,
            ExerciseLog(
                exercise_id=request.exercise_id,
                sets=request.sets,
                reps=request.reps,
                weight_kg=request.weight_kg,
                duration_seconds=request.duration_seconds,
                performed_at=convert.opt_time(
                    request.performed_at, request.HasField("performed_at")
                ),
                note=request.note,
            ),
        )
        return history_pb2.RecordExerciseResponse(entry=convert.entry(view))

    def ListHistory(
        self, request: history_pb2.ListHistoryRequest, context: grpc.ServicerContext
    ) -> history_pb2.ListHistoryResponse:
        entries, token = self._history.list_history(
            current_principal().user_id,
            convert.opt_time(request.start_time, request.HasField("start_time")),
            convert.opt_time(request.end_time, request.HasField("end_time")),
            request.page_size,
            request.page_token,
        )
        return history_pb2.ListHistoryResponse(
            entries=[convert.entry(e) for e in entries], next_page_token=token
        )

    def DeleteHistoryEntry(
        self, request: history_pb2.DeleteHistoryEntryRequest, context: grpc.ServicerContext
    ) -> history_pb2.DeleteHistoryEntryResponse:
        self._history.delete_entry(current_principal().user_id, request.entry_id)
        return history_pb2.DeleteHistoryEntryResponse()

    def ListExercisesOnDay(
        self, request: history_pb2.ListExercisesOnDayRequest, context: grpc.ServicerContext
    ) -> history_pb2.ListExercisesOnDayResponse:
        day = parse_day(request.day)
        entries = self._history.entries_on_day(current_principal().user_id, day)
        return history_pb2.ListExercisesOnDayResponse(
            day=day.isoformat(),
            exercise_ids=sorted({e.exercise_id for e in entries}),
            entries=[convert.entry(e) for e in entries],
        )

    def RecordWod(
        self, request: history_pb2.RecordWodRequest, context: grpc.ServicerContext
    ) -> history_pb2.RecordWodResponse:
        wod, created = self._wods.record(
            current_principal().user_id,
            parse_day(request.day),
            request.implementation,
            [convert.wod_item_view(item, n) for n, item in enumerate(request.items)],
            kind=request.kind,
            notes=tuple(request.notes),
        )
        return history_pb2.RecordWodResponse(wod=convert.served_wod(wod), created=created)

    def GetServedWod(
        self, request: history_pb2.GetServedWodRequest, context: grpc.ServicerContext
    ) -> history_pb2.GetServedWodResponse:
        day = parse_day(request.day)
        wod = self._wods.get(current_principal().user_id, day)
        if wod is None:
            raise NotFound(f"no WOD was served on {day.isoformat()}", reason="WOD_NOT_FOUND")
        return history_pb2.GetServedWodResponse(wod=convert.served_wod(wod))

    def ExtendWod(
        self, request: history_pb2.ExtendWodRequest, context: grpc.ServicerContext
    ) -> history_pb2.ExtendWodResponse:
        wod, extended = self._wods.extend(
            current_principal().user_id,
            parse_day(request.day),
            (request.wod_id, request.regenerations),
            [convert.wod_item_view(item, n) for n, item in enumerate(request.items)],
            request.size,
        )
        return history_pb2.ExtendWodResponse(wod=convert.served_wod(wod), extended=extended)

    def ReplaceWod(
        self, request: history_pb2.ReplaceWodRequest, context: grpc.ServicerContext
    ) -> history_pb2.ReplaceWodResponse:
        wod, replaced = self._wods.replace(
            current_principal().user_id,
            parse_day(request.day),
            Replacement(
                implementation=request.implementation,
                items=[convert.wod_item_view(item, n) for n, item in enumerate(request.items)],
                kind=request.kind,
                notes=tuple(request.notes),
                regenerations=request.regenerations,
                max_regenerations=request.max_regenerations,
            ),
        )
        return history_pb2.ReplaceWodResponse(wod=convert.served_wod(wod), replaced=replaced)
