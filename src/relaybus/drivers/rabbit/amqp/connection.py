"""One AMQP connection: the handshake, channel 0, and the channels opened on it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from typing import Any

from pamqp import commands
from pamqp import encode as pamqp_encode
from pamqp.base import Frame

from relaybus.drivers.rabbit.amqp import codec
from relaybus.drivers.rabbit.amqp.channel import Channel
from relaybus.drivers.rabbit.amqp.errors import (
    ACCESS_REFUSED,
    NOT_ALLOWED,
    ConnectionClosed,
    ConnectionLost,
    HandshakeRefused,
)
from relaybus.drivers.rabbit.amqp.protocol import FrameProtocol

LOG = logging.getLogger(__name__)

FRAME_MIN_SIZE = 4096  # AMQP 0-9-1: no peer may ask for a smaller frame_max

CLIENT_CAPABILITIES = {
    "authentication_failure_close": True,  # a bad login gets 403, not a silent close
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "publisher_confirms": True,
    "basic.nack": True,
    "per_consumer_qos": True,
}


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectParams:
    """Where and how to connect.

    Attributes:
        heartbeat: the heartbeat interval to ask for, in seconds (0: none).
        connect_timeout: seconds for the TCP/TLS connect and the AMQP handshake together.
        connection_name: shown by ``rabbitmqctl list_connections name``.
        login_method: ``PLAIN`` or ``AMQPLAIN``.
    """

    host: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    virtual_host: str = "/"
    ssl_context: ssl.SSLContext | None = None
    heartbeat: int = 60
    connect_timeout: float = 10.0
    connection_name: str = "relaybus"
    frame_max: int = 131072
    channel_max: int = 2047
    login_method: str = "PLAIN"
    #: deliveries announcing a larger body are counted, not assembled (None: no limit)
    max_body_size: int | None = None


class Connection:
    """An open AMQP connection. Create it with :meth:`open`.

    Attributes:
        closed: a future that resolves, with the ending exception as its result, when the
            connection ends for any reason (lost, closed by the broker, or by :meth:`close`).
        unblocked: set while the broker accepts publishes (cleared by Connection.Blocked).
        blocked: its opposite, set while the broker blocks publishing (a resource alarm).
    """

    def __init__(self, params: ConnectParams) -> None:
        self.params = params
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[BaseException] = self._loop.create_future()
        self.unblocked = asyncio.Event()
        self.unblocked.set()
        self.blocked = asyncio.Event()
        self.protocol: FrameProtocol = FrameProtocol(self._on_frame, self._on_lost)
        self.frame_max = params.frame_max
        self.max_body_size = params.max_body_size
        self.channel_max = params.channel_max
        self.server_properties: dict[str, Any] = {}
        self._channels: dict[int, Channel] = {}
        self._next_channel = 1
        self._waiter: tuple[str, asyncio.Future[Any]] | None = None
        self._opened = False
        self._close_reason: BaseException | None = None

    @classmethod
    async def open(cls, params: ConnectParams) -> Connection:
        """Connect, log in and open the virtual host.

        Raises:
            HandshakeRefused: the broker refused the credentials (403) or the vhost (530).
            ConnectionClosed, ConnectionLost, OSError, TimeoutError: anything else.
        """
        connection = cls(params)
        try:
            async with asyncio.timeout(params.connect_timeout):
                await connection._loop.create_connection(
                    lambda: connection.protocol, params.host, params.port,
                    ssl=params.ssl_context,
                    server_hostname=params.host if params.ssl_context else None)
                # uvloop may call connection_made only after create_connection returns
                await connection.protocol.connected
                await connection._handshake()
        except BaseException as exc:
            connection.protocol.abort(ConnectionLost(f"connect failed: {exc!r}"))
            if not connection.closed.done():
                connection.closed.set_result(exc)
            raise
        return connection

    def __repr__(self) -> str:
        p = self.params
        return f"<Connection {p.username}@{p.host}:{p.port}/{p.virtual_host}>"

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    @property
    def writable(self) -> bool:
        """Whether a publish goes out now (not blocked by the broker, not back-pressured)."""
        return self.unblocked.is_set() and self.protocol.can_write

    # -- handshake ---------------------------------------------------------------

    async def _expect(self, name: str, send: Frame | None = None) -> Any:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiter = (name, future)
        if send is not None:
            self.protocol.write_now(codec.pack_method(0, send))
        return await future

    async def _handshake(self) -> None:
        p = self.params
        start_future: asyncio.Future[Any] = self._loop.create_future()
        self._waiter = ("Connection.Start", start_future)
        self.protocol.write_now(codec.PROTOCOL_HEADER)
        start = await start_future
        self.server_properties = dict(start.server_properties or {})
        mechanisms = (start.mechanisms or "").split()
        if p.login_method not in mechanisms:
            raise HandshakeRefused(ACCESS_REFUSED, f"the broker offers no {p.login_method} "
                                                   f"login (offers {mechanisms})")
        client_properties: Any = {
                "product": "relaybus", "platform": "Python",
                "connection_name": p.connection_name, "capabilities": CLIENT_CAPABILITIES,
        }
        start_ok = commands.Connection.StartOk(
            client_properties=client_properties, mechanism=p.login_method,
            response=login_response(p.login_method, p.username, p.password), locale="en_US")
        tune = await self._expect("Connection.Tune", start_ok)
        self.channel_max = min(p.channel_max, tune.channel_max or p.channel_max)
        self.frame_max = max(min(p.frame_max, tune.frame_max or p.frame_max), FRAME_MIN_SIZE)
        heartbeat = p.heartbeat if not tune.heartbeat else min(p.heartbeat, tune.heartbeat)
        if p.heartbeat == 0:
            heartbeat = 0
        self.protocol.frame_max = self.frame_max  # larger incoming frames are refused
        self.protocol.write(codec.pack_method(0, commands.Connection.TuneOk(
            channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=heartbeat)))
        await self._expect("Connection.OpenOk",
                           commands.Connection.Open(virtual_host=p.virtual_host))
        self._opened = True
        self.protocol.start_heartbeats(heartbeat)

    # -- channels ----------------------------------------------------------------

    async def channel(self) -> Channel:
        """Open a new channel.

        Raises:
            ConnectionLost, ConnectionClosed: the connection is gone.
        """
        if self.closed.done():
            raise self.closed.result()
        number = self._free_channel_number()
        channel = Channel(self, number)
        self._channels[number] = channel
        try:
            await channel.open()
        except BaseException:
            self._channels.pop(number, None)
            raise
        return channel

    def _free_channel_number(self) -> int:
        for _ in range(self.channel_max):
            number = self._next_channel
            self._next_channel = number % self.channel_max + 1
            if number not in self._channels:
                return number
        raise ConnectionClosed(0, f"all {self.channel_max} channels are in use")

    def forget_channel(self, number: int) -> None:
        """A channel ended; its number may be reused."""
        self._channels.pop(number, None)

    # -- incoming frames ----------------------------------------------------------

    def _on_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if channel:
            target = self._channels.get(channel)
            if target is not None:
                target.on_frame(frame_type, payload)
            return
        if frame_type != codec.FRAME_METHOD:
            return  # heartbeats: the protocol already noted that the broker is alive
        method = codec.unpack_method(payload)
        name = method.name
        if name == "Connection.Close":
            self._on_close(method)
        elif name == "Connection.Blocked":
            LOG.warning("the broker blocked publishing: %s", method.reason)
            self.unblocked.clear()
            self.blocked.set()
        elif name == "Connection.Unblocked":
            LOG.info("the broker unblocked publishing")
            self.blocked.clear()
            self.unblocked.set()
        elif self._waiter is not None and self._waiter[0] == name:
            _, future = self._waiter
            self._waiter = None
            if not future.done():
                future.set_result(method)
        else:
            LOG.warning("unexpected %s on channel 0; ignored", name)

    def _on_close(self, method: Any) -> None:
        code, text = method.reply_code, method.reply_text
        if not self._opened and code in (ACCESS_REFUSED, NOT_ALLOWED):
            reason: BaseException = HandshakeRefused(code, text)
        else:
            reason = ConnectionClosed(code, text)
        LOG.log(logging.INFO if code == 200 else logging.WARNING,
                "the broker closed the connection: %s %s", code, text)
        self._close_reason = reason
        with contextlib.suppress(ConnectionLost):
            self.protocol.write_now(codec.pack_method(0, commands.Connection.CloseOk()))
        self.protocol.close()
        self._fail_waiters(reason)
        if not self.closed.done():  # over now, not only once the socket is gone
            self.closed.set_result(reason)

    def _fail_waiters(self, reason: BaseException) -> None:
        if self._waiter is not None:
            _, future = self._waiter
            self._waiter = None
            if not future.done():
                future.set_exception(reason)
        for channel in list(self._channels.values()):
            channel._end(reason)

    def _on_lost(self, exc: BaseException) -> None:
        reason = self._close_reason or exc
        self._fail_waiters(reason)
        self.unblocked.set()
        if not self.closed.done():
            self.closed.set_result(reason)

    # -- closing -----------------------------------------------------------------

    async def close(self, timeout: float = 2.0) -> None:
        """Close politely (Connection.Close, wait for Close-Ok), then drop the socket.

        Returns within ``timeout`` seconds (plus a loop pass) whatever the broker does: one
        that never answers, or that stopped reading (it blocked the connection during a
        resource alarm), has its socket aborted when the time is up.
        """
        if self.closed.done():
            return
        loop = self._loop
        deadline = loop.time() + timeout
        self._close_reason = ConnectionClosed(200, "closed by the client")
        try:
            future: asyncio.Future[Any] = loop.create_future()
            self._waiter = ("Connection.CloseOk", future)
            self.protocol.write_now(codec.pack_method(0, commands.Connection.Close(
                reply_code=200, reply_text="bye", class_id=0, method_id=0)))
            async with asyncio.timeout_at(deadline):
                await future
        except TimeoutError:
            LOG.warning("the broker did not answer connection.close within %.1f s; dropping "
                        "the connection", timeout)
        except (ConnectionLost, ConnectionClosed):
            pass
        finally:
            self.protocol.close()
            if not self.closed.done():
                await asyncio.wait([self.closed], timeout=max(deadline - loop.time(), 0))
            self.abort(self._close_reason)

    def abort(self, reason: BaseException | None = None) -> None:
        """Drop the connection at once, without the close handshake; idempotent.

        Everything waiting on it fails with ``reason`` now, not once the socket is gone.
        """
        if self.closed.done():
            return
        reason = reason or ConnectionLost("the connection was aborted")
        self.protocol.abort(reason)
        self._on_lost(reason)


def login_response(method: str, username: str, password: str) -> str:
    """The SASL response of a ``PLAIN`` or ``AMQPLAIN`` login.

    AMQPLAIN's is a field table without its length prefix. pamqp sends the response as
    UTF-8 text, so its binary length fields must stay ASCII: each of the user name and
    password must be under 128 bytes (the rabbit options refuse longer ones).
    """
    if method == "PLAIN":
        return f"\0{username}\0{password}"
    return pamqp_encode.field_table({"LOGIN": username, "PASSWORD": password})[4:] \
        .decode("utf-8")
