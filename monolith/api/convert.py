"""Domain views to contract messages and back."""

from __future__ import annotations

from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2

from fitcore.timestamps import optional_datetime, timestamp
from monolith.domain.accounts import UserView
from monolith.domain.history import EntryView, ServedWodView, WodItemView
from monolith.domain.preferences import PreferencesView
from monolith.domain.profiles import MetricView, ProfileView

ts = timestamp
opt_time = optional_datetime


def user(view: UserView) -> user_pb2.User:
    return user_pb2.User(
        id=view.id,
        email=view.email,
        name=view.name,
        role=view.role,
        created_at=ts(view.created_at),
    )


def profile(view: ProfileView) -> user_pb2.Profile:
    return user_pb2.Profile(
        email=view.email,
        name=view.name,
        weight=view.weight,
        height=view.height,
        fitness_goal=view.fitness_goal,
        onboarded=view.onboarded,
        birth_year=view.birth_year,
        sex=view.sex,
        experience=view.experience,
        activity_level=view.activity_level,
        time_zone=view.time_zone,
    )


def metric(view: MetricView) -> user_pb2.BodyMetric:
    return user_pb2.BodyMetric(
        id=view.id,
        measured_at=ts(view.measured_at),
        weight_kg=view.weight_kg,
        body_fat_percent=view.body_fat_percent,
        waist_cm=view.waist_cm,
        resting_heart_rate=view.resting_heart_rate,
        note=view.note,
    )


def preferences(view: PreferencesView) -> user_pb2.Preferences:
    return user_pb2.Preferences(
        equipment=view.equipment,
        training_days_per_week=view.training_days_per_week,
        session_minutes=view.session_minutes,
        avoid_muscle_group_ids=view.avoid_muscle_group_ids,
    )


def entry(view: EntryView) -> history_pb2.HistoryEntry:
    return history_pb2.HistoryEntry(
        id=view.id,
        exercise_id=view.exercise_id,
        exercise_name=view.exercise_name,
        performed_at=ts(view.performed_at),
        day=view.day.isoformat(),
        sets=view.sets,
        reps=view.reps,
        weight_kg=view.weight_kg,
        duration_seconds=view.duration_seconds,
        note=view.note,
        source=view.source,
        wod_id=view.wod_id,
        rpe=view.rpe,
        session_id=view.session_id,
    )


def wod_item(item: WodItemView) -> history_pb2.WodItem:
    return history_pb2.WodItem(
        exercise_id=item.exercise_id,
        position=item.position,
        sets=item.sets,
        reps=item.reps,
        weight_kg=item.weight_kg,
        duration_seconds=item.duration_seconds,
        rest_seconds=item.rest_seconds,
        reason=item.reason,
    )


def served_wod(view: ServedWodView) -> history_pb2.ServedWod:
    return history_pb2.ServedWod(
        id=view.id,
        day=view.day.isoformat(),
        implementation=view.implementation,
        generated_at=ts(view.generated_at),
        items=[wod_item(i) for i in view.items],
        kind=view.kind,
        notes=list(view.notes),
        regenerations=view.regenerations,
    )


def wod_item_view(msg: history_pb2.WodItem, position: int) -> WodItemView:
    return WodItemView(
        exercise_id=msg.exercise_id,
        position=position,
        sets=msg.sets,
        reps=msg.reps,
        weight_kg=msg.weight_kg,
        duration_seconds=msg.duration_seconds,
        rest_seconds=msg.rest_seconds,
        reason=msg.reason,
    )
