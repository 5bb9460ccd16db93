"""A consumer of some queues that survives reconnection: the base of every subscription.

Each consumer has a channel of its own (its prefetch window and its acknowledgements
belong to it) and a named task, ``relaybus[rabbit].consumer[<name>]``, that hands the
deliveries to the subscription one at a time, in order. Deliveries arrive from the socket
into an in-memory inbox without any task switch; the task drains it. After a reconnection,
or when the broker cancels the consumer (its queue was deleted), the consumer declares its
queues again and resumes.

:meth:`stop` cancels the consumers at the broker, hands every delivery already received to
the subscription, then ends the task; the channel stays open until the subscription has
settled what it took (notifications are acknowledged after their handler finishes).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from relaybus.drivers.rabbit.acks import AckBatcher
from relaybus.drivers.rabbit.amqp import AMQPError, Channel, Connection, Delivery
from relaybus.drivers.rabbit.connector import Connector
from relaybus.drivers.rabbit.declare import Declarer
from relaybus.drivers.rabbit.topology import ExchangeSpec, QueueSpec
from relaybus.transport.base import Subscription

LOG = logging.getLogger(__name__)

_tags = itertools.count(1)
RETRY_DELAY = 1.0


class QueueConsumer(Subscription, abc.ABC):
    """Consumes ``queues`` on a channel of its own; subclasses handle each delivery.

    Args:
        connector: the transport's connection keeper.
        name: for the task name and logs (usually the topic).
        queues: what to declare, bind and consume.
        prefetch: unacknowledged deliveries allowed (0: no limit).
    """

    #: consume without acknowledgements (the broker forgets a message once sent)
    no_ack = False
    #: handle deliveries right in the socket reader (:meth:`handle_now`), with no task;
    #: for consumers whose handling never waits, like the reply consumer
    inline = False

    def __init__(self, connector: Connector, name: str, queues: Sequence[QueueSpec],
                 prefetch: int) -> None:
        self._connector = connector
        self.name = name
        self.queues = list(queues)
        self._prefetch = prefetch
        self._channel: Channel | None = None
        self._acks: AckBatcher | None = None
        self._consumer_tags: list[str] = []
        self._inbox: collections.deque[Delivery] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    # -- what subclasses provide ------------------------------------------------------

    @abc.abstractmethod
    async def handle(self, delivery: Delivery, acks: AckBatcher) -> None:
        """Decode and hand on one delivery; settle it through ``acks`` (now or later)."""

    def handle_now(self, delivery: Delivery) -> None:
        """For ``inline`` consumers: handle one delivery without awaiting anything."""
        raise NotImplementedError

    async def after_stop(self) -> None:
        """Hook: clean up at the broker once the consumer has stopped."""

    # -- starting and restoring ------------------------------------------------------

    async def start(self, connection: Connection) -> None:
        """Declare, bind and consume on ``connection``; start the handing task.

        Raises:
            AMQPError: a declaration was refused or the connection failed.
        """
        await self._attach(connection)
        if not self.inline:
            self._task = self._connector.tasks.spawn(
                self._run(), name=f"relaybus[rabbit].consumer[{self.name}]")
        self._connector.add_restore(self._restore)

    async def _attach(self, connection: Connection) -> None:
        declarer = Declarer(connection)
        try:
            exchanges: dict[str, ExchangeSpec] = {}
            for queue in self.queues:
                for exchange, _ in queue.bindings:
                    exchanges.setdefault(exchange.name, exchange)
            for exchange in exchanges.values():
                await declarer.exchange(exchange)
            for queue in self.queues:
                await declarer.queue(queue, with_exchanges=False)
        finally:
            await declarer.close()
        channel = await connection.channel()
        # Deliveries may arrive in the same read as Consume-Ok, before the awaits below
        # return: the channel and its batcher must be in place before consuming.
        self._channel, self._acks = channel, AckBatcher(channel)
        try:
            if self._prefetch:
                await channel.qos(self._prefetch)
            tags = [f"relaybus.{queue.name}.{next(_tags)}" for queue in self.queues]
            callback = self.handle_now if self.inline else self._deliver
            await _all(channel.basic_consume(queue.name, tag, callback, no_ack=self.no_ack,
                                             on_cancel=self._cancelled_by_broker)
                       for queue, tag in zip(self.queues, tags, strict=True))
        except BaseException:
            self._channel = None
            await _close_quietly(channel)
            raise
        self._consumer_tags = tags
        channel.closed.add_done_callback(lambda _: self._channel_closed(channel))

    async def _restore(self, connection: Connection) -> None:
        if self._stopping:
            return
        try:
            await self._attach(connection)
        except AMQPError as exc:
            if connection.is_closed:
                return  # lost again: the connector tries again
            LOG.warning("consumer %s: cannot consume after reconnecting (%s)", self.name, exc)
            self._schedule_retry()

    def _channel_closed(self, channel: Channel) -> None:
        if self._stopping or channel is not self._channel:
            return
        reason = channel.closed.result()
        if self._connector.current is None:
            return  # the whole connection is gone: the connector restores us
        LOG.warning("consumer %s: channel closed (%s); consuming again", self.name, reason)
        self._schedule_retry()

    def _cancelled_by_broker(self) -> None:
        if self._stopping:
            return
        LOG.warning("consumer %s: the broker cancelled it (queue deleted?); declaring again",
                    self.name)
        channel = self._channel
        self._channel = None
        if channel is not None:
            self._connector.tasks.spawn(_close_quietly(channel),
                                        name=f"relaybus[rabbit].consumer[{self.name}].close")
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = self._connector.tasks.spawn(
                self._retry_attach(), name=f"relaybus[rabbit].consumer[{self.name}].retry")

    async def _retry_attach(self) -> None:
        delay = RETRY_DELAY
        while not self._stopping:
            connection = self._connector.current
            if connection is None:
                return  # the connector restores us after reconnecting
            try:
                await self._attach(connection)
                return
            except AMQPError as exc:
                LOG.warning("consumer %s: cannot consume again (%s); retrying in %.0f s",
                            self.name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    # -- handing deliveries on -------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        if not self.no_ack and self._acks is not None and delivery.channel is self._acks.channel:
            self._acks.received(delivery.delivery_tag)
        self._inbox.append(delivery)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run(self) -> None:
        inbox = self._inbox
        while True:
            if not inbox:
                if self._acks is not None:
                    self._acks.flush()
                if self._stopping:
                    return
                self._wakeup = self._loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            delivery = inbox.popleft()
            acks = self._acks
            if acks is None or delivery.channel is not acks.channel:
                # Left over from a channel since replaced: settle it on its own channel,
                # one by one (a bulk ack there could cover deliveries still in progress).
                acks = AckBatcher(delivery.channel, bulk=False)
                acks.received(delivery.delivery_tag)
            try:
                await self.handle(delivery, acks)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("consumer %s: failed to handle a delivery; dropping it",
                              self.name)
                acks.reject(delivery.delivery_tag, requeue=False)

    # -- stopping ----------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop consuming; everything already received is handed on first; idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._connector.remove_restore(self._restore)
        if self._retry is not None:
            self._retry.cancel()
        channel = self._channel
        if channel is not None and not channel.is_closed:
            # a channel that is gone delivers nothing more: nothing to cancel there
            with contextlib.suppress(AMQPError):
                await _all(channel.basic_cancel(tag) for tag in self._consumer_tags)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        if self._task is not None:
            await self._task
        await self.after_stop()
        if channel is not None:
            self._closer = self._connector.tasks.spawn(
                self._close_when_settled(channel, self._acks),
                name=f"relaybus[rabbit].consumer[{self.name}].close")

    async def _close_when_settled(self, channel: Channel, acks: AckBatcher | None) -> None:
        """Close the channel once nothing taken from it waits for a settlement."""
        if acks is not None and acks.channel is channel:
            settled = asyncio.ensure_future(acks.settled())
            waiting: set[asyncio.Future[Any]] = {settled, channel.closed}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            settled.cancel()
        await _close_quietly(channel)

    async def kill(self) -> None:
        """Stop at once (the transport is closing): no draining, no broker clean-up."""
        self._stopping = True
        self._connector.remove_restore(self._restore)
        for task in (self._task, self._retry, self._closer):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def _all(steps: Iterable[Awaitable[object]]) -> None:
    """Run pipelined channel methods together; raise the first failure."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _close_quietly(channel: Channel) -> None:
    with contextlib.suppress(AMQPError):
        await channel.close()
