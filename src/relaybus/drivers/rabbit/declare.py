"""Declaring exchanges and queues, tolerating ones that already exist with other settings.

RabbitMQ answers a declaration that differs from the existing object (``durable``,
``auto_delete``, queue arguments) with 406 PRECONDITION_FAILED and closes the channel.
Against a deployment whose options differ from ours (say its queues are durable), failing
would help nobody: the object exists and routes messages all the same. So a refused
declaration is logged once and repeated passively on a fresh channel, and the bindings
are made anyway. Declarations run on a scratch channel of their own so a refusal never
takes down a channel that publishes or consumes.
"""

from __future__ import annotations

import contextlib
import logging

from relaybus.drivers.rabbit.amqp import AMQPError, Channel, ChannelClosed, Connection
from relaybus.drivers.rabbit.amqp.errors import NOT_FOUND, PRECONDITION_FAILED
from relaybus.drivers.rabbit.topology import ExchangeSpec, QueueSpec

LOG = logging.getLogger(__name__)


class Declarer:
    """Declares on a scratch channel of ``connection``, reopening it after a refusal.

    Raises (from every method): ChannelClosed for refusals other than 406 (e.g. 403 on a
    name the user may not configure), ConnectionLost / ConnectionClosed.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._channel: Channel | None = None

    async def _scratch(self) -> Channel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel()
        return self._channel

    async def exchange(self, spec: ExchangeSpec) -> None:
        channel = await self._scratch()
        try:
            await channel.exchange_declare(spec.name, spec.type, durable=spec.durable,
                                           auto_delete=spec.auto_delete)
        except ChannelClosed as exc:
            if exc.code != PRECONDITION_FAILED:
                raise
            LOG.warning("exchange %r exists with other settings; using it as it is (%s)",
                        spec.name, exc.text)
            channel = await self._scratch()
            await channel.exchange_declare(spec.name, spec.type, durable=spec.durable,
                                           auto_delete=spec.auto_delete, passive=True)

    async def queue(self, spec: QueueSpec, *, with_exchanges: bool = True) -> None:
        """Declare a queue, its bindings, and (unless told not to) their exchanges."""
        if with_exchanges:
            for exchange, _ in spec.bindings:
                await self.exchange(exchange)
        channel = await self._scratch()
        try:
            await channel.queue_declare(spec.name, durable=spec.durable,
                                        auto_delete=spec.auto_delete, exclusive=spec.exclusive,
                                        arguments=spec.arguments)
        except ChannelClosed as exc:
            if exc.code != PRECONDITION_FAILED:
                raise
            LOG.warning("queue %r exists with other settings; using it as it is (%s)",
                        spec.name, exc.text)
            channel = await self._scratch()
            await channel.queue_declare(spec.name, passive=True)
        for exchange, key in spec.bindings:
            await channel.queue_bind(spec.name, exchange.name, key)

    async def exchange_exists(self, name: str) -> bool:
        """Whether exchange ``name`` exists (a passive declare; 404 means no)."""
        channel = await self._scratch()
        try:
            await channel.exchange_declare(name, "fanout", durable=False, auto_delete=False,
                                           passive=True)
        except ChannelClosed as exc:
            if exc.code != NOT_FOUND:
                raise
            return False
        return True

    async def delete_queue(self, name: str, *, if_unused: bool, if_empty: bool) -> bool:
        """Delete a queue; False when the broker refuses (in use, not empty)."""
        channel = await self._scratch()
        try:
            await channel.queue_delete(name, if_unused=if_unused, if_empty=if_empty)
        except ChannelClosed as exc:
            LOG.debug("queue %r not deleted: %s", name, exc)
            return False
        return True

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(AMQPError):
                await self._channel.close()
        self._channel = None
