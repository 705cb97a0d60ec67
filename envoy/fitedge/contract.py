"""The contract as the edge sees it: every RPC of the descriptor set Envoy transcodes with, its
access (read by fitcore.access, the one reader of the access option) and its HTTP bindings
(`google.api.http`).

What the renderer derives from it, so that no RPC, path or service name is written twice:
- one route per RPC routable at the edge (PUBLIC, USER, ADMIN), matching its exact gRPC path;
  INTERNAL RPCs get none, so Envoy answers 404 / UNIMPLEMENTED for them;
- jwt_authn rules per exact path (PUBLIC: no token needed, USER/ADMIN: a valid token);
- the REST paths and the HTTP methods each accepts, for 405 with `Allow`;
- the services the transcoder serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from fitcore.access import Access, access_of, method_path, service_names

# ./fit gen writes it; Envoy loads the same file (mounted in compose and Kubernetes).
DEFAULT_DESCRIPTOR_SET = Path(__file__).resolve().parents[2] / "gen" / "descriptors" / "fitco.binpb"
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class Binding:
    """One HTTP binding of an RPC: `GET /v1/exercises/{exercise_id}`."""

    verb: str
    template: str

    def lua_pattern(self) -> str:
        """The template as an anchored Lua pattern: a variable is one path segment."""
        out = []
        for part in re.split(r"(\{[^}]*\})", self.template):
            if part.startswith("{"):
                _, _, pattern = part[1:-1].partition("=")
                if pattern not in ("", "*"):
                    raise ValueError(f"unsupported path template {self.template!r}")
                out.append("[^/]+")
            else:
                out.append(re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", part))
        return "^" + "".join(out) + "$"


@dataclass(frozen=True, slots=True)
class EdgeRpc:
    service: str
    method: str
    access: Access
    bindings: tuple[Binding, ...]
    # Streams (long-lived: no route timeout, never retried by the edge).
    client_streaming: bool = False
    server_streaming: bool = False

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming

    @property
    def path(self) -> str:
        return method_path(self.service, self.method)

    @property
    def name(self) -> str:
        """Route name (shown in the access log)."""
        return f"{self.service}/{self.method}"


def _bindings(options: descriptor_pb2.MethodOptions) -> tuple[Binding, ...]:
    if not options.HasExtension(annotations_pb2.http):
        return ()
    rule = options.Extensions[annotations_pb2.http]
    out = []
    for r in (rule, *rule.additional_bindings):
        kind = r.WhichOneof("pattern")
        if kind in _VERBS:
            out.append(Binding(kind.upper(), getattr(r, kind)))
        elif kind == "custom":
            out.append(Binding(r.custom.kind.upper(), r.custom.path))
    return tuple(out)


@dataclass(frozen=True)
class Contract:
    rpcs: tuple[EdgeRpc, ...]

    @classmethod
    def of_file_set(cls, file_set: descriptor_pb2.FileDescriptorSet) -> Contract:
        return cls(
            tuple(
                EdgeRpc(
                    f"{f.package}.{s.name}" if f.package else s.name,
                    m.name,
                    access_of(m.options),
                    _bindings(m.options),
                    m.client_streaming,
                    m.server_streaming,
                )
                for f in file_set.file
                for s in f.service
                for m in s.method
            )
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_DESCRIPTOR_SET) -> Contract:
        return cls.of_file_set(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()))

    def __iter__(self) -> Iterator[EdgeRpc]:
        return iter(self.rpcs)

    @property
    def routable(self) -> list[EdgeRpc]:
        """RPCs served at the edge (PUBLIC, USER, ADMIN); INTERNAL and unannotated are not."""
        return [rpc for rpc in self.rpcs if rpc.access.at_edge]

    @property
    def services(self) -> list[str]:
        """Services with at least one RPC served at the edge (the transcoder's list)."""
        return list(dict.fromkeys(rpc.service for rpc in self.routable))

    def of_services(self, *modules: ModuleType) -> list[EdgeRpc]:
        """The routable RPCs of the services the generated `*_pb2` modules declare."""
        names = set(service_names(*modules))
        return [rpc for rpc in self.routable if rpc.service in names]

    def allowed_methods(self) -> list[tuple[str, list[str], list[str]]]:
        """Per REST path template (as a Lua pattern): the HTTP methods routed at the edge, and
        those bound only to RPCs that are not (INTERNAL: answered 404, never 405)."""
        routed: dict[str, set[str]] = {}
        hidden: dict[str, set[str]] = {}
        for rpc in self.rpcs:
            for b in rpc.bindings:
                pattern = b.lua_pattern()
                routed.setdefault(pattern, set())
                hidden.setdefault(pattern, set())
                (routed if rpc.access.at_edge else hidden)[pattern].add(b.verb)
        return [
            (pattern, sorted(routed[pattern]), sorted(hidden[pattern] - routed[pattern]))
            for pattern in routed
        ]
