"""fitco.goals.v1.GoalService: the caller's goals, converted to and from the contract."""

from __future__ import annotations

import grpc
from fitco.goals.v1 import goals_pb2, goals_pb2_grpc

from fitcore.auth import current_principal
from monolith.api.convert import ts
from monolith.domain.goal_checks import GoalChanges, NewGoal
from monolith.domain.goal_views import GoalView
from monolith.domain.goals import Goals


def goal(view: GoalView) -> goals_pb2.Goal:
    p = view.progress
    out = goals_pb2.Goal(
        id=view.id,
        kind=view.kind,
        target_value=view.target_value,
        unit=view.unit,
        target_date=view.target_date.isoformat(),
        exercise_id=view.exercise_id,
        exercise_name=view.exercise_name,
        status=view.status,
        progress=goals_pb2.GoalProgress(
            start_value=p.start_value,
            current_value=p.current_value,
            percent=p.percent,
            on_track=p.on_track,
            projected_date=p.projected_date.isoformat() if p.projected_date else "",
            basis=p.basis,
            data_points=p.data_points,
        ),
        primary=view.primary,
        created_at=ts(view.created_at),
        updated_at=ts(view.updated_at),
    )
    if view.achieved_at is not None:
        out.achieved_at.CopyFrom(ts(view.achieved_at))
    return out


class GoalServicer(goals_pb2_grpc.GoalServiceServicer):
    def __init__(self, goals: Goals) -> None:
        self._goals = goals

    def CreateGoal(
        self, request: goals_pb2.CreateGoalRequest, context: grpc.ServicerContext
    ) -> goals_pb2.CreateGoalResponse:
        view = self._goals.create_goal(
            current_principal().user_id,
            NewGoal(
                kind=request.kind,
                target_value=request.target_value,
                target_date=request.target_date,
                exercise_id=request.exercise_id,
            ),
        )
        return goals_pb2.CreateGoalResponse(goal=goal(view))

    def ListGoals(
        self, request: goals_pb2.ListGoalsRequest, context: grpc.ServicerContext
    ) -> goals_pb2.ListGoalsResponse:
        views = self._goals.list_goals(current_principal().user_id, request.status)
        return goals_pb2.ListGoalsResponse(goals=[goal(v) for v in views])

    def GetGoal(
        self, request: goals_pb2.GetGoalRequest, context: grpc.ServicerContext
    ) -> goals_pb2.GetGoalResponse:
        view = self._goals.get_goal(current_principal().user_id, request.goal_id)
        return goals_pb2.GetGoalResponse(goal=goal(view))

    def UpdateGoal(
        self, request: goals_pb2.UpdateGoalRequest, context: grpc.ServicerContext
    ) -> goals_pb2.UpdateGoalResponse:
        changes = GoalChanges(
            target_value=request.target_value.value if request.HasField("target_value") else None,
            target_date=request.target_date.value if request.HasField("target_date") else None,
        )
        view = self._goals.update_goal(current_principal().user_id, request.goal_id, changes)
        return goals_pb2.UpdateGoalResponse(goal=goal(view))

    def AbandonGoal(
        self, request: goals_pb2.AbandonGoalRequest, context: grpc.ServicerContext
    ) -> goals_pb2.AbandonGoalResponse:
        view = self._goals.abandon_goal(current_principal().user_id, request.goal_id)
        return goals_pb2.AbandonGoalResponse(goal=goal(view))
