"""A TCP proxy that can silently swallow one direction of its traffic, cut every
connection, or refuse new ones: what a broker node dying mid-send, or staying out of
reach, looks like to a client."""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"


class LossyProxy:
    """Forwards ``HOST:port`` to ``HOST:upstream_port``.

    While ``swallow`` names a direction ("up": client to server, "down": server to
    client), bytes going that way are dropped and kept in :attr:`swallowed` instead;
    :meth:`swallowed_contains` waits for a marker among them. :meth:`cut` closes every
    connection, and the proxy goes on accepting new ones. While :attr:`refusing`, a new
    connection is closed as soon as it is accepted.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.swallow: str | None = None
        self.refusing = False
        self.swallowed = bytearray()
        self._changed = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    async def start(self) -> LossyProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, "up"),
                             self._pipe(up_reader, writer, "down"))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    direction: str) -> None:
        try:
            while data := await source.read(65536):
                if self.swallow == direction:
                    async with self._changed:
                        self.swallowed += data
                        self._changed.notify_all()
                    continue
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.close()

    async def swallowed_contains(self, marker: bytes) -> None:
        """Return once ``marker`` is among the swallowed bytes."""
        async with self._changed:
            await self._changed.wait_for(lambda: marker in self.swallowed)

    def cut(self) -> None:
        """Stop swallowing and close every connection (clients see their server gone)."""
        self.swallow = None
        self.swallowed.clear()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
