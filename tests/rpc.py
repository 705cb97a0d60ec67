"""Helpers to assert on gRPC errors and their rich details."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def expect_error(code: grpc.StatusCode, call: Callable[[], Any]) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = cast("grpc.Call", info.value)
    assert err.code() == code, f"expected {code}, got {err.code()}: {err.details()}"
    return err


def field_violations(err: grpc.Call) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def error_reason(err: grpc.Call) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""
