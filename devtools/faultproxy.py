"""A small fault-injecting proxy for end-to-end tests on loopback (TCP or Unix sockets).

It sits between a client and a server and, on command from the test's own process, passes bytes
through, adds latency to every chunk the server sends back, refuses new connections (the
listener is closed: ECONNREFUSED, like a stopped server), accepts new connections and closes
them at once, accepts them and never forwards a byte (a black hole: connect and read timeouts),
or resets every open connection (RST, like a crashed server or a dropped link).

Why hand-written: toxiproxy, the usual tool, is a Go program (a build from source here, since
only package registries are reachable) run as a separate server and driven over HTTP; the tests
need five modes switched synchronously from the test itself, which is a page of asyncio on one
background thread. Unix sockets on both sides let it stand in front of a PostgreSQL that
authenticates local users by peer credentials. Test use only: it trusts both ends.

    with FaultProxy(upstream=("127.0.0.1", 5432)) as proxy:
        url = f"postgresql://user@127.0.0.1:{proxy.port}/db"
        proxy.latency = 0.3          # every answer 300 ms later
        proxy.set_mode(Mode.REFUSE)  # the server is "down" for new connections ...
        proxy.reset()                # ... and for the open ones
        proxy.pass_through()         # back to normal
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

Address = tuple[str, int] | str  # (host, port), or the path of a Unix socket
T = TypeVar("T")


class Mode(enum.Enum):
    FORWARD = "forward"  # pass through (after `latency`, if set)
    REFUSE = "refuse"  # listener closed: connecting fails at once
    CLOSE = "close"  # accepted, then closed at once
    HANG = "hang"  # accepted, never answered nor forwarded


@dataclass
class Stats:
    accepted: int = 0
    forwarded: int = 0  # connections opened to the upstream
    closed_at_accept: int = 0
    hung: int = 0
    reset: int = 0
    upstream_failed: int = 0
    answers: int = 0  # chunks forwarded from the server (each one waits `latency`)


class _Conn:
    def __init__(self, downstream: asyncio.StreamWriter) -> None:
        self.downstream = downstream
        self.upstream: asyncio.StreamWriter | None = None
        self.done = asyncio.Event()

    def abort(self) -> None:
        """Close both sides with RST (SO_LINGER 0), not a polite FIN."""
        for writer in (self.downstream, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None and sock.family != socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.done.set()


class FaultProxy:
    """Listens on `listen` (a free loopback port by default) and forwards to `upstream`."""

    def __init__(self, upstream: Address, listen: Address = ("127.0.0.1", 0)) -> None:
        self.upstream = upstream
        self.listen = listen
        # Seconds added before each chunk the server sends back (so each request/answer round
        # trip takes at least this much longer). Read at every chunk: changes apply at once.
        self.latency = 0.0
        self.stats = Stats()
        self._mode = Mode.FORWARD
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy")
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()

    # -- control (from any thread) ----------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.daemon = True
        self._thread.start()
        self._call(self._open())
        return self

    @property
    def address(self) -> Address:
        """Where clients connect (the bound port when `listen` asked for port 0)."""
        return self.listen

    @property
    def port(self) -> int:
        if isinstance(self.listen, str):
            raise TypeError("a Unix-socket proxy has no port")
        return self.listen[1]

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def set_mode(self, mode: Mode) -> None:
        """Applies to new connections; open ones go on until `reset()`."""
        self._call(self._set_mode(mode))

    def pass_through(self) -> None:
        self.latency = 0.0
        self.set_mode(Mode.FORWARD)

    def reset(self) -> int:
        """Reset every open connection; returns how many there were."""
        return self._call(self._reset())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the event loop's side --------------------------------------------------------------

    async def _open(self) -> None:
        if isinstance(self.listen, str):
            self._server = await asyncio.start_unix_server(self._handle, self.listen)
        else:
            self._server = await asyncio.start_server(self._handle, *self.listen)
            port = self._server.sockets[0].getsockname()[1]
            self.listen = (self.listen[0], int(port))  # the same port again after REFUSE

    async def _set_mode(self, mode: Mode) -> None:
        if mode is Mode.REFUSE and self._server is not None:
            self._server.close()  # accepted connections stay open
            self._server = None
        elif mode is not Mode.REFUSE and self._server is None:
            await self._open()
        self._mode = mode

    async def _reset(self) -> int:
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        self.stats.reset += len(conns)
        return len(conns)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        # The handlers see their connections closed within a few loop turns.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self._mode is Mode.CLOSE:
            self.stats.closed_at_accept += 1
            writer.transport.abort()
            return
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            if self._mode is Mode.HANG:
                self.stats.hung += 1
                await conn.done.wait()
                return
            try:
                if isinstance(self.upstream, str):
                    up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
                else:
                    up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.stats.upstream_failed += 1
                writer.transport.abort()
                return
            self.stats.forwarded += 1
            conn.upstream = up_writer
            await asyncio.gather(
                self._pump(reader, up_writer, slow=False),
                self._pump(up_reader, writer, slow=True),
            )
        finally:
            self._conns.discard(conn)
            for w in (writer, conn.upstream):
                if w is not None and not w.transport.is_closing():
                    w.close()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, slow: bool
    ) -> None:
        try:
            while data := await src.read(65536):
                if slow:
                    self.stats.answers += 1
                    if self.latency > 0:
                        await asyncio.sleep(self.latency)
                if dst.transport.is_closing():
                    return
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof() and not dst.transport.is_closing():
                dst.write_eof()
        except (ConnectionError, OSError):
            dst.transport.abort()
