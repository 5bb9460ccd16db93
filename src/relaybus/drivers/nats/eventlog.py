"""Event logs on NATS: JetStream streams.

Log ``name`` is the stream ``<prefix>_firehose_log_<name part>`` (four parts: no notification
or delay stream has that shape) holding the one subject
``<prefix>.firehose.<name token>`` (three tokens: no bus subject has as few, so it never
overlaps a notification stream). A record's offset is its stream sequence (1, 2, ...).
Reading is an ordered push consumer (no acknowledgements; nats-py recreates it from the
last sequence it saw when messages go missing or heartbeats stop). A reconnect ends a read
with TransportError, so its reader starts again from the next offset: a restarted server
has forgotten the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from relaybus.drivers.nats.connection import Connection, translated
from relaybus.drivers.nats.naming import name_part, token
from relaybus.errors import TransportError
from relaybus.transport.eventlog import EventLog, Record, Retention, Start

PENDING_MESSAGES = 4096  # buffered in the client per reader before nats-py resets it
PENDING_BYTES = 16 * 1024 * 1024
IDLE_HEARTBEAT = 2.0  # seconds; two missed make nats-py recreate the ordered consumer


class NatsEventLog(EventLog):
    """A JetStream stream for log ``name``."""

    def __init__(self, connection: Connection, prefix: str, name: str, retention: Retention,
                 timeout: float) -> None:
        self.name = name
        self.stream = f"{name_part(prefix)}_firehose_log_{name_part(name)}"
        self.subject = f"{prefix}.firehose.{token(name)}"
        self.retention = retention
        self._connection = connection
        self._timeout = timeout

    def _js(self) -> nats.js.JetStreamContext:
        return self._connection.client.jetstream(timeout=self._timeout)

    async def declare(self) -> None:
        """Create the stream, or bring an existing one's retention up to date."""
        config = api.StreamConfig(
            name=self.stream, subjects=[self.subject], retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE, max_age=self.retention.max_age,
            max_bytes=self.retention.max_bytes, discard=api.DiscardPolicy.OLD)
        js = self._js()
        with translated(f"creating stream {self.stream}"):
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await js.update_stream(config)

    async def append(self, body: bytes) -> None:
        with translated(f"appending to stream {self.stream}"):
            await self._js().publish(self.subject, body, stream=self.stream)

    async def read(self, start: Start) -> AsyncGenerator[Record, None]:
        if start == "next":
            policy, first = api.DeliverPolicy.NEW, None
        elif start == "last":
            policy, first = api.DeliverPolicy.LAST, None
        else:
            policy, first = api.DeliverPolicy.BY_START_SEQUENCE, max(1, start)
        # A reconnect ends the read: the ordered consumer lived in the server's memory, so
        # after a restart nothing would come (nats-py notices only after two missed
        # heartbeats, and gives up if JetStream is not back yet). The caller reads again
        # from the next offset.
        received: asyncio.Queue[Msg | None] = asyncio.Queue(PENDING_MESSAGES)
        lost = False

        def reconnected() -> None:
            nonlocal lost
            lost = True
            if not received.full():  # else the reader is busy and sees ``lost`` next
                received.put_nowait(None)

        self._connection.on_reconnect.add(reconnected)
        try:
            with translated(f"reading stream {self.stream}"):
                subscription = await self._js().subscribe(
                    self.subject, stream=self.stream, ordered_consumer=True,
                    cb=received.put, idle_heartbeat=IDLE_HEARTBEAT,
                    config=api.ConsumerConfig(deliver_policy=policy, opt_start_seq=first),
                    pending_msgs_limit=PENDING_MESSAGES, pending_bytes_limit=PENDING_BYTES)
            try:
                while (msg := await received.get()) is not None and not lost:
                    yield Record(msg.metadata.sequence.stream, msg.data)
                raise TransportError(f"reading stream {self.stream}: the connection to "
                                     "NATS was lost")
            finally:
                with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                    await subscription.unsubscribe()
        finally:
            self._connection.on_reconnect.discard(reconnected)

    async def delete(self) -> None:
        with translated(f"deleting stream {self.stream}"):
            await self._js().delete_stream(self.stream)

    async def close(self) -> None:
        pass  # readers own their subscriptions; publishing holds nothing
