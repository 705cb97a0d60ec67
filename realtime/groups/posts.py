"""What a connected member sends (chat, cues) as the group message to store, or why not.

The contract's field limits (texts up to 500 characters, the cue's index range) are checked
before, by fitcore.validation; here: a blank chat, the owner-only cue, and a cue's index
within the group's WOD (its exercise name filled in from the WOD).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fitco.groups.v1 import groups_pb2

from realtime.groups import messages
from realtime.groups.live_store import Joined
from realtime.groups.messages import GroupMessage

# Rejected.reason values.
RATE_LIMITED, OWNER_ONLY = "RATE_LIMITED", "OWNER_ONLY"
INVALID_ARGUMENT, ALREADY_CONNECTED = "INVALID_ARGUMENT", "ALREADY_CONNECTED"


class Refused(Exception):
    """The request is not accepted: answered with a Rejected of `reason`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def message_of(request: groups_pb2.ConnectRequest, joined: Joined) -> GroupMessage:
    """The message a chat or cue request makes (its seq, time and sender are set when it is
    stored). Raises Refused."""
    kind = request.WhichOneof("kind")
    # Time, sender and name are stamped by the store, under the group's lock.
    out = messages.new_message("", 0, "", datetime.now(UTC))
    if kind == "chat":
        if not request.chat.text.strip():
            raise Refused(INVALID_ARGUMENT, "chat.text: must not be blank")
        out.type = messages.CHAT
        out.chat.CopyFrom(request.chat)
        return out
    if kind == "cue":
        out.type = messages.CUE
        out.cue.CopyFrom(cue_of(request.cue, joined))
        return out
    raise Refused(INVALID_ARGUMENT, "send chat, cue, ping or leave")


def cue_of(cue: groups_pb2.Cue, joined: Joined) -> groups_pb2.Cue:
    if not joined.is_owner:
        raise Refused(OWNER_ONLY, "only the group's owner gives cues")
    index = cue.exercise_index
    if index < 0:
        if not cue.text.strip():
            raise Refused(INVALID_ARGUMENT, "cue.text: is required without an exercise")
        return groups_pb2.Cue(exercise_index=-1, text=cue.text)
    exercises = joined.group.wod.exercises if joined.group.wod is not None else ()
    if index >= len(exercises):
        raise Refused(
            INVALID_ARGUMENT,
            f"cue.exercise_index: the group's WOD has {len(exercises)} exercises "
            "(-1: a cue with text only)",
        )
    return groups_pb2.Cue(exercise_index=index, text=cue.text, exercise_name=exercises[index].name)
