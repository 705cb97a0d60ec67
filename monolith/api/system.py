"""fitco.system.v1.SystemService: the legacy `GET /health`."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from fitco.system.v1 import system_pb2, system_pb2_grpc

from fitcore.errors import Unavailable


class SystemServicer(system_pb2_grpc.SystemServiceServicer):
    def __init__(self, ready: Callable[[], bool], version: str) -> None:
        self._ready = ready
        self._version = version

    def GetHealth(
        self, request: system_pb2.GetHealthRequest, context: grpc.ServicerContext
    ) -> system_pb2.GetHealthResponse:
        if not self._ready():
            raise Unavailable("not ready: database unreachable or schema not current")
        return system_pb2.GetHealthResponse(status="UP", version=self._version)
