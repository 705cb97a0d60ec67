"""In-process services beside the `monolith` fixture: a coach talking to it, a second monolith
on the same database (another replica), each on 127.0.0.1:0; and waiting for a call to fail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from fitco.coach.v1 import coach_pb2_grpc

from coach.app import Coach
from coach.app import build as build_coach
from monolith.app import build as build_monolith
from tests.conftest import Client, RunningMonolith, client_for, make_env


@dataclass
class RunningCoach:
    app: Coach
    channel: grpc.Channel
    coach: coach_pb2_grpc.CoachServiceStub


@contextmanager
def running_coach(monolith: RunningMonolith, **env: str) -> Iterator[RunningCoach]:
    url = str(monolith.app.db.engine.url.render_as_string(hide_password=False))
    app = build_coach(
        make_env(
            monolith.key_dir,
            url,
            FITCO_MONOLITH_TARGET=monolith.target,
            FITCO_COACH_GRACE_SECONDS="1",
            FITCO_COACH_READINESS_INTERVAL="0.5",
            **env,
        ),
        clock=monolith.clock,
        address="127.0.0.1:0",
    )
    app.service.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield RunningCoach(app, channel, coach_pb2_grpc.CoachServiceStub(channel))
    finally:
        channel.close()
        app.stop()


@contextmanager
def another_monolith(monolith: RunningMonolith) -> Iterator[Client]:
    """A second monolith process-alike on the same database: what a replica sees."""
    url = str(monolith.app.db.engine.url.render_as_string(hide_password=False))
    app = build_monolith(
        make_env(monolith.key_dir, url), clock=monolith.clock, address="127.0.0.1:0"
    )
    app.service.start()
    client = client_for(f"127.0.0.1:{app.port}")
    try:
        yield client
    finally:
        client.channel.close()
        app.stop()


def first_failure(
    call: Callable[[], Any], seconds: float, pause: float = 0.05
) -> tuple[grpc.Call, float]:
    """Call until the call fails: the failure and the seconds that took. Fails the test when
    the call still succeeds after `seconds` (a revoked token that keeps working)."""
    started = time.monotonic()
    while True:
        try:
            call()
        except grpc.RpcError as exc:
            return cast("grpc.Call", exc), time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            pytest.fail(f"still accepted after {elapsed:.2f} s")
        time.sleep(pause)
