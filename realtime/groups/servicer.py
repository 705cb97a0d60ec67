"""fitco.groups.v1.GroupService: converts requests and answers, delegates to the domain
(`groups` for the REST RPCs, `session` for Connect). Database work runs in worker threads
(asyncio.to_thread), one transaction per RPC, so the event loop never waits on it.

Authentication and access (USER, from the contract) are done by the server's interceptor
before any of this runs, and the unary requests' field limits; Connect's requests are checked
one by one by the session.
"""

# ruff: noqa: N802 - servicer methods are named by the .proto

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from fitco.groups.v1 import groups_pb2, groups_pb2_grpc

from fitcore.auth import current_principal
from fitcore.timestamps import optional_datetime
from realtime.groups import convert
from realtime.groups.coach_client import CoachClient
from realtime.groups.groups import Groups
from realtime.groups.hub import Hub
from realtime.groups.session import Requests, Sessions

Context = grpc.aio.ServicerContext[Any, Any]


class GroupServicer(groups_pb2_grpc.GroupServiceServicer):
    def __init__(self, groups: Groups, sessions: Sessions, hub: Hub, coach: CoachClient) -> None:
        self._groups = groups
        self._sessions = sessions
        self._hub = hub
        self._coach = coach

    async def CreateGroup(
        self, request: groups_pb2.CreateGroupRequest, context: Context
    ) -> groups_pb2.CreateGroupResponse:
        principal = current_principal()
        new = self._groups.check_new(
            request.title,
            optional_datetime(request.starts_at, request.HasField("starts_at")),
            request.display_name,
        )
        # Before anything is written: without the coach, no group.
        wod = await self._coach.todays_wod(principal) if request.follow_wod else None
        view = await asyncio.to_thread(self._groups.create, principal.user_id, new, wod)
        return groups_pb2.CreateGroupResponse(group=convert.group(view))

    async def ListGroups(
        self, request: groups_pb2.ListGroupsRequest, context: Context
    ) -> groups_pb2.ListGroupsResponse:
        views = await asyncio.to_thread(self._groups.list_for, current_principal().user_id)
        return groups_pb2.ListGroupsResponse(groups=[convert.group(v) for v in views])

    async def GetGroup(
        self, request: groups_pb2.GetGroupRequest, context: Context
    ) -> groups_pb2.GetGroupResponse:
        view, members = await asyncio.to_thread(
            self._groups.get, current_principal().user_id, request.group_id
        )
        return groups_pb2.GetGroupResponse(
            group=convert.group(view), members=[convert.member(m) for m in members]
        )

    async def JoinGroup(
        self, request: groups_pb2.JoinGroupRequest, context: Context
    ) -> groups_pb2.JoinGroupResponse:
        view = await asyncio.to_thread(
            self._groups.join,
            current_principal().user_id,
            request.invitation_code,
            request.display_name,
        )
        return groups_pb2.JoinGroupResponse(group=convert.group(view))

    async def LeaveGroup(
        self, request: groups_pb2.LeaveGroupRequest, context: Context
    ) -> groups_pb2.LeaveGroupResponse:
        announced = await asyncio.to_thread(
            self._groups.leave, current_principal().user_id, request.group_id
        )
        if announced is not None:  # the member's open connection ends on it
            await self._hub.publish([announced], request.group_id)
        return groups_pb2.LeaveGroupResponse()

    async def ListGroupMessages(
        self, request: groups_pb2.ListGroupMessagesRequest, context: Context
    ) -> groups_pb2.ListGroupMessagesResponse:
        found = await asyncio.to_thread(
            self._groups.messages,
            current_principal().user_id,
            request.group_id,
            request.page_size,
            request.before_seq,
        )
        return groups_pb2.ListGroupMessagesResponse(messages=found)

    async def Connect(  # type: ignore[override]  # answers with context.write
        self, request_iterator: Requests, context: Context
    ) -> None:
        ending = await self._sessions.run(current_principal().user_id, request_iterator, context)
        if ending is not None and ending.error is not None:
            raise ending.error  # the server's interceptor answers it as a rich status
