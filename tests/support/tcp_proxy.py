"""A loopback TCP proxy in front of PostgreSQL that can be cut and restored: an outage of the database
as the application sees it (connections dropped, new ones refused), without touching the shared
server that other test runs use. Used by tests/reliability and bench/faults.py."""

from __future__ import annotations

import asyncio
import socket
import struct
from contextlib import suppress

_SSL_REQUEST = 80877103  # the code of PostgreSQL's SSLRequest packet


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` closes every connection and stops listening
    (a client connecting is refused, as by a server that is down); `restore()` listens again on the
    same port. Runs on the event loop it is started on."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.connections = 0  # accepted since start
        # While set, each new connection is answered as PostgreSQL answers during a restart
        # (FATAL 57P03 "the database system is starting up") instead of being forwarded.
        self.starting_up = False

    async def start(self) -> CuttableProxy:
        await self.restore()
        return self

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            _abort(writer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.cut()

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def starting(self) -> None:
        """From now on, answer new connections as a server that is starting up (until `restore()`);
        connections already open are cut, as a restart ends them."""
        await self.cut()
        await self._listen()
        self.starting_up = True

    async def restore(self) -> None:
        self.starting_up = False
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(client_w)
        server_w = None
        try:
            if self.starting_up:
                await _refuse_as_starting_up(client_r, client_w)
                return
            server_r, server_w = await asyncio.open_connection(*self.target)
            self._writers.add(server_w)
            await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_w, server_w):
                if writer is not None:
                    self._writers.discard(writer)
                    _abort(writer)
            self._tasks.discard(task)


async def _refuse_as_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """PostgreSQL's answer to a client connecting while it starts up: after the startup packet (and a
    refused SSLRequest before it), an ErrorResponse FATAL 57P03, then the connection is closed."""
    length, code = struct.unpack("!II", await reader.readexactly(8))
    if code == _SSL_REQUEST:
        writer.write(b"N")
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        await reader.readexactly(length - 4)
    else:
        await reader.readexactly(length - 8)
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in (
            (b"S", "FATAL"),
            (b"V", "FATAL"),
            (b"C", "57P03"),
            (b"M", "the database system is starting up"),
        )
    )
    body = fields + b"\0"
    writer.write(b"E" + struct.pack("!I", len(body) + 4) + body)
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once, as a dropped network or a killed server would (no graceful shutdown)."""
    with suppress(Exception):
        writer.transport.abort()


def free_port() -> int:
    """A loopback port nothing listens on (for the moment: closed again when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
