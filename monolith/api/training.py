"""fitco.training.v1.TrainingService: workout sessions, their sets and training statistics.

A thin servicer: it converts contract messages to the domain's plain values and back
(`monolith.domain.workouts`, `workout_sets`, `stats`), and acts for the calling user only.
"""

from __future__ import annotations

import grpc
from fitco.training.v1 import training_pb2, training_pb2_grpc

from fitcore.auth import current_principal
from fitcore.entitlements import EntitlementsClient
from monolith.api.convert import ts
from monolith.domain.stats import Stats, StatsView
from monolith.domain.workout_sets import SetInput, WorkoutSets
from monolith.domain.workout_store import SessionView, SetView
from monolith.domain.workouts import Workouts


def workout_set(view: SetView) -> training_pb2.WorkoutSet:
    return training_pb2.WorkoutSet(
        id=view.id,
        exercise_id=view.exercise_id,
        exercise_name=view.exercise_name,
        reps=view.reps,
        weight=view.weight_kg,
        duration_seconds=view.duration_seconds,
        rpe=view.rpe,
        client_set_id=view.client_set_id,
        performed_at=ts(view.performed_at),
        estimated_1rm_kg=view.estimated_1rm_kg,
    )


def workout_session(view: SessionView) -> training_pb2.WorkoutSession:
    out = training_pb2.WorkoutSession(
        id=view.id,
        status=view.status,
        from_wod=view.from_wod,
        wod_day=view.wod_day.isoformat() if view.wod_day else "",
        planned_exercise_ids=view.planned_exercise_ids,
        started_at=ts(view.started_at),
        auto_closed=view.auto_closed,
        day=view.day.isoformat(),
        duration_seconds=view.duration_seconds,
        calories=round(view.calories),
        volume_kg=view.volume_kg,
        set_count=view.set_count,
        sets=[workout_set(s) for s in view.sets],
        calories_basis=view.calories_basis,
    )
    if view.ended_at is not None:
        out.ended_at.CopyFrom(ts(view.ended_at))
    return out


def stats(view: StatsView) -> training_pb2.GetStatsResponse:
    return training_pb2.GetStatsResponse(
        period=view.period,
        start_day=view.start_day.isoformat(),
        end_day=view.end_day.isoformat(),
        time_zone=view.time_zone,
        sessions=view.sessions,
        duration_seconds=view.duration_seconds,
        calories=view.calories,
        volume_kg=view.volume_kg,
        streak_days=view.streak_days,
        personal_records=[
            training_pb2.PersonalRecord(
                exercise_id=r.exercise_id,
                exercise_name=r.exercise_name,
                estimated_1rm_kg=r.estimated_1rm_kg,
                weight=r.weight_kg,
                reps=r.reps,
                day=r.day.isoformat(),
                set_in_period=r.set_in_period,
            )
            for r in view.personal_records
        ],
        muscle_group_sets=[
            training_pb2.MuscleGroupWeek(
                week_start=m.week_start.isoformat(),
                muscle_group_id=m.muscle_group_id,
                muscle_group_name=m.muscle_group_name,
                sets=m.sets,
            )
            for m in view.muscle_group_sets
        ],
        history_limited_to_weeks=view.history_limited_to_weeks,
    )


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(
        self,
        workouts: Workouts,
        sets: WorkoutSets,
        stats: Stats,
        entitlements: EntitlementsClient,
    ) -> None:
        self._workouts = workouts
        self._sets = sets
        self._stats = stats
        # How far back the caller's plan lets statistics reach (billing).
        self._entitlements = entitlements

    def StartSession(
        self, request: training_pb2.StartSessionRequest, context: grpc.ServicerContext
    ) -> training_pb2.StartSessionResponse:
        view = self._workouts.start(current_principal().user_id, request.from_wod)
        return training_pb2.StartSessionResponse(session=workout_session(view))

    def LogSet(
        self, request: training_pb2.LogSetRequest, context: grpc.ServicerContext
    ) -> training_pb2.LogSetResponse:
        view, created = self._sets.log(
            current_principal().user_id,
            request.session_id,
            SetInput(
                exercise_id=request.exercise_id,
                client_set_id=request.client_set_id,
                reps=request.reps,
                weight_kg=request.weight,
                duration_seconds=request.duration_seconds,
                rpe=request.rpe,
            ),
        )
        return training_pb2.LogSetResponse(set=workout_set(view), created=created)

    def EndSession(
        self, request: training_pb2.EndSessionRequest, context: grpc.ServicerContext
    ) -> training_pb2.EndSessionResponse:
        view = self._workouts.end(current_principal().user_id, request.session_id)
        return training_pb2.EndSessionResponse(session=workout_session(view))

    def ListSessions(
        self, request: training_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> training_pb2.ListSessionsResponse:
        views, token = self._workouts.list(
            current_principal().user_id, request.page_size, request.page_token
        )
        return training_pb2.ListSessionsResponse(
            sessions=[workout_session(v) for v in views], next_page_token=token
        )

    def GetSession(
        self, request: training_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> training_pb2.GetSessionResponse:
        view = self._workouts.get(current_principal().user_id, request.session_id)
        return training_pb2.GetSessionResponse(session=workout_session(view))

    def GetStats(
        self, request: training_pb2.GetStatsRequest, context: grpc.ServicerContext
    ) -> training_pb2.GetStatsResponse:
        principal = current_principal()
        weeks = self._entitlements.get(principal).stats_history_weeks
        return stats(self._stats.get(principal.user_id, request.period, weeks))
