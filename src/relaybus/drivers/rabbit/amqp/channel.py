"""One AMQP channel: synchronous methods, publishing, confirms, returns and consumers.

Synchronous methods (declare, bind, consume...) may be pipelined: each waits for its own
``*-Ok`` in the order they were sent, which is the order RabbitMQ answers them. In
confirm mode every publish takes the next delivery tag; the broker's acks, single or
``multiple``, settle the matching futures in bulk. Deliveries and returned messages are
assembled from their frames and handed to plain callbacks, synchronously, in order.

A callback that raises does not end the channel or the connection: the exception is
logged with the consumer tag (with its traceback the first time for that consumer), the
delivery is settled by the consumer's policy (rejected, requeued if it asked for that, or
nothing for a ``no_ack`` consumer), and the next frames are handled as usual.

Publishing waits for room (:meth:`Channel.wait_writable`): while the broker blocks the
connection (``connection.blocked``, a resource alarm), while it stopped this channel
(``channel.flow`` with ``active=false``, answered with ``flow-ok``), and while the socket's
send buffer is full.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pamqp import commands
from pamqp.base import Frame

from relaybus.drivers.rabbit.amqp import codec
from relaybus.drivers.rabbit.amqp.errors import AMQPError, ChannelClosed, PublishNacked
from relaybus.drivers.rabbit.amqp.link import ChannelOwner

LOG = logging.getLogger(__name__)


class Delivery:
    """A message a consumer received.

    ``body_size`` is the size the broker announced; it exceeds ``len(body)`` only when the
    body was over the connection's ``max_body_size`` and so was dropped unassembled
    (``body`` is then empty).
    """

    __slots__ = ("body", "body_size", "channel", "delivery_tag", "exchange", "header",
                 "redelivered", "routing_key")

    def __init__(self, channel: Channel, delivery_tag: int, redelivered: bool,
                 exchange: str, routing_key: str, body: bytes,
                 body_size: int | None = None, header: bytes = b"") -> None:
        self.channel = channel
        self.header = header  # the content header frame's payload (see codec.headers_of)
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.body_size = len(body) if body_size is None else body_size


class Returned:
    """A message the broker gave back (``Basic.Return``), e.g. 312 NO_ROUTE for mandatory."""

    __slots__ = ("body", "exchange", "reply_code", "reply_text", "routing_key")

    def __init__(self, reply_code: int, reply_text: str, exchange: str, routing_key: str,
                 body: bytes) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body


DeliveryCallback = Callable[[Delivery], None]
ReturnCallback = Callable[[Returned], None]


class Channel:
    """An open channel of a connection (a :class:`~.link.ChannelOwner`).

    Attributes:
        number: the channel number.
        closed: a future that resolves, with the ending exception as its result, when the
            channel is closed by either side or with its connection.
        on_return: called with each :class:`Returned` message (set it before publishing
            with ``mandatory``).
    """

    def __init__(self, connection: ChannelOwner, number: int) -> None:
        self.number = number
        self._connection = connection
        self._protocol = connection.protocol
        self._frame_max = connection.frame_max
        self._max_body = connection.max_body_size
        self._unblocked = connection.unblocked
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[BaseException] = self._loop.create_future()
        self.on_return: ReturnCallback | None = None
        self._waiters: collections.deque[tuple[tuple[str, ...], asyncio.Future[Any]]] = \
            collections.deque()
        self._consumers: dict[str, DeliveryCallback] = {}
        self._cancel_callbacks: dict[str, Callable[[], None]] = {}
        # what to do with a delivery whose callback raised: None (no_ack), else requeue?
        self._on_error: dict[str, bool | None] = {}
        self._failures: dict[str, int] = {}
        self._flow = asyncio.Event()  # cleared by channel.flow(active=false)
        self._flow.set()
        self._confirming = False
        self._next_tag = 1
        self._lowest_unconfirmed = 1
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}
        # Content being assembled: the method that announced it, its size, its pieces.
        self._content_for: tuple[Any, ...] | None = None
        self._content_size = 0
        self._content: list[bytes] = []
        self._header = b""
        self._received = 0
        self._discarding = False  # a delivery over max_body_size: count, do not keep

    def __repr__(self) -> str:
        return f"<Channel {self.number} {'closed' if self.is_closed else 'open'}>"

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    @property
    def unconfirmed(self) -> int:
        """How many publishes wait for the broker's confirm."""
        return len(self._unconfirmed)

    def _check_open(self) -> None:
        if self.closed.done():
            raise self.closed.result()

    @property
    def writable(self) -> bool:
        """Whether a publish goes out now: not blocked, not stopped by flow, socket has room."""
        return self._flow.is_set() and self._unblocked.is_set() and self._protocol.can_write \
            and not self.closed.done()

    async def wait_writable(self) -> None:
        """Wait until a publish may go out (see the module docstring); bound it by a timeout.

        Raises:
            ChannelClosed, ConnectionLost, ConnectionClosed: the channel ended meanwhile.
        """
        while not self.writable:
            self._check_open()
            if not self._unblocked.is_set():
                await self._unblocked.wait()
            elif not self._flow.is_set():
                await self._flow.wait()
            else:
                await self._protocol.drain()

    # -- synchronous methods -------------------------------------------------------

    async def rpc(self, method: Frame) -> Any:
        """Send a synchronous method and return the broker's answer to it.

        Raises:
            ChannelClosed: the broker refused it (the channel is then closed).
            ConnectionLost, ConnectionClosed: the connection ended meanwhile.
        """
        self._check_open()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiters.append((tuple(method.valid_responses), future))
        self._protocol.write(codec.pack_method(self.number, method))
        return await future

    async def open(self) -> None:
        await self.rpc(commands.Channel.Open())

    async def confirm_select(self) -> None:
        """Turn on publisher confirms: every publish then returns a future."""
        await self.rpc(commands.Confirm.Select())
        self._confirming = True

    async def qos(self, prefetch_count: int) -> None:
        await self.rpc(commands.Basic.Qos(prefetch_count=prefetch_count))

    async def exchange_declare(self, exchange: str, exchange_type: str, *, durable: bool,
                               auto_delete: bool, passive: bool = False) -> None:
        await self.rpc(commands.Exchange.Declare(
            exchange=exchange, exchange_type=exchange_type, durable=durable,
            auto_delete=auto_delete, passive=passive))

    async def queue_declare(self, queue: str, *, durable: bool = False,
                            auto_delete: bool = False, exclusive: bool = False,
                            arguments: dict[str, Any] | None = None,
                            passive: bool = False) -> commands.Queue.DeclareOk:
        ok: commands.Queue.DeclareOk = await self.rpc(commands.Queue.Declare(
            queue=queue, durable=durable, auto_delete=auto_delete, exclusive=exclusive,
            arguments=arguments or {}, passive=passive))
        return ok

    async def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self.rpc(commands.Queue.Bind(queue=queue, exchange=exchange,
                                           routing_key=routing_key))

    async def queue_delete(self, queue: str, *, if_unused: bool = False,
                           if_empty: bool = False) -> None:
        await self.rpc(commands.Queue.Delete(queue=queue, if_unused=if_unused,
                                             if_empty=if_empty))

    async def basic_consume(self, queue: str, consumer_tag: str, callback: DeliveryCallback,
                            *, no_ack: bool = False, arguments: dict[str, Any] | None = None,
                            on_cancel: Callable[[], None] | None = None,
                            requeue_on_error: bool = False) -> None:
        """Start a consumer; deliveries go to ``callback`` in order, synchronously.

        ``on_cancel`` runs if the broker cancels the consumer (its queue was deleted).
        A delivery whose ``callback`` raises is logged and rejected (requeued with
        ``requeue_on_error``; left alone with ``no_ack``); the consumer goes on.
        """
        self._consumers[consumer_tag] = callback
        self._on_error[consumer_tag] = None if no_ack else requeue_on_error
        if on_cancel is not None:
            self._cancel_callbacks[consumer_tag] = on_cancel
        try:
            await self.rpc(commands.Basic.Consume(queue=queue, consumer_tag=consumer_tag,
                                                  no_ack=no_ack, arguments=arguments or {}))
        except BaseException:
            self._consumers.pop(consumer_tag, None)
            self._cancel_callbacks.pop(consumer_tag, None)
            self._on_error.pop(consumer_tag, None)
            raise

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; deliveries already on their way still reach its callback."""
        self._cancel_callbacks.pop(consumer_tag, None)
        try:
            await self.rpc(commands.Basic.Cancel(consumer_tag=consumer_tag))
        finally:
            self._consumers.pop(consumer_tag, None)
            self._on_error.pop(consumer_tag, None)

    async def close(self) -> None:
        """Close the channel (a no-op if it is closed already)."""
        if self.closed.done():
            return
        with contextlib.suppress(AMQPError):
            await self.rpc(commands.Channel.Close(reply_code=200, reply_text="bye", class_id=0,
                                                  method_id=0))
        self._end(ChannelClosed(0, "the channel was closed"))

    # -- publishing and settling -----------------------------------------------------

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: bytes, *,
                mandatory: bool = False) -> asyncio.Future[None] | None:
        """Publish a message (no await: the frames are queued for this loop pass).

        Returns:
            In confirm mode, a future settled by the broker's confirm (PublishNacked when
            it nacks, ChannelClosed when the channel ends first); otherwise None.
        """
        self._check_open()
        self._protocol.write(codec.pack_publish(self.number, exchange, routing_key, body,
                                                properties, mandatory=mandatory,
                                                frame_max=self._frame_max))
        if not self._confirming:
            return None
        future: asyncio.Future[None] = self._loop.create_future()
        self._unconfirmed[self._next_tag] = future
        self._next_tag += 1
        return future

    def ack(self, delivery_tag: int, *, multiple: bool = False) -> None:
        """Acknowledge a delivery (with ``multiple``, every one up to it); no-op once closed."""
        if not self.closed.done():
            self._protocol.write(codec.pack_ack(self.number, delivery_tag, multiple))

    def nack(self, delivery_tag: int, *, requeue: bool, multiple: bool = False) -> None:
        """Reject a delivery: back to the queue, or dead-lettered/dropped; no-op once closed."""
        if not self.closed.done():
            self._protocol.write(codec.pack_nack(self.number, delivery_tag,
                                                 multiple=multiple, requeue=requeue))

    def _settle_confirms(self, tag: int, multiple: bool, ok: bool) -> None:
        if multiple:
            first = self._lowest_unconfirmed
            futures = [self._unconfirmed.pop(t, None) for t in range(first, tag + 1)]
        else:
            futures = [self._unconfirmed.pop(tag, None)]
        while self._lowest_unconfirmed < self._next_tag \
                and self._lowest_unconfirmed not in self._unconfirmed:
            self._lowest_unconfirmed += 1
        for future in futures:
            if future is not None and not future.done():
                if ok:
                    future.set_result(None)
                else:
                    future.set_exception(PublishNacked("the broker refused the message "
                                                       "(basic.nack)"))

    # -- incoming frames -------------------------------------------------------------

    def on_frame(self, frame_type: int, payload: bytes) -> None:
        """Handle one frame for this channel (called by the connection's reader)."""
        if frame_type == codec.FRAME_METHOD:
            index = codec.method_index(payload)
            if index == codec.BASIC_DELIVER:
                self._start_content(("deliver", *codec.unpack_deliver(payload)))
            elif index == codec.BASIC_ACK:
                tag, multiple, _ = codec.unpack_ack(payload)
                self._settle_confirms(tag, multiple, True)
            elif index == codec.BASIC_NACK:
                tag, multiple, _ = codec.unpack_ack(payload)
                self._settle_confirms(tag, multiple, False)
            elif index == codec.BASIC_RETURN:
                method = codec.unpack_method(payload)
                self._start_content(("return", method.reply_code, method.reply_text,
                                     method.exchange, method.routing_key))
            else:
                self._on_method(codec.unpack_method(payload))
        elif frame_type == codec.FRAME_HEADER:
            self._content_size = codec.header_body_size(payload)
            self._header = payload
            self._content = []
            self._received = 0
            self._discarding = (self._max_body is not None
                                and self._content_size > self._max_body
                                and self._content_for is not None
                                and self._content_for[0] == "deliver")
            if self._content_size == 0:
                self._finish_content(b"")
        elif frame_type == codec.FRAME_BODY:
            self._received += len(payload)
            if not self._discarding:
                self._content.append(payload)
            if self._received >= self._content_size:
                body = self._content[0] if len(self._content) == 1 else b"".join(self._content)
                self._finish_content(body)

    def _start_content(self, announced: tuple[Any, ...]) -> None:
        self._content_for = announced

    def _finish_content(self, body: bytes) -> None:
        announced, self._content_for = self._content_for, None
        self._content = []
        if announced is None:
            LOG.warning("channel %d: content without a method frame; ignored", self.number)
            return
        if announced[0] == "deliver":
            _, consumer_tag, tag, redelivered, exchange, routing_key = announced
            callback = self._consumers.get(consumer_tag)
            if callback is None:
                LOG.warning("channel %d: delivery for unknown consumer %s; rejecting it",
                            self.number, consumer_tag)
                self.nack(tag, requeue=True)
                return
            try:
                callback(Delivery(self, tag, redelivered, exchange, routing_key, body,
                                  self._received if self._discarding else None,
                                  self._header))
            except Exception:  # noqa: BLE001 - one consumer's bug must not end the others
                self._callback_failed(consumer_tag, tag)
        else:
            _, code, text, exchange, routing_key = announced
            if self.on_return is not None:
                try:
                    self.on_return(Returned(code, text, exchange, routing_key, body))
                except Exception:
                    LOG.exception("channel %d: the return callback failed; the returned "
                                  "message is dropped", self.number)
            else:
                LOG.warning("message returned by the broker (%s %s, exchange %r, key %r) "
                            "and nobody asked for returns", code, text, exchange, routing_key)

    def _callback_failed(self, consumer_tag: str, delivery_tag: int) -> None:
        """A delivery callback raised: log it, settle the delivery by policy, go on."""
        failures = self._failures[consumer_tag] = self._failures.get(consumer_tag, 0) + 1
        requeue = self._on_error.get(consumer_tag)
        settle = "left alone (no_ack)" if requeue is None else \
            "requeued" if requeue else "rejected"
        LOG.error("channel %d: consumer %s failed to take delivery %d (failure %d); it is "
                  "%s and the consumer goes on", self.number, consumer_tag, delivery_tag,
                  failures, settle, exc_info=failures == 1)
        if requeue is not None:
            self.nack(delivery_tag, requeue=requeue)

    def _on_method(self, method: Any) -> None:
        name = method.name
        if name == "Channel.Close":
            self._protocol.write(codec.pack_method(self.number, commands.Channel.CloseOk()))
            self._end(ChannelClosed(method.reply_code, method.reply_text))
            return
        if name == "Basic.Cancel":  # the broker cancelled a consumer (its queue is gone)
            self._consumers.pop(method.consumer_tag, None)
            callback = self._cancel_callbacks.pop(method.consumer_tag, None)
            self._on_error.pop(method.consumer_tag, None)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    LOG.exception("channel %d: the cancel callback of consumer %s failed",
                                  self.number, method.consumer_tag)
            return
        if name == "Channel.Flow":
            if method.active:
                LOG.info("channel %d: the broker resumed publishing (channel.flow)",
                         self.number)
                self._flow.set()
            else:
                LOG.warning("channel %d: the broker paused publishing (channel.flow)",
                            self.number)
                self._flow.clear()
            self._protocol.write(codec.pack_method(
                self.number, commands.Channel.FlowOk(active=method.active)))
            return
        if self._waiters and name in self._waiters[0][0]:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_result(method)
            if name == "Channel.CloseOk":
                self._end(ChannelClosed(0, "the channel was closed"))
            return
        LOG.warning("channel %d: unexpected %s; ignored", self.number, name)

    def _end(self, exc: BaseException) -> None:
        """The channel is over: fail whatever waits on it (called by the connection too)."""
        if self.closed.done():
            return
        self.closed.set_result(exc)
        self._connection.forget_channel(self.number)
        waiters, self._waiters = self._waiters, collections.deque()
        for _, future in waiters:
            if not future.done():
                future.set_exception(exc)
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        for future in unconfirmed.values():
            if not future.done():
                future.set_exception(exc)
        self._consumers.clear()
        self._cancel_callbacks.clear()
        self._on_error.clear()
        self._flow.set()  # wake publishers waiting for flow: they see the channel closed
