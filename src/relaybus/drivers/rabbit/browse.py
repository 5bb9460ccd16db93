"""Showing the notifications a queue holds, and removing chosen ones, without a plugin.

AMQP has no "peek": the queue is consumed on a channel of its own, for as many messages as
it held when the visit began (``queue.declare`` passive says how many), each is shown to
the visitor while it is held unacknowledged, acknowledged (removed) when the visitor says
so, and the channel is closed at the end, which gives every other message back to the
queue in its old place. A message taken by another consumer meanwhile is simply not seen.

The channel's prefetch is bounded (``MAX_HELD``): a visit holds at most that many messages
it keeps at once, so a huge queue is read in full only as far as the visitor removes
messages; listing shows the first ``MAX_HELD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relaybus.drivers.rabbit.amqp import ChannelClosed, Connection, Delivery
from relaybus.drivers.rabbit.amqp.errors import NOT_FOUND
from relaybus.errors import MalformedMessage
from relaybus.message import new_unique_id, unpack
from relaybus.transport.base import NotificationVisitor

LOG = logging.getLogger(__name__)

#: how long to wait for the next message the queue said it held (another consumer may
#: have taken it)
NEXT_MESSAGE_WAIT = 2.0
#: the most messages a visit holds unacknowledged at once (AMQP prefetch is 16 bits)
MAX_HELD = 5000


async def visit_queue(connection: Connection, queue: str, priority: str,
                      visit: NotificationVisitor) -> int:
    """Visit the messages ``queue`` holds now (see the module docstring); returns how many."""
    channel = await connection.channel()
    try:
        try:
            declared = await channel.queue_declare(queue, passive=True)
        except ChannelClosed as exc:
            if exc.code == NOT_FOUND:
                return 0
            raise
        count = int(declared.message_count or 0)
        if count == 0:
            return 0
        await channel.qos(min(count, MAX_HELD))
        deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        tag = f"relaybus-browse-{new_unique_id()[:12]}"
        await channel.basic_consume(queue, tag, deliveries.put_nowait)
        visited = 0
        for _ in range(count):
            try:
                delivery = await asyncio.wait_for(deliveries.get(), NEXT_MESSAGE_WAIT)
            except TimeoutError:
                break
            try:
                message = unpack(delivery.body)
            except MalformedMessage:
                continue
            visited += 1
            if await visit(priority, message):
                channel.ack(delivery.delivery_tag)
        with contextlib.suppress(ChannelClosed):
            await channel.basic_cancel(tag)
        return visited
    finally:
        await channel.close()  # what was not acknowledged goes back to the queue
