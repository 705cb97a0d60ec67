"""Server-sent events at the edge: a JSON client that asks for `text/event-stream` gets a
server stream (WatchEvents) as SSE instead of newline-delimited JSON, and resumes the way
browsers' EventSource does, with the `Last-Event-ID` header.

Three pieces, all for the REST bindings of server-streaming RPCs in the contract:
- a route per binding that matches only requests accepting `text/event-stream` and carries a
  per-route transcoder configuration printing each message as `data: <json>\\n\\n` (Envoy's
  transcoder routes by the REST path first, reads its per-route configuration there, then
  re-routes by the gRPC path, where the stream's own route applies);
- a Lua filter before the transcoder that turns `Last-Event-ID: N` into the resume query
  parameter (unless the query already names one: the URL wins) and refuses an id that cannot
  be one (400);
- the same filter, on the way out, puts an `id:` line before each event, so EventSource
  remembers the last id and sends it back when it reconnects. The transcoder prints fields in
  field-number order and `id` is field 1, so each event starts with `data: {"id":"N"`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fitco.events.v1 import events_pb2

from fitedge.contract import EdgeRpc
from fitedge.params import EnvoyParams

# The request field a stream resumes after (WatchEventsRequest.after_event_id): read from the
# generated message, so a rename breaks here, not silently at the edge.
RESUME_PARAMETER = events_pb2.WatchEventsRequest.DESCRIPTOR.fields_by_name["after_event_id"].name
EVENT_STREAM = "text/event-stream"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
# Ids are stream sequences: decimal, at most 20 digits (the contract's max_length).
_MAX_ID_DIGITS = 20


def sse_rpcs(params: EnvoyParams) -> list[EdgeRpc]:
    """Server-streaming RPCs routed at the edge with a GET binding (a JSON client can open
    them with EventSource)."""
    return [
        rpc
        for rpc in params.contract.routable
        if rpc.server_streaming
        and not rpc.client_streaming
        and any(b.verb == "GET" for b in rpc.bindings)
    ]


def _path_regex(template: str) -> str:
    """A REST path template as an anchored RE2 pattern: a variable is one path segment."""
    parts = re.split(r"(\{[^}]*\})", template)
    return "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"


def sse_routes(
    params: EnvoyParams, actions: dict[str, dict[str, Any]], transcoder: dict[str, Any]
) -> list[dict[str, Any]]:
    """Routes on the REST paths of the SSE-capable RPCs, for clients accepting
    `text/event-stream`: the transcoder's per-route configuration prints SSE there. Their
    action is the RPC's own (`actions`, by gRPC path), in case a request is not re-routed."""
    sse = copy.deepcopy(transcoder)
    sse["print_options"]["stream_newline_delimited"] = False
    sse["print_options"]["stream_sse_style_delimited"] = True
    # Copies: a shared dict would be dumped as a YAML anchor and alias (valid, less readable).
    return [
        {
            "name": f"{rpc.name} (SSE)",
            "match": {
                "safe_regex": {"regex": _path_regex(b.template)},
                "headers": [{"name": "accept", "string_match": {"contains": EVENT_STREAM}}],
            },
            "route": copy.deepcopy(actions[rpc.path]),
            "typed_per_filter_config": {TRANSCODER: copy.deepcopy(sse)},
        }
        for rpc in sse_rpcs(params)
        for b in rpc.bindings
        if b.verb == "GET"
    ]


LUA_SSE = """local resume = "%PARAM%"
local paths = {%PATHS%}
function envoy_on_request(handle)
  local headers = handle:headers()
  local accept = headers:get("accept") or ""
  if not string.find(accept, "%EVENT_STREAM%", 1, true) then
    return
  end
  local path = headers:get(":path") or ""
  local bare = string.gsub(path, "%?.*$", "")
  local sse = false
  for _, p in ipairs(paths) do
    sse = sse or string.match(bare, p) ~= nil
  end
  if not sse then
    return
  end
  handle:streamInfo():dynamicMetadata():set("fitco.sse", "on", "yes")
  local last = headers:get("last-event-id")
  if last == nil or last == "" then
    return
  end
  local query = string.match(path, "%?(.*)$") or ""
  if string.find("&" .. query, "&" .. resume .. "=", 1, true) then
    return
  end
  if not string.match(last, "^%d+$") or string.len(last) > %MAX% then
    handle:respond({[":status"] = "400"}, "Last-Event-ID must be the id of an event")
    return
  end
  local sep = "?"
  if string.find(path, "?", 1, true) then
    sep = "&"
  end
  headers:replace(":path", path .. sep .. resume .. "=" .. last)
end
function envoy_on_response(handle)
  if not handle:streamInfo():dynamicMetadata():get("fitco.sse") then
    return
  end
  if not string.find(handle:headers():get("content-type") or "", "%EVENT_STREAM%", 1, true) then
    return
  end
  for chunk in handle:bodyChunks() do
    local data = chunk:getBytes(0, chunk:length())
    local out = string.gsub(data, 'data: {"id":"(%d+)"', 'id: %1\\ndata: {"id":"%1"')
    if out ~= data then
      chunk:setBytes(out)
    end
  end
end
"""


def lua_sse(params: EnvoyParams) -> str:
    patterns = [
        b.lua_pattern() for rpc in sse_rpcs(params) for b in rpc.bindings if b.verb == "GET"
    ]
    return (
        LUA_SSE.replace("%PATHS%", ", ".join(f'"{p}"' for p in patterns))
        .replace("%PARAM%", RESUME_PARAMETER)
        .replace("%EVENT_STREAM%", EVENT_STREAM)
        .replace("%MAX%", str(_MAX_ID_DIGITS))
    )
