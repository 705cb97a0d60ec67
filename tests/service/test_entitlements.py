"""Entitlements enforced by the server, with the real billing service in process (users pay
with the provider double's good card) beside a monolith and a coach that ask it, on SQLite and
PostgreSQL: the WOD's size (6 free, 9 premium) in both implementations, the top-up of today's
WOD within seconds of an upgrade, premium regenerations (3 a day, never yesterday's exercises,
recorded), the nutrition plan's meal split, statistics beyond 4 weeks, and the free plan when
billing cannot be asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from fitco.coach.v1 import coach_pb2
from fitco.history.v1 import history_pb2
from fitco.nutrition.v1 import nutrition_pb2, nutrition_pb2_grpc
from fitco.training.v1 import training_pb2, training_pb2_grpc
from fitco.user.v1 import user_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.wrappers_pb2 import Int32Value, StringValue
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from coach.meals import FREE_PLAN_NOTE
from fitcore.clock import FixedClock
from tests.conftest import (
    Client,
    RunningMonolith,
    UserSession,
    make_env,
    onboard,
    register,
    running_monolith,
)
from tests.rpc import error_reason, expect_error
from tests.service.inproc import RunningCoach, running_coach
from tests.service.premium import (
    RunningBilling,
    billing_address,
    billing_database,  # noqa: F401 - the premium_billing_url fixture
    running_billing,
)

T = TypeVar("T")
TTL = "0.5"  # FITCO_ENTITLEMENTS_TTL_SECONDS here: a payment shows within half a second
BENCH, SQUATS = 1, 16


@dataclass
class Mesh:
    m: RunningMonolith
    billing: RunningBilling
    coach: RunningCoach

    @property
    def c(self) -> Client:
        return self.m.client

    def user(self, premium: bool = False) -> UserSession:
        user = register(self.c)
        onboard(self.c, user)
        if premium:
            self.billing.upgrade(user)
        return user

    def coach_wod(self, user: UserSession) -> coach_pb2.GetWodResponse:
        return self.coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)

    def legacy_wod(self, user: UserSession) -> coach_pb2.GetWodResponse:
        return self.c.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md)

    def served(self, user: UserSession, day: str) -> history_pb2.ServedWod:
        return self.c.history.GetServedWod(
            history_pb2.GetServedWodRequest(day=day), metadata=user.md
        ).wod

    def log(self, user: UserSession, exercise_id: int, ago: timedelta, **kw: float) -> None:
        at = timestamp_pb2.Timestamp()
        at.FromDatetime(self.m.clock.now() - ago)
        self.c.history.RecordExercise(
            history_pb2.RecordExerciseRequest(
                exercise_id=exercise_id,
                sets=int(kw.get("sets", 3)),
                reps=int(kw.get("reps", 10)),
                weight_kg=kw.get("kg", 0.0),
                performed_at=at,
            ),
            metadata=user.md,
        )

    def yesterday(self, user: UserSession) -> set[int]:
        """Yesterday's served WOD (legacy, random) and two logged exercises: their ids."""
        clock = self.m.clock
        clock.at -= timedelta(days=1)
        try:
            ids = {e.id for e in self.legacy_wod(user).exercises}
        finally:
            clock.at += timedelta(days=1)
        self.log(user, BENCH, timedelta(days=1), kg=60)
        self.log(user, SQUATS, timedelta(days=1), kg=80)
        return ids | {BENCH, SQUATS}


@pytest.fixture
def mesh(
    migrated_url: str, key_dir: Path, clock: FixedClock, premium_billing_url: str
) -> Iterator[Mesh]:
    """A monolith and a coach asking billing at `address`, and billing there."""
    address = billing_address()
    env = make_env(
        key_dir,
        migrated_url,
        FITCO_BILLING_TARGET=address,
        FITCO_ENTITLEMENTS_TTL_SECONDS=TTL,
    )
    with (
        running_monolith(env, clock, key_dir) as m,
        running_billing(m, premium_billing_url, address) as billing,
        running_coach(m, FITCO_BILLING_TARGET=address, FITCO_ENTITLEMENTS_TTL_SECONDS=TTL) as coach,
    ):
        yield Mesh(m, billing, coach)


