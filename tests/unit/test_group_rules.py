"""The rules of group sessions that need no server: the rate limiter (5/s, bursts of 10,
flooding), the limits from the environment, invitation codes, a new group's checks, what
chat and cue requests become (owner-only cues, the WOD's exercise names)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fitco.groups.v1 import groups_pb2

from fitcore.config import ConfigError, Env
from fitcore.errors import InvalidArgument
from fitcore.validation import check_request
from realtime.groups.groups import CODE_ALPHABET, check_new, new_code
from realtime.groups.limits import GroupLimits, RateLimiter, TokenBucket
from realtime.groups.live_store import Joined
from realtime.groups.posts import INVALID_ARGUMENT, OWNER_ONLY, Refused, message_of
from realtime.groups.views import GroupView, Wod, WodExercise

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(5.0, 10, clock)
    assert [bucket.take() for _ in range(11)] == [True] * 10 + [False]
    clock.at += 0.2  # one token a fifth of a second
    assert bucket.take()
    assert not bucket.take()
    clock.at += 1.0
    assert sum(bucket.take() for _ in range(10)) == 5
    clock.at += 60  # never more than the burst, however long the pause
    assert sum(bucket.take() for _ in range(20)) == 10


def test_flooding_is_twenty_refusals_within_ten_seconds() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(GroupLimits(), clock)
    for _ in range(10):
        assert limiter.allow()
    for _ in range(19):
        assert not limiter.allow()
    assert not limiter.flooding
    clock.at += 10.5  # the refusals age out of the window (and the bucket refills)
    for _ in range(10):
        assert limiter.allow()
    for _ in range(19):
        assert not limiter.allow()
    assert not limiter.flooding
    assert not limiter.allow()
    assert limiter.flooding


def test_a_member_within_the_rate_is_never_refused() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(GroupLimits(), clock)
    for _ in range(200):  # 5 a second for 40 s
        clock.at += 0.2
        assert limiter.allow()
    assert not limiter.flooding


def test_limits_from_the_environment() -> None:
    assert GroupLimits.from_env(Env({})) == GroupLimits()
    limits = GroupLimits.from_env(
        Env({"REALTIME_GROUP_IDLE_SECONDS": "1.5", "REALTIME_GROUP_MAX_MEMBERS": "3"})
    )
    assert (limits.idle_seconds, limits.max_members, limits.burst) == (1.5, 3, 10)
    with pytest.raises(ConfigError, match="REALTIME_GROUP_BURST"):
        GroupLimits.from_env(Env({"REALTIME_GROUP_BURST": "0"}))
    with pytest.raises(ConfigError, match="WELCOME"):
        GroupLimits.from_env(Env({"REALTIME_GROUP_WELCOME_MESSAGES": "501"}))


def test_invitation_codes_are_random_and_match_the_contract() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", code)
        check_request(groups_pb2.JoinGroupRequest(invitation_code=code))  # what joining takes
        assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    # Every symbol of the alphabet shows up: drawn from all of it, not a fixed subset.
    assert set("".join(codes).replace("-", "")) == set(CODE_ALPHABET)


def test_a_new_group_starts_between_now_and_thirty_days() -> None:
    new = check_new("  Lunch lifts ", None, " Olga ", NOW)
    assert (new.title, new.starts_at, new.display_name) == ("Lunch lifts", NOW, "Olga")
    assert check_new("t", NOW - timedelta(seconds=59), "", NOW).starts_at < NOW
    assert check_new("t", NOW + timedelta(days=30), "", NOW)
    with pytest.raises(InvalidArgument) as past:
        check_new("t", NOW - timedelta(minutes=2), "", NOW)
    assert [v.field for v in past.value.violations] == ["starts_at"]
    with pytest.raises(InvalidArgument) as far:
        check_new("   ", NOW + timedelta(days=31), "", NOW)
    assert sorted(v.field for v in far.value.violations) == ["starts_at", "title"]


def _joined(is_owner: bool, exercises: int | None) -> Joined:
    wod = (
        None
        if exercises is None
        else Wod(
            "2026-11-20",
            tuple(WodExercise(i + 1, f"Exercise {i}", 3, 10, 20.0, 0) for i in range(exercises)),
        )
    )
    group = GroupView(1, "G", 7, NOW, "C", 2, 20, wod, NOW, "OWNER" if is_owner else "MEMBER")
    return Joined(group, [], [], [], "Olga", is_owner)


def _cue(index: int, text: str = "") -> groups_pb2.ConnectRequest:
    return groups_pb2.ConnectRequest(cue=groups_pb2.Cue(exercise_index=index, text=text))


def test_cues_name_the_wods_exercise_and_are_the_owners() -> None:
    owner = _joined(True, exercises=3)
    cue = message_of(_cue(2, "last one"), owner)
    assert cue.type == "CUE"
    assert (cue.cue.exercise_index, cue.cue.exercise_name, cue.cue.text) == (
        2,
        "Exercise 2",
        "last one",
    )
    free = message_of(_cue(-1, "water break"), owner)
    assert (free.cue.exercise_index, free.cue.exercise_name) == (-1, "")
    with pytest.raises(Refused) as not_owner:
        message_of(_cue(0), _joined(False, exercises=3))
    assert not_owner.value.reason == OWNER_ONLY
    for request, joined in (
        (_cue(3), owner),  # beyond the WOD
        (_cue(0, "go"), _joined(True, exercises=None)),  # no WOD to point into
        (_cue(-1, "  "), owner),  # nothing to say
    ):
        with pytest.raises(Refused) as refused:
            message_of(request, joined)
        assert refused.value.reason == INVALID_ARGUMENT


def test_chat_is_kept_as_sent_and_must_say_something() -> None:
    joined = _joined(False, exercises=None)
    chat = message_of(groups_pb2.ConnectRequest(chat=groups_pb2.Chat(text=" hi! ")), joined)
    assert (chat.type, chat.chat.text) == ("CHAT", " hi! ")
    with pytest.raises(Refused) as blank:
        message_of(groups_pb2.ConnectRequest(chat=groups_pb2.Chat(text=" \t")), joined)
    assert blank.value.reason == INVALID_ARGUMENT
    with pytest.raises(Refused):
        message_of(groups_pb2.ConnectRequest(), joined)
