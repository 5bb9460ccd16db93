"""Event logs on NATS: JetStream streams.

Log ``name`` is the stream ``<prefix>_firehose_log_<name part>`` (four parts: no notification
or delay stream has that shape) holding the one subject
``<prefix>.firehose.<name token>`` (three tokens: no bus subject has as few, so it never
overlaps a notification stream). A record's offset is its stream sequence (1, 2, ...).
Reading is an ordered push consumer (no acknowledgements; nats-py recreates it from the
last sequence it saw when messages go missing or the connection comes back).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import nats.errors
import nats.js.errors
from nats.js import api

from relaybus.drivers.nats.connection import Connection, translate, translated
from relaybus.drivers.nats.naming import name_part, token
from relaybus.errors import TransportError
from relaybus.transport.eventlog import EventLog, Record, Retention, Start

PENDING_MESSAGES = 4096  # buffered in the client per reader before nats-py resets it
PENDING_BYTES = 16 * 1024 * 1024


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
        with translated(f"reading stream {self.stream}"):
            subscription = await self._js().subscribe(
                self.subject, stream=self.stream, ordered_consumer=True,
                config=api.ConsumerConfig(deliver_policy=policy, opt_start_seq=first),
                pending_msgs_limit=PENDING_MESSAGES, pending_bytes_limit=PENDING_BYTES)
        try:
            async for msg in subscription.messages:
                yield Record(msg.metadata.sequence.stream, msg.data)
            raise TransportError(f"reading stream {self.stream}: the subscription ended")
        except (nats.errors.Error, OSError) as exc:
            raise translate(exc, f"reading stream {self.stream}") from exc
        finally:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await subscription.unsubscribe()

    async def delete(self) -> None:
        with translated(f"deleting stream {self.stream}"):
            await self._js().delete_stream(self.stream)

    async def close(self) -> None:
        pass  # readers own their subscriptions; publishing holds nothing
