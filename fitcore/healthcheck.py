"""`python -m fitcore.healthcheck [ADDRESS] [SERVICE]`: exit 0 when grpc.health.v1 says SERVING.
`python -m fitcore.healthcheck http://HOST:PORT/health`: exit 0 when that URL answers 200 (the
sandbox payment provider speaks HTTP).

Used by container HEALTHCHECKs (no grpc_health_probe binary nor curl needed in the image).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def http_check(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - our own URL
            status = int(resp.status)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == 200 else 1


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:50051"
    if address.startswith(("http://", "https://")):
        return http_check(address)
    service = argv[2] if len(argv) > 2 else ""
    try:
        with grpc.insecure_channel(address) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    print(status)
    return 0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
