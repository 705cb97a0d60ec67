"""The event bus: NATS with JetStream (adr/10-real-time.md).

One JetStream stream, FITCO_EVENTS, is the per-user event log behind
fitco.events.v1.EventService: subject `fitco.events.user.<user id>`, at least the last 1,000
events per user kept (and, beyond those, nothing older than 7 days), an event's id being its
stream sequence. The stream republishes every stored event to `fitco.live.events.user.<id>`
(core NATS, headers carry the sequence), which each realtime instance subscribes to once and
fans out to its local watchers: an event produced by any service instance reaches a watcher on
any realtime instance, and a watcher that resumes reads what it missed from the stream.

Core subjects (not stored) carry what only live sessions need:
`fitco.activity.user.<id>` (a logged set, for group sessions) and `fitco.groups.<group id>`
(a group's messages between realtime instances).

Producers publish with `Nats-Msg-Id` set to a stable id of the change (their outbox row):
JetStream drops a duplicate within the duplicate window, so a retried publish is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from fitcore.config import ConfigError, Env

EVENTS_STREAM = "FITCO_EVENTS"
EVENTS_SUBJECT_PREFIX = "fitco.events.user."
LIVE_EVENTS_PREFIX = "fitco.live.events.user."
ACTIVITY_PREFIX = "fitco.activity.user."
GROUPS_PREFIX = "fitco.groups."

# Retention: an event is dropped only when 1,000 newer events of the same user exist, or when
# it is older than 7 days (and then it was kept for more than the 24 hours promised).
EVENTS_PER_USER = 1000
EVENTS_MAX_AGE = timedelta(days=7)
# A producer retrying a publish within this window is stored once (Nats-Msg-Id).
DUPLICATE_WINDOW = timedelta(hours=1)
# Largest event accepted (a serialized fitco.events.v1.WatchEventsResponse is ~100 bytes).
EVENT_MAX_BYTES = 4096

# Headers JetStream's republish adds (https://docs.nats.io/nats-concepts/jetstream/streams).
SEQUENCE_HEADER = "Nats-Sequence"
# The sequence of the previous stored message of the same subject (0 for the first).
LAST_SEQUENCE_HEADER = "Nats-Last-Sequence"
MSG_ID_HEADER = "Nats-Msg-Id"
# Header of an activity message, and the activity of a logged set (read by realtime/groups).
ACTIVITY_HEADER: Final = "Fitco-Activity"
SET_LOGGED: Final = "SET_LOGGED"
# JetStream: "stream name already in use with a different configuration".
STREAM_NAME_IN_USE: Final = 10058

DEFAULT_URL = "nats://127.0.0.1:4222"


def events_subject(user_id: int) -> str:
    return f"{EVENTS_SUBJECT_PREFIX}{user_id}"


def live_events_subject(user_id: int) -> str:
    return f"{LIVE_EVENTS_PREFIX}{user_id}"


def activity_subject(user_id: int) -> str:
    return f"{ACTIVITY_PREFIX}{user_id}"


def group_subject(group_id: int) -> str:
    return f"{GROUPS_PREFIX}{group_id}"


def user_of_subject(subject: str, prefix: str) -> int | None:
    """The user id at the end of `prefix<id>`, or None for anything else."""
    if not subject.startswith(prefix):
        return None
    tail = subject[len(prefix) :]
    return int(tail) if tail.isdigit() and len(tail) <= 19 else None


@dataclass(frozen=True)
class BusSettings:
    """Where the bus is: `FITCO_NATS_URL` (comma-separated servers of one cluster)."""

    servers: tuple[str, ...]
    # Name shown by the NATS server's monitoring for this connection.
    name: str

    @classmethod
    def from_env(cls, env: Env, name: str) -> BusSettings:
        raw = env.get_str("FITCO_NATS_URL", DEFAULT_URL)
        servers = tuple(s.strip() for s in raw.split(",") if s.strip())
        if not servers or not all(s.startswith(("nats://", "tls://")) for s in servers):
            raise ConfigError(f"FITCO_NATS_URL must be nats:// or tls:// URLs, got {raw!r}")
        return cls(servers=servers, name=name)


def events_stream_config() -> api.StreamConfig:
    """The FITCO_EVENTS stream, created or updated at start-up by every service that uses it
    (ensure_events_stream)."""
    return api.StreamConfig(
        name=EVENTS_STREAM,
        subjects=[f"{EVENTS_SUBJECT_PREFIX}*"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_msgs_per_subject=EVENTS_PER_USER,
        max_age=EVENTS_MAX_AGE.total_seconds(),
        max_msg_size=EVENT_MAX_BYTES,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        allow_direct=True,
        republish=api.RePublish(
            src=f"{EVENTS_SUBJECT_PREFIX}>", dest=f"{LIVE_EVENTS_PREFIX}>", headers_only=False
        ),
    )


async def ensure_events_stream(js: JetStreamContext) -> None:
    """Create the FITCO_EVENTS stream, or bring an existing one to `events_stream_config()`.
    Idempotent, and safe when another process does the same at the same moment."""
    config = events_stream_config()
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)
