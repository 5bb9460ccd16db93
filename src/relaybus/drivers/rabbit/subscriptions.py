"""The kinds of consumer: RPC servers, notification listeners, the reply queue, and taps.

A malformed message (not JSON, not an object, missing fields) is logged in one line and
rejected without requeue, so the broker dead-letters it where a dead-letter exchange is
configured and drops it otherwise: it is never redelivered forever. A malformed *call*
whose ``_msg_id`` and ``_reply_q`` can still be read also gets a failure reply
(``relaybus.errors.MalformedMessage``), so its caller learns why at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from relaybus.drivers.rabbit.acks import AckBatcher
from relaybus.drivers.rabbit.amqp import Delivery, codec
from relaybus.drivers.rabbit.connector import Connector
from relaybus.drivers.rabbit.consumer import QueueConsumer
from relaybus.drivers.rabbit.incoming import (
    RabbitNotification,
    RabbitRequest,
    ReplySender,
    Retry,
)
from relaybus.drivers.rabbit.publisher import Publisher
from relaybus.drivers.rabbit.topology import QueueSpec
from relaybus.errors import MalformedMessage
from relaybus.message import DuplicateFilter, parse_notification, unpack
from relaybus.transport.base import NotificationHandler, RequestHandler, TapHandler
from relaybus.transport.intake import Intake, Refused
from relaybus.transport.replies import PendingReplies

#: ``retry(queue, body, delay, context)``: a broker-side retry into ``queue``
RetryInto = Callable[[str, bytes, float, Mapping[str, Any]], Awaitable[None]]

LOG = logging.getLogger(__name__)


def _drop(kind: str, queue: str, delivery: Delivery, acks: AckBatcher, reason: Any) -> None:
    LOG.warning("rejecting malformed %s from queue %r (%d bytes): %s", kind, queue,
                len(delivery.body), reason)
    acks.reject(delivery.delivery_tag, requeue=False)


class RPCServerConsumer(QueueConsumer):
    """Consumes a server's ``<topic>``, ``<topic>.<server>`` and fanout queues.

    A request is acknowledged once handed to the server (before its method runs), as
    oslo.messaging does; a repeated ``_unique_id`` is acknowledged and dropped.

    Args:
        shared_queues: the topic and server queues (deleted when idle after stop unless
            ``keep_queues`` or they are quorum queues, which are kept).
        fanout_queue: this server's own fanout queue (always deleted after stop).
    """

    def __init__(self, connector: Connector, publisher: Publisher, name: str,
                 shared_queues: list[QueueSpec], fanout_queue: QueueSpec, prefetch: int, *,
                 handler: RequestHandler, send_reply: ReplySender,
                 check_size: Callable[[bytes], bytes], keep_queues: bool,
                 intake: Intake) -> None:
        super().__init__(connector, name, [*shared_queues, fanout_queue], prefetch)
        self._publisher = publisher
        self._shared = shared_queues
        self._fanout = fanout_queue
        self._handler = handler
        self._send_reply = send_reply
        self._check_size = check_size
        self._keep_queues = keep_queues
        self._intake = intake
        self._duplicates = DuplicateFilter()

    async def handle(self, delivery: Delivery, acks: AckBatcher) -> None:
        tag = delivery.delivery_tag
        outcome = self._intake.request(delivery.body, delivery.routing_key,
                                       size=delivery.body_size)
        if isinstance(outcome, Refused):
            # rejected without requeue: dead-lettered where the queue has a DLX
            acks.reject(tag, requeue=False)
            if outcome.answer is not None:
                await self._send_reply(*outcome.answer)
            return
        if self._intake.is_duplicate(outcome, self._duplicates, self.name):
            acks.ack(tag)
            return
        await self._handler(RabbitRequest(outcome, self._send_reply, self._check_size))
        acks.ack(tag)

    async def after_stop(self) -> None:
        if self._connector.current is None:
            return  # the broker is out of reach; the fanout queue expires by itself
        timeout = 2.0
        await self._publisher.delete_queue(self._fanout.name, if_unused=False, if_empty=False,
                                           timeout=timeout)
        if not self._keep_queues:
            for queue in self._shared:
                if queue.quorum:
                    # RabbitMQ 3.10 answers a conditional delete (if_unused / if_empty) of a
                    # quorum queue with 540 NOT_IMPLEMENTED and closes the whole connection;
                    # an unconditional one could drop messages sent meanwhile. Quorum queues
                    # are durable: keep them, as oslo.messaging keeps durable queues.
                    continue
                await self._publisher.delete_queue(queue.name, if_unused=True, if_empty=True,
                                                   timeout=timeout)


class NotificationConsumer(QueueConsumer):
    """Consumes a listener's queues; each notification stays unacknowledged until settled.

    A repeated ``_unique_id`` is dropped unless the broker marks the delivery as
    redelivered (a requeued notification comes back with the same id and must be seen).
    """

    def __init__(self, connector: Connector, name: str, queues: list[QueueSpec],
                 prefetch: int, *, handler: NotificationHandler, intake: Intake,
                 retry: RetryInto | None = None) -> None:
        super().__init__(connector, name, queues, prefetch)
        self._handler = handler
        self._intake = intake
        self._duplicates = DuplicateFilter()
        self._retry_into = retry
        self._names = {queue.name for queue in queues}

    def _retry_for(self, delivery: Delivery) -> Retry | None:
        """Where a broker-side retry of this delivery goes: back into its own queue."""
        retry = self._retry_into
        key = delivery.routing_key
        queue = key if key in self._names else (
            next(iter(self._names)) if len(self._names) == 1 else None)
        if retry is None or queue is None:
            return None
        body = delivery.body

        async def again(delay: float, context: Mapping[str, Any]) -> None:
            await retry(queue, body, delay, context)
        return again

    async def handle(self, delivery: Delivery, acks: AckBatcher) -> None:
        if not self._intake.received(delivery.body, delivery.routing_key, "notification",
                                     delivery.body_size):
            acks.reject(delivery.delivery_tag, requeue=False)
            return
        try:
            notification = parse_notification(unpack(delivery.body))
        except MalformedMessage as exc:
            _drop("notification", delivery.routing_key, delivery, acks, exc)
            return
        tag = delivery.delivery_tag
        if not delivery.redelivered and self._duplicates.is_duplicate(notification.unique_id):
            LOG.info("dropping a duplicate notification (_unique_id %s)",
                     notification.unique_id)
            acks.ack(tag)
            return
        await self._handler(RabbitNotification(notification, acks, tag,
                                               self._retry_for(delivery),
                                               _deliveries(delivery)))


def _deliveries(delivery: Delivery) -> int | None:
    """How often a quorum queue delivered this message, this time included: 1 + its
    ``x-delivery-count`` (set only on a redelivery: a first delivery costs nothing here)."""
    if not delivery.redelivered:
        return None
    count = codec.headers_of(delivery.header).get("x-delivery-count")
    return 1 + count if isinstance(count, int) and count >= 0 else None


class ReplyConsumer(QueueConsumer):
    """Consumes the bus's ``reply_<hex>`` queue and hands each reply to its waiting call.

    Replies are consumed without acknowledgements and handled right in the socket reader:
    matching a reply to its call never waits for anything.
    """

    no_ack = True
    inline = True

    def __init__(self, connector: Connector, queue: QueueSpec, replies: PendingReplies,
                 intake: Intake) -> None:
        super().__init__(connector, queue.name, [queue], prefetch=0)
        self._replies = replies
        self._intake = intake

    async def handle(self, delivery: Delivery, acks: AckBatcher) -> None:
        raise NotImplementedError("the reply consumer handles deliveries inline")

    def handle_now(self, delivery: Delivery) -> None:
        reply = self._intake.reply(delivery.body, self.name, delivery.body_size)
        if reply is not None:
            self._replies.deliver(reply)


class TapConsumer(QueueConsumer):
    """Consumes copies of a topic's traffic from a private queue (``relaybus tap``).

    The queue is exclusive and auto-deleted: it lives as long as the tap. While it is
    bound, requests to the topic always have somewhere to go, so a request to a topic with
    no server waits for its timeout instead of failing with MessageUndeliverable.
    """

    no_ack = True

    def __init__(self, connector: Connector, queue: QueueSpec, handler: TapHandler,
                 intake: Intake) -> None:
        super().__init__(connector, queue.name, [queue], prefetch=0)
        self._handler = handler
        self._intake = intake

    async def handle(self, delivery: Delivery, acks: AckBatcher) -> None:
        if not self._intake.received(delivery.body, self.name, "tapped message",
                                     delivery.body_size):
            return
        try:
            message = unpack(delivery.body)
        except MalformedMessage as exc:
            LOG.warning("tap %s: skipping a malformed message (%s)", self.name, exc)
            return
        await self._handler(delivery.exchange, delivery.routing_key, message)
