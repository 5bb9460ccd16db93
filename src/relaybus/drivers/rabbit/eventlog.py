"""Event logs on RabbitMQ: stream queues (``x-queue-type: stream``).

A record is a message published to the stream through the default exchange, with publisher
confirms; its offset is the one the broker gives it (0, 1, ...), which every consumer sees
in the ``x-stream-offset`` header. Reading is a consumer with ``x-stream-offset`` set to
the first offset wanted (or ``last`` / ``next``) and a prefetch, acknowledging what it
took (stream consumers need the acknowledgements for credit, not for removal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from relaybus.drivers.rabbit.amqp import AMQPError, Channel, ChannelClosed, Delivery, codec
from relaybus.drivers.rabbit.connector import Connector
from relaybus.drivers.rabbit.errors import translate
from relaybus.errors import TransportError
from relaybus.transport.eventlog import EventLog, Record, Retention, Start

LOG = logging.getLogger(__name__)

PREFETCH = 500
PRECONDITION_FAILED = 406
SEGMENT_MIN = 1024 * 1024
SEGMENT_MAX = 500 * 1024 * 1024
_PROPERTIES = codec.message_properties(delivery_mode=2)


def stream_arguments(retention: Retention) -> dict[str, Any]:
    """The queue arguments of a stream with this retention.

    Retention deletes whole segments, so a segment is a tenth of ``max_bytes`` (between
    1 MiB and RabbitMQ's 500 MB default): the log then keeps between 90% and 100% of it.
    """
    segment = min(SEGMENT_MAX, max(SEGMENT_MIN, retention.max_bytes // 10))
    return {"x-queue-type": "stream", "x-max-age": f"{max(1, round(retention.max_age))}s",
            "x-max-length-bytes": retention.max_bytes,
            "x-stream-max-segment-size-bytes": segment}


class RabbitEventLog(EventLog):
    """A stream queue named ``name``, declared with ``retention`` on first use."""

    def __init__(self, connector: Connector, name: str, retention: Retention,
                 timeout: float) -> None:
        self.name = name
        self.retention = retention
        self._connector = connector
        self._timeout = timeout
        self._channel: Channel | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self._passive = False

    async def _open_channel(self) -> Channel:
        try:
            connection = await self._connector.connection(self._timeout)
            channel = await connection.channel()
            if self._passive:
                await channel.queue_declare(self.name, passive=True)
                return channel
            try:
                await channel.queue_declare(self.name, durable=True,
                                            arguments=stream_arguments(self.retention))
            except ChannelClosed as exc:
                if exc.code != PRECONDITION_FAILED:
                    raise
                # It exists with another retention (RabbitMQ cannot change a queue's
                # arguments; a policy can): use it as it is.
                LOG.warning("stream %r exists with another retention than %s; using it as "
                            "it is (%s)", self.name, self.retention, exc)
                self._passive = True
                channel = await connection.channel()
                await channel.queue_declare(self.name, passive=True)
        except AMQPError as exc:
            raise translate(exc, f"declaring stream {self.name!r}") from exc
        return channel

    async def declare(self) -> None:
        """Create the stream (or check that it exists with the same arguments)."""
        channel = await self._open_channel()
        with contextlib.suppress(AMQPError):
            await channel.close()

    async def _publisher(self) -> Channel:
        async with self._opening:
            if self._closed:
                raise TransportError(f"event log {self.name!r} is closed")
            if self._channel is None or self._channel.is_closed:
                channel = await self._open_channel()
                try:
                    await channel.confirm_select()
                except AMQPError as exc:
                    raise translate(exc, f"opening stream {self.name!r}") from exc
                self._channel = channel
            return self._channel

    async def append(self, body: bytes) -> None:
        channel = await self._publisher()
        try:
            confirmed = channel.publish("", self.name, body, _PROPERTIES)
            if confirmed is not None:
                await confirmed
        except AMQPError as exc:
            raise translate(exc, f"appending to stream {self.name!r}") from exc

    async def read(self, start: Start) -> AsyncGenerator[Record, None]:
        channel = await self._open_channel()
        records: asyncio.Queue[Delivery | None] = asyncio.Queue()
        channel.closed.add_done_callback(lambda _: records.put_nowait(None))
        tag = f"relaybus-log-{uuid.uuid4().hex[:12]}"
        try:
            try:
                await channel.qos(PREFETCH)
                await channel.basic_consume(self.name, tag, records.put_nowait,
                                            arguments={"x-stream-offset": start})
            except AMQPError as exc:
                raise translate(exc, f"reading stream {self.name!r}") from exc
            while (delivery := await records.get()) is not None:
                channel.ack(delivery.delivery_tag)
                offset = codec.headers_of(delivery.header).get("x-stream-offset")
                if not isinstance(offset, int):
                    LOG.warning("stream %r: a message without an offset; skipped", self.name)
                    continue
                yield Record(offset, delivery.body)
            raise TransportError(f"reading stream {self.name!r}: the channel was closed "
                                 f"({channel.closed.result()})")
        finally:
            with contextlib.suppress(AMQPError):
                await channel.close()

    async def delete(self) -> None:
        channel = await self._open_channel()
        try:
            await channel.queue_delete(self.name)
        except AMQPError as exc:
            raise translate(exc, f"deleting stream {self.name!r}") from exc
        finally:
            with contextlib.suppress(AMQPError):
                await channel.close()

    async def close(self) -> None:
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(AMQPError):
                await channel.close()