def eventually(call: Callable[[], T], done: Callable[[T], bool], seconds: float = 5.0) -> T:
    deadline = time.monotonic() + seconds
    while True:
        out = call()
        if done(out):
            return out
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {out}")
        time.sleep(0.05)


def _ids(wod: coach_pb2.GetWodResponse) -> list[int]:
    return [e.id for e in wod.exercises]


def _retry_after(err: grpc.Call) -> float:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    raise AssertionError("no RetryInfo")


def test_the_wod_has_6_exercises_free_and_9_premium_in_both_implementations(
    mesh: Mesh,
) -> None:
    assert len(mesh.coach_wod(mesh.user()).exercises) == 6
    assert len(mesh.coach_wod(mesh.user(premium=True)).exercises) == 9
    assert len(mesh.legacy_wod(mesh.user()).exercises) == 6
    premium = mesh.user(premium=True)
    wod = mesh.legacy_wod(premium)
    assert len(set(_ids(wod))) == 9
    # Recorded: the other implementation serves the same 9.
    assert _ids(mesh.coach_wod(premium)) == _ids(wod)


def test_an_upgrade_tops_the_coachs_wod_up_within_seconds(mesh: Mesh) -> None:
    user = mesh.user()
    yesterday = mesh.yesterday(user)
    before = mesh.coach_wod(user)
    assert len(before.exercises) == 6 and mesh.coach_wod(user) == before  # cached
    mesh.billing.upgrade(user)
    paid = time.monotonic()
    after = eventually(lambda: mesh.coach_wod(user), lambda w: len(w.exercises) == 9)
    assert time.monotonic() - paid < float(TTL) + 2  # no waiting for a token to expire
    assert _ids(after)[:6] == _ids(before)  # appended, the served ones kept
    assert len(set(_ids(after))) == 9 and not set(_ids(after)) & yesterday
    served = mesh.served(user, after.day)
    assert [i.exercise_id for i in served.items] == _ids(after)  # recorded
    assert _ids(mesh.legacy_wod(user)) == _ids(after)  # so every implementation serves it


def test_concurrent_top_ups_by_both_implementations_append_once(mesh: Mesh) -> None:
    user = mesh.user()
    before = _ids(mesh.legacy_wod(user))
    mesh.billing.upgrade(user)
    time.sleep(float(TTL))  # both processes now know the plan
    calls = [mesh.legacy_wod, mesh.coach_wod] * 3
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = [_ids(w) for w in pool.map(lambda call: call(user), calls)]
    assert all(ids == answers[0] for ids in answers)
    assert len(answers[0]) == 9 and answers[0][:6] == before
    served = mesh.served(user, mesh.legacy_wod(user).day)
    assert [i.exercise_id for i in served.items] == answers[0]


def test_an_upgrade_tops_the_legacy_wod_up_too(mesh: Mesh) -> None:
    user = mesh.user()
    yesterday = mesh.yesterday(user)
    before = mesh.legacy_wod(user)
    mesh.billing.upgrade(user)
    after = eventually(lambda: mesh.legacy_wod(user), lambda w: len(w.exercises) == 9)
    assert _ids(after)[:6] == _ids(before)
    assert len(set(_ids(after))) == 9 and not set(_ids(after)) & yesterday
    assert _ids(mesh.coach_wod(user)) == _ids(after)


