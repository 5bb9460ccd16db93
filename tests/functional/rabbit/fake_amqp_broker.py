"""A fake AMQP 0-9-1 broker on loopback, for the attacks a real RabbitMQ never makes.

It is a real asyncio TCP server speaking just enough AMQP (framed and parsed by pamqp, not
by relaybus's own codec) to let a client log in, open channels, declare, consume and
publish with confirms. After that a test tells it to misbehave: send oversized frames or
garbage, stop reading, block the connection, pause a channel with ``channel.flow``, or
never answer ``connection.close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any

from pamqp import commands
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader, ProtocolHeader

FRAME_MAX = 131072


def _answer(method: Any) -> Any | None:
    """The ``*-Ok`` a broker sends for a synchronous method (None: no answer)."""
    name = method.name
    if name == "Queue.Declare":
        return commands.Queue.DeclareOk(queue=method.queue or "amq.gen-fake",
                                        message_count=0, consumer_count=0)
    if name == "Basic.Consume":
        return commands.Basic.ConsumeOk(consumer_tag=method.consumer_tag)
    if name == "Basic.Cancel":
        return commands.Basic.CancelOk(consumer_tag=method.consumer_tag)
    if name == "Queue.Delete":
        return commands.Queue.DeleteOk(message_count=0)
    simple = {"Channel.Open": commands.Channel.OpenOk, "Channel.Close": commands.Channel.CloseOk,
              "Confirm.Select": commands.Confirm.SelectOk, "Basic.Qos": commands.Basic.QosOk,
              "Exchange.Declare": commands.Exchange.DeclareOk,
              "Queue.Bind": commands.Queue.BindOk}
    ok = simple.get(name)
    return ok() if ok is not None else None


class FakePeer:
    """One client connection to the fake broker.

    Attributes:
        methods: ``(channel, method name)`` of every method received, in order.
        answer_close: answer ``Connection.Close`` with ``Close-Ok`` (False: never).
        reading: cleared to stop reading the socket (a broker that blocked the client).
        ended: resolves when the client's socket is gone.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.methods: list[tuple[int, str]] = []
        self.frames: list[tuple[int, Any]] = []  # the methods themselves, likewise
        self.answer_close = True
        self.reading = asyncio.Event()
        self.reading.set()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = asyncio.Event()  # the handshake is done
        self._changed = asyncio.Condition()
        self._confirming: set[int] = set()
        self._tags: dict[int, int] = {}

    # -- sending -----------------------------------------------------------------------

    def send_method(self, channel: int, method: Any) -> None:
        self.writer.write(pamqp_frame.marshal(method, channel))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def deliver(self, channel: int, consumer_tag: str, delivery_tag: int, body: bytes) -> None:
        """Send one message to a consumer (method, header and body frames)."""
        self.send_method(channel, commands.Basic.Deliver(
            consumer_tag=consumer_tag, delivery_tag=delivery_tag, exchange="",
            routing_key="fake"))
        self.writer.write(pamqp_frame.marshal(ContentHeader(body_size=len(body)), channel))
        self.writer.write(pamqp_frame.marshal(ContentBody(body), channel))

    async def flood(self, first: bytes, chunk: int, total: int) -> str:
        """Write ``first`` then zeros up to ``total`` bytes; "reset" if the client hung up."""
        try:
            self.writer.write(first)
            sent = len(first)
            zeros = bytes(chunk)
            while sent < total:
                self.writer.write(zeros)
                sent += chunk
                await self.writer.drain()
        except (ConnectionError, OSError):
            return "reset"
        return "sent"

    # -- waiting for the client --------------------------------------------------------

    async def received(self, name: str, count: int = 1) -> None:
        """Wait until the client has sent ``count`` methods of that name."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: sum(1 for _, n in self.methods if n == name) >= count)

    def channels(self) -> list[int]:
        """The channel numbers the client opened, in order."""
        return [channel for channel, name in self.methods if name == "Channel.Open"]

    # -- serving -----------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            header = await self.reader.readexactly(8)
            if header != ProtocolHeader().marshal():
                return
            self.send_method(0, commands.Connection.Start(
                server_properties={"product": "fake"}, mechanisms="PLAIN AMQPLAIN"))
            while True:
                await self.reading.wait()
                head = await self.reader.readexactly(7)
                _, _, size = struct.unpack(">BHI", head)
                rest = await self.reader.readexactly(size + 1)
                _, channel, frame = pamqp_frame.unmarshal(head + rest)
                await self._on_frame(channel, frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
            if not self.ended.done():
                self.ended.set_result(None)

    async def _on_frame(self, channel: int, frame: Any) -> None:
        name = frame.name
        if name in ("ContentHeader", "ContentBody", "Heartbeat"):
            return
        async with self._changed:
            self.methods.append((channel, name))
            self.frames.append((channel, frame))
            self._changed.notify_all()
        if name == "Basic.Publish":
            if channel in self._confirming:
                tag = self._tags[channel] = self._tags.get(channel, 0) + 1
                self.send_method(channel, commands.Basic.Ack(delivery_tag=tag))
            return
        if name == "Connection.StartOk":
            self.send_method(0, commands.Connection.Tune(channel_max=2047, frame_max=FRAME_MAX,
                                                         heartbeat=0))
        elif name == "Connection.Open":
            self.send_method(0, commands.Connection.OpenOk())
            self.open.set()
        elif name == "Connection.Close":
            if self.answer_close:
                self.send_method(0, commands.Connection.CloseOk())
        elif name == "Confirm.Select":
            self._confirming.add(channel)
            self.send_method(channel, commands.Confirm.SelectOk())
        else:
            answer = _answer(frame)
            if answer is not None:
                self.send_method(channel, answer)


class FakeBroker:
    """The fake broker: ``async with FakeBroker() as broker``; ``broker.url``, ``broker.peers``.

    Args:
        on_peer: called with each new :class:`FakePeer` before it is served.
    """

    def __init__(self, on_peer: Callable[[FakePeer], None] | None = None) -> None:
        self.peers: list[FakePeer] = []
        self._on_peer = on_peer
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._arrived = asyncio.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.reading.set()  # a paused peer sees its socket end too
            peer.writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def peer(self, index: int = 0) -> FakePeer:
        """The ``index``-th connection, once it has logged in."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.peers) > index)
        peer = self.peers[index]
        await peer.open.wait()
        return peer

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = FakePeer(reader, writer)
        if self._on_peer is not None:
            self._on_peer(peer)
        async with self._arrived:
            self.peers.append(peer)
            self._arrived.notify_all()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await peer.serve()
        finally:
            self._tasks.discard(task)
