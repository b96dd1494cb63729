"""A TCP proxy in front of the shared PostgreSQL that can play a database outage, for fault tests.

Modes:

- ``forward``: pass bytes both ways (the database is up).
- ``starting``: answer every new connection the way a restarting PostgreSQL does, with an
  ``ErrorResponse`` of SQLSTATE ``57P03`` "the database system is starting up" (asyncpg raises
  ``CannotConnectNowError``), then close it.
- ``refuse``: stop listening (new connections are refused, ``ConnectionRefusedError``).

:meth:`PgProxy.cut` aborts every open connection (what a server restart does to the pool). The
shared server itself is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = b"SFATAL\x00" + b"VFATAL\x00" + b"C" + sqlstate.encode() + b"\x00" + b"M" + message.encode() + b"\x00"
    body = fields + b"\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


class PgProxy:
    """A proxy to ``target_host:target_port`` on 127.0.0.1:<port>; see the module docstring."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.mode = "forward"
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url_host(self) -> str:
        """``host:port`` to put in a database URL."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again, on the same port after :meth:`refuse`)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.mode == "refuse":
            self.mode = "forward"

    async def refuse(self) -> None:
        """Stop listening and cut every connection: the database is gone."""
        self.mode = "refuse"
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()

    def cut(self) -> None:
        """Abort every open connection (a restart does this to pooled connections)."""
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        """Shut the proxy down."""
        await self.refuse()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "starting":
                await self._answer_starting(reader, writer)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except Exception:
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _answer_starting(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            payload = await reader.readexactly(length - 4)
            (code,) = struct.unpack("!I", payload[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")  # no encryption; the client sends its StartupMessage next
                await writer.drain()
                continue
            writer.write(_error_response("57P03", "the database system is starting up"))
            await writer.drain()
            return

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