def test_premium_regenerates_three_times_a_day_never_yesterdays(mesh: Mesh) -> None:
    user = mesh.user(premium=True)
    yesterday = mesh.yesterday(user)
    first = mesh.coach_wod(user)
    mesh.log(user, 40, timedelta(minutes=5))  # done today: stays through regenerations
    seen = [_ids(first)]
    for left in (2, 1, 0):
        resp = mesh.coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md)
        ids = _ids(resp.wod)
        assert resp.regenerations_left == left and resp.wod.implementation == "coach"
        assert len(set(ids)) == 9 and not set(ids) & yesterday
        assert not set(ids) & set(seen[-1])  # another workout, not a reshuffle
        served = mesh.served(user, resp.wod.day)
        assert served.regenerations == 3 - left
        assert [i.exercise_id for i in served.items] == ids
        assert mesh.coach_wod(user) == resp.wod  # the coach's caches follow
        seen.append(ids)
    entries = mesh.c.history.ListExercisesOnDay(
        history_pb2.ListExercisesOnDayRequest(day=first.day), metadata=user.md
    ).entries
    # The replaced WODs left the history (never trained); what was logged stays.
    assert sorted(e.exercise_id for e in entries if e.source == "wod") == sorted(seen[-1])
    assert [e.exercise_id for e in entries if e.source == "logged"] == [40]
    err = expect_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: mesh.coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md),
    )
    assert error_reason(err) == "REGENERATION_LIMIT"
    assert _retry_after(err) == 14.5 * 3600  # 09:30 UTC: the user's next day, at midnight
    assert _ids(mesh.legacy_wod(user)) == seen[-1]
    # Tomorrow brings three more.
    mesh.m.clock.at += timedelta(days=1)
    again = mesh.coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md)
    assert again.regenerations_left == 2 and not set(_ids(again.wod)) & set(seen[-1])


def test_regenerations_through_the_legacy_implementation_count_the_same(mesh: Mesh) -> None:
    user = mesh.user(premium=True)
    yesterday = mesh.yesterday(user)
    first = mesh.legacy_wod(user)
    one = mesh.c.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md)
    assert one.regenerations_left == 2 and one.wod.implementation == "legacy"
    assert len(one.wod.exercises) == 9 and not set(_ids(one.wod)) & (yesterday | set(_ids(first)))
    two = mesh.coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md)
    assert two.regenerations_left == 1
    three = mesh.c.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md)
    assert three.regenerations_left == 0 and not set(_ids(three.wod)) & yesterday
    err = expect_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: mesh.c.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md),
    )
    assert error_reason(err) == "REGENERATION_LIMIT"
    assert [i.exercise_id for i in mesh.served(user, three.wod.day).items] == _ids(three.wod)


def test_free_users_cannot_regenerate(mesh: Mesh) -> None:
    user = mesh.user()
    wod = mesh.coach_wod(user)
    for stub in (mesh.coach.coach, mesh.c.coach):
        err = expect_error(
            grpc.StatusCode.PERMISSION_DENIED,
            lambda stub=stub: stub.RegenerateWod(  # type: ignore[misc]
                coach_pb2.RegenerateWodRequest(), metadata=user.md
            ),
        )
        assert error_reason(err) == "PREMIUM_REQUIRED"
        assert "premium" in (err.details() or "")
    served = mesh.served(user, wod.day)
    assert served.regenerations == 0 and [i.exercise_id for i in served.items] == _ids(wod)


def test_a_cancelled_subscription_gives_6_exercises_again(mesh: Mesh) -> None:
    user = mesh.user(premium=True)
    assert len(mesh.coach_wod(user).exercises) == 9
    mesh.billing.cancel(user)
    time.sleep(float(TTL))
    # Today's WOD was served with 9: it stays. Tomorrow's has 6, in both implementations.
    assert len(mesh.coach_wod(user).exercises) == 9
    mesh.m.clock.at += timedelta(days=1)
    assert len(mesh.coach_wod(user).exercises) == 6
    assert len(mesh.legacy_wod(user).exercises) == 6
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: mesh.coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md),
    )


