"""TLS at the edge: the HTTPS listener serves JSON (HTTP/1.1 and h2 by ALPN) and native gRPC
with a certificate from the development CA; the plain HTTP port only redirects."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fitco.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from fitco.user.v1 import user_pb2, user_pb2_grpc

import fitedge
from devtools import certs
from devtools.ports import free_port
from tests.e2e.conftest import RunningMesh
from tests.e2e.harness import ExtraEdge, extra_edge, register

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_edge(
    mesh: RunningMesh, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ExtraEdge, certs.TlsFiles, int]]:
    work = tmp_path_factory.mktemp("tls-edge")
    files = certs.generate(work / "tls")
    https, plain = free_port(), free_port()
    tls = fitedge.Tls(
        str(files.cert), str(files.key), redirect=("127.0.0.1", plain), https_port=https
    )
    with extra_edge(mesh.mesh, work, listen=("127.0.0.1", https), tls=tls) as edge:
        yield edge, files, plain


def _context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def test_json_over_https(tls_edge: tuple[ExtraEdge, certs.TlsFiles, int]) -> None:
    edge, files, _ = tls_edge
    conn = http.client.HTTPSConnection(
        "localhost", edge.port, timeout=10, context=_context(files.ca_cert)
    )
    try:
        conn.request("GET", "/fitness/exercises/1")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200
        assert body["id"] == 1
        assert resp.getheader("strict-transport-security", "").startswith("max-age=")
        assert conn.sock is not None
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()


def test_an_untrusted_client_is_refused(tls_edge: tuple[ExtraEdge, certs.TlsFiles, int]) -> None:
    edge, _, _ = tls_edge
    conn = http.client.HTTPSConnection(
        "localhost", edge.port, timeout=10, context=ssl.create_default_context()
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/health")
    conn.close()


def test_grpc_over_tls(mesh: RunningMesh, tls_edge: tuple[ExtraEdge, certs.TlsFiles, int]) -> None:
    edge, files, _ = tls_edge
    user = register(mesh.client())
    creds = grpc.ssl_channel_credentials(root_certificates=files.ca_cert.read_bytes())
    with grpc.secure_channel(f"localhost:{edge.port}", creds) as ch:
        exercise = catalog_pb2_grpc.CatalogServiceStub(ch).GetExercise(
            catalog_pb2.GetExerciseRequest(exercise_id=1), timeout=10
        )
        assert exercise.exercise.id == 1
        profile = user_pb2_grpc.UserServiceStub(ch).GetProfile(
            user_pb2.GetProfileRequest(),
            metadata=(("authorization", f"Bearer {user.token}"),),
            timeout=10,
        )
        assert profile.profile.email == user.email


def test_plain_http_only_redirects(tls_edge: tuple[ExtraEdge, certs.TlsFiles, int]) -> None:
    edge, _, plain = tls_edge
    conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
    try:
        conn.request("POST", "/v1/auth/login", body=b"{}", headers={"host": "localhost"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 308  # the method and body are kept by a client that follows
        assert resp.getheader("location") == f"https://localhost:{edge.port}/v1/auth/login"
    finally:
        conn.close()
    # A plain gRPC client gets an error, never data.
    with grpc.insecure_channel(f"127.0.0.1:{plain}") as ch, pytest.raises(grpc.RpcError):
        catalog_pb2_grpc.CatalogServiceStub(ch).GetExercise(
            catalog_pb2.GetExerciseRequest(exercise_id=1), timeout=10
        )
