"""Live group sessions (fitco.groups.v1.GroupService) inside the realtime service.

Groups, members and each group's recent messages live in the realtime service's own database
(REALTIME_DATABASE_URL; by default realtime.db in the data directory, never another service's),
made by its own migrations (`MIGRATIONS`, `python -m realtime migrate`). Messages go between
realtime instances over NATS (`hub`); the members' connections are served by `session`.

Configuration: REALTIME_GROUP_* (the limits: `limits.GroupLimits`), FITCO_COACH_TARGET and
REALTIME_COACH_DEADLINE_SECONDS (the coach, for groups that follow the owner's WOD).

`realtime.app` builds it with `build_groups`, registers it on its server, starts it once NATS
is connected and stops it before the server stops (each connected member is told).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from fitco.groups.v1 import groups_pb2_grpc
from nats.aio.client import Client as Nats

from fitcore.clock import Clock
from fitcore.config import Env
from fitcore.db import Database, database_url_from_env, open_database
from realtime.groups.coach_client import DEFAULT_TARGET, CoachClient
from realtime.groups.groups import Groups
from realtime.groups.hub import Hub
from realtime.groups.limits import GroupLimits
from realtime.groups.live_store import LiveStore
from realtime.groups.servicer import GroupServicer
from realtime.groups.session import Sessions
from realtime.migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "GroupsFeature", "build_groups", "database_url"]

log = logging.getLogger("realtime.groups")


def database_url(env: Env) -> str:
    """REALTIME_DATABASE_URL (default: realtime.db in the data directory). The password may
    come from a mounted secret file instead of the URL: FITCO_REALTIME_DATABASE_PASSWORD_FILE."""
    return database_url_from_env(
        env, "REALTIME_DATABASE_URL", "FITCO_REALTIME_DATABASE_PASSWORD_FILE", "realtime.db"
    )


@dataclass
class GroupsFeature:
    database: Database
    head: str
    limits: GroupLimits
    groups: Groups
    live: LiveStore
    hub: Hub
    coach: CoachClient
    servicer: GroupServicer

    def register(self, server: grpc.aio.Server) -> None:
        groups_pb2_grpc.add_GroupServiceServicer_to_server(self.servicer, server)

    def ready(self) -> bool:
        """Serving when the database answers at the current schema."""
        return self.database.ping() and MIGRATIONS.current_revision(self.database.engine) == (
            self.head
        )

    async def start(self) -> None:
        """Take sets from the bus and vouch for connections (NATS must be connected)."""
        await self.hub.start()

    async def close_streams(self, grace_seconds: float = 5.0) -> None:
        """End every connection (announced to the others as DROPPED; the members get
        UNAVAILABLE and reconnect, to another instance) and refuse new ones: the server's
        `close_streams` hook, while NATS and the database are still there."""
        await self.hub.stop(grace_seconds)

    async def stop(self) -> None:
        """Close the streams (if not yet), then release the coach channel and the database."""
        await self.hub.stop()
        await self.coach.close()
        self.database.dispose()


def build_groups(env: Env, *, nc: Nats, clock: Clock) -> GroupsFeature:
    """The group sessions, not started yet; `nc`: the instance's NATS connection."""
    limits = GroupLimits.from_env(env)
    db, head = open_database(env, database_url(env), MIGRATIONS, log)
    groups = Groups(db, clock, limits)
    live = LiveStore(db, clock, limits)
    hub = Hub(nc, live, limits.presence_seconds)
    coach = CoachClient(
        env.get_str("FITCO_COACH_TARGET", DEFAULT_TARGET),
        env.get_float("REALTIME_COACH_DEADLINE_SECONDS", 5.0),
    )
    servicer = GroupServicer(groups, Sessions(live, hub, limits), hub, coach)
    return GroupsFeature(db, head, limits, groups, live, hub, coach, servicer)
