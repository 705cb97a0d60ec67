"""Who may call each RPC: the access table, read from the contracts.

Every RPC of every fitco service declares its access with the `(fitco.access.v1.access)` method
option (`proto/fitco/access/v1/access.proto`). This module is the one reader of that option:
the services' interceptor builds its policy from the generated modules' descriptors
(`AccessTable.of_modules`), the Envoy renderer (`envoy/fitedge`) from the descriptor set Envoy
loads (`AccessTable.of_file_set`). Nothing else lists RPCs, their access or service names.

Fail closed: an RPC without the option, an access value this code does not know, and a method
the table has never heard of are all `Access.UNSPECIFIED`, which nobody may call (and a
contract test fails while any RPC is unannotated).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from types import ModuleType

from fitco.access.v1 import access_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor


class Access(Enum):
    """Who may call an RPC (the proto enum `fitco.access.v1.Access`)."""

    UNSPECIFIED = access_pb2.ACCESS_UNSPECIFIED
    PUBLIC = access_pb2.ACCESS_PUBLIC
    USER = access_pb2.ACCESS_USER
    ADMIN = access_pb2.ACCESS_ADMIN
    INTERNAL = access_pb2.ACCESS_INTERNAL

    @property
    def at_edge(self) -> bool:
        """Routed at the public edge (Envoy): public, user and admin RPCs, nothing else."""
        return self in (Access.PUBLIC, Access.USER, Access.ADMIN)

    @property
    def needs_user_token(self) -> bool:
        """The edge requires a valid user token (jwt_authn) before routing it."""
        return self in (Access.USER, Access.ADMIN)


def access_of(options: descriptor_pb2.MethodOptions) -> Access:
    """The access a method's options declare (UNSPECIFIED when none or unknown)."""
    if not options.HasExtension(access_pb2.access):
        return Access.UNSPECIFIED
    try:
        return Access(options.Extensions[access_pb2.access])
    except ValueError:  # a value added to the enum after this code was built
        return Access.UNSPECIFIED


def method_path(service: str, method: str) -> str:
    """The gRPC path of a method: `/fitco.user.v1.UserService/Login`."""
    return f"/{service}/{method}"


@dataclass(frozen=True, slots=True)
class Rpc:
    service: str  # full name: fitco.user.v1.UserService
    method: str  # Login
    access: Access

    @property
    def path(self) -> str:
        return method_path(self.service, self.method)


class AccessTable:
    """Method path → access for a set of services, in declaration order."""

    def __init__(self, rpcs: Iterable[Rpc]) -> None:
        self._rpcs = {rpc.path: rpc for rpc in rpcs}

    @classmethod
    def of_services(cls, services: Iterable[ServiceDescriptor]) -> AccessTable:
        return cls(
            Rpc(s.full_name, m.name, access_of(m.GetOptions())) for s in services for m in s.methods
        )

    @classmethod
    def of_modules(cls, *modules: ModuleType) -> AccessTable:
        """Every service the generated `*_pb2` modules declare."""
        return cls.of_services(s for m in modules for s in services_of(m))

    @classmethod
    def of_file_set(cls, file_set: descriptor_pb2.FileDescriptorSet) -> AccessTable:
        """Every service of a descriptor set (as `./fit gen` writes it for Envoy)."""
        return cls(
            Rpc(f"{f.package}.{s.name}" if f.package else s.name, m.name, access_of(m.options))
            for f in file_set.file
            for s in f.service
            for m in s.method
        )

    def access(self, path: str) -> Access:
        """The access of a method path; UNSPECIFIED for one the table does not hold."""
        rpc = self._rpcs.get(path)
        return rpc.access if rpc else Access.UNSPECIFIED

    def __iter__(self) -> Iterator[Rpc]:
        return iter(self._rpcs.values())

    def __len__(self) -> int:
        return len(self._rpcs)

    @property
    def services(self) -> list[str]:
        """The services' full names, in declaration order."""
        return list(dict.fromkeys(rpc.service for rpc in self))

    def paths(self, *accesses: Access) -> list[str]:
        """The method paths with one of these accesses."""
        return [rpc.path for rpc in self if rpc.access in accesses]

    def unannotated(self) -> list[str]:
        """RPCs without a usable access option: nobody can call them."""
        return self.paths(Access.UNSPECIFIED)


def services_of(module: ModuleType) -> list[ServiceDescriptor]:
    """The services a generated `*_pb2` module declares."""
    return list(module.DESCRIPTOR.services_by_name.values())


def service_names(*modules: ModuleType) -> list[str]:
    """Full names of the services the generated modules declare (for health and reflection)."""
    return [s.full_name for m in modules for s in services_of(m)]
