"""fitco.history.v1.HistoryService."""

from __future__ import annotations

import grpc
from fitco.history.v1 import history_pb2, history_pb2_grpc

from fitcore.auth import current_principal
from fitcore.errors import NotFound
from monolith.api import convert
from monolith.domain.common import parse_day
from monolith.domain.history import ExerciseLog, History


class HistoryServicer(history_pb2_grpc.HistoryServiceServicer):
    def __init__(self, history: History) -> None:
        self._history = history

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
        wod, created = self._history.record_wod(
            current_principal().user_id,
            parse_day(request.day),
            request.implementation,
            [convert.wod_item_view(item, n) for n, item in enumerate(request.items)],
        )
        return history_pb2.RecordWodResponse(wod=convert.served_wod(wod), created=created)

    def GetServedWod(
        self, request: history_pb2.GetServedWodRequest, context: grpc.ServicerContext
    ) -> history_pb2.GetServedWodResponse:
        day = parse_day(request.day)
        wod = self._history.get_served_wod(current_principal().user_id, day)
        if wod is None:
            raise NotFound(f"no WOD was served on {day.isoformat()}", reason="WOD_NOT_FOUND")
        return history_pb2.GetServedWodResponse(wod=convert.served_wod(wod))