def test_the_meal_split_and_day_targets_are_premium(mesh: Mesh) -> None:
    user = mesh.user()
    mesh.c.users.UpdateProfile(
        user_pb2.UpdateProfileRequest(
            birth_year=Int32Value(value=1996), sex=StringValue(value="female")
        ),
        metadata=user.md,
    )
    nutrition = nutrition_pb2_grpc.NutritionServiceStub(mesh.coach.channel)

    def plan() -> nutrition_pb2.GetNutritionResponse:
        return nutrition.GetNutrition(nutrition_pb2.GetNutritionRequest(), metadata=user.md)

    free = plan()
    assert free.target_kcal > 0 and free.protein_g > 0  # the daily targets
    assert not free.meals and not free.HasField("training_day") and not free.HasField("rest_day")
    assert FREE_PLAN_NOTE in free.notes
    assert not [
        c
        for c in free.calculations
        if c.quantity.startswith(("training_day.", "rest_day.", "meals"))
    ]
    mesh.billing.upgrade(user)
    paid = eventually(plan, lambda p: bool(p.meals))
    assert [m.name for m in paid.meals] == ["breakfast", "lunch", "snack", "dinner"]
    assert sum(m.share for m in paid.meals) == pytest.approx(1.0)
    totals = [sum(getattr(m, f) for m in paid.meals) for f in ("kcal", "protein_g", "fat_g")]
    assert totals == [paid.target_kcal, paid.protein_g, paid.fat_g]
    assert sum(m.carbs_g for m in paid.meals) == paid.carbs_g
    assert paid.HasField("training_day") and paid.HasField("rest_day")
    assert FREE_PLAN_NOTE not in paid.notes
    assert any(c.quantity == "meals" and "product rule" in c.source for c in paid.calculations)


def test_statistics_reach_back_4_weeks_free_and_further_premium(mesh: Mesh) -> None:
    user = mesh.user()
    stats = training_pb2_grpc.TrainingServiceStub(mesh.c.channel)
    mesh.log(user, BENCH, timedelta(days=60), sets=1, reps=3, kg=100)  # e1RM 110
    mesh.log(user, BENCH, timedelta(days=10), sets=1, reps=5, kg=80)  # e1RM 93.3

    def year() -> training_pb2.GetStatsResponse:
        return stats.GetStats(training_pb2.GetStatsRequest(period="YEAR"), metadata=user.md)

    free = year()
    assert (free.start_day, free.end_day, free.history_limited_to_weeks) == (
        "2026-10-24",
        "2026-11-20",
        4,
    )
    assert [(r.exercise_id, r.estimated_1rm_kg) for r in free.personal_records] == [(BENCH, 93.3)]
    mesh.billing.upgrade(user)
    paid = eventually(year, lambda s: s.history_limited_to_weeks == 0)
    assert paid.start_day == "2026-01-01"
    assert [(r.exercise_id, r.estimated_1rm_kg) for r in paid.personal_records] == [(BENCH, 110.0)]


def test_without_billing_everyone_has_the_free_plan(
    monolith: RunningMonolith, premium_billing_url: str
) -> None:
    """Billing down (the `monolith` fixture and the coach ask an address nobody listens on):
    the free allowance, never an error; counted in fitco_entitlements_fallback_total."""

    def fallbacks() -> float:
        return (
            REGISTRY.get_sample_value(
                "fitco_entitlements_fallback_total", {"reason": "UNAVAILABLE"}
            )
            or 0.0
        )

    before = fallbacks()
    user = register(monolith.client)
    onboard(monolith.client, user)
    with running_coach(monolith) as coach:
        assert len(coach.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md).exercises) == 6
        err = expect_error(
            grpc.StatusCode.PERMISSION_DENIED,
            lambda: coach.coach.RegenerateWod(coach_pb2.RegenerateWodRequest(), metadata=user.md),
        )
        assert error_reason(err) == "PREMIUM_REQUIRED"
        assert "could not be checked" in (err.details() or "")
    assert (
        len(monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=user.md).exercises)
        == 6
    )
    assert fallbacks() >= before + 2  # the coach's and the monolith's
