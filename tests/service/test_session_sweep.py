"""The monolith closes workout sessions left open by users who never come back: its periodic
sweep (FITCO_SESSION_SWEEP_SECONDS) ends them with what was logged, without any request of
theirs. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from fitco.training.v1 import training_pb2, training_pb2_grpc

from monolith.models import WorkoutSessionRow
from tests.conftest import RunningMonolith, onboard, register


def test_the_sweep_closes_sessions_left_open(monolith: RunningMonolith) -> None:
    training = training_pb2_grpc.TrainingServiceStub(monolith.client.channel)
    user = register(monolith.client)
    onboard(monolith.client, user)
    session = training.StartSession(training_pb2.StartSessionRequest(), metadata=user.md).session
    training.LogSet(
        training_pb2.LogSetRequest(
            session_id=session.id, exercise_id=1, reps=8, weight=50, client_set_id="s1"
        ),
        metadata=user.md,
    )
    monolith.app.session_sweep.run_once()  # not stale yet: left alone
    with monolith.app.db.transaction(write=False) as s:
        row = s.get(WorkoutSessionRow, session.id)
        assert row is not None and row.status == "ACTIVE"
    monolith.clock.at += timedelta(hours=5)
    monolith.app.session_sweep.run_once()
    with monolith.app.db.transaction(write=False) as s:
        row = s.get(WorkoutSessionRow, session.id)
        assert row is not None
        assert (row.status, row.auto_closed, row.set_count) == ("ENDED", True, 1)
