"""The replay kept in the broker's log, so every gateway instance shares it.

On rabbit:// and nats:// the gateway keeps its events in a log on the broker (a RabbitMQ
stream queue, a JetStream stream: :mod:`relaybus.transport.eventlog`):

* the bus tap **appends** each new event to the log (the gateways of one pool take turns
  with the notifications, so each is appended once);
* every gateway **follows** the log from its newest records on, and feeds its hub from
  it: each event carries its log offset, which is its cursor (the SSE ``id:``, the
  ``firehoseseq`` attribute) and so the same on every instance;
* a client resuming after an offset its gateway's buffer no longer (or never) held is
  **caught up** from the log by a reader of its own, from that offset on, until it meets
  the live events; at most ``max_resume`` events: further back it gets a gap marker and
  the newest ``max_resume``. An offset older than the log's retention gives a gap marker
  too, then everything the log holds.

A lost connection to the log (a broker restart) ends a read: the follower reads again from
the offset after the last record it fed the hub, a catch-up reader from the one after the
last it gave its client (CATCH_UP_ATTEMPTS times, then a gap marker and the live events), so
no event is skipped or given twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from relaybus.errors import MessagingError
from relaybus.gateway.events import Event
from relaybus.gateway.hub import Gap, Hub, Subscriber
from relaybus.transport.eventlog import EventLog, Record, Start

LOG = logging.getLogger(__name__)

PRIME_WAIT = 2.0  # seconds a new gateway waits for the log's newest records (none: empty)
RETRY_FIRST = 0.5
RETRY_MAX = 2.0  # a log back after a restart is read again within this
CATCH_UP_ATTEMPTS = 5  # reads of the log one catch-up tries before a gap marker


class _Head(msgspec.Struct):
    """The CloudEvent attributes the gateway needs back from a record."""

    id: str = ""
    type: str = ""
    firehosetopic: str = ""


_DECODER = msgspec.json.Decoder(_Head)


def with_offset(body: bytes, offset: int) -> bytes:
    """The CloudEvent with its log offset as the ``firehoseseq`` extension attribute."""
    return b'{"firehoseseq":' + str(offset).encode() + b"," + body[1:]


class LogReplay:
    """Follows ``log`` into ``hub`` and catches resuming clients up from it.

    Args:
        log: the broker's log.
        hub: the hub to feed (its ``history`` must be this object).
        max_resume: the most events one resuming client is replayed from the log.
    """

    def __init__(self, log: EventLog, hub: Hub, max_resume: int) -> None:
        self.log = log
        self.hub = hub
        self.max_resume = max_resume
        self.bad_records = 0
        self.catch_ups = 0
        self._readers: set[asyncio.Task[None]] = set()
        # Set once the newest offset is known (the first records read), or after PRIME_WAIT
        # without any (an empty log): a catch-up needs it to know where live events begin.
        self.primed = asyncio.Event()

    async def append(self, body: bytes) -> None:
        """Add one encoded CloudEvent to the log (the tap's way in)."""
        await self.log.append(body)

    def event(self, record: Record) -> Event | None:
        """The event a record holds, None for a record that is not a CloudEvent."""
        try:
            head = _DECODER.decode(record.body)
        except msgspec.DecodeError:
            head = None
        if head is None or not head.id or not record.body.startswith(b"{"):
            self.bad_records += 1
            LOG.warning("log %s: record %d is not a CloudEvent; skipped", self.log.name,
                        record.offset)
            return None
        return Event(0, head.id, head.firehosetopic, head.type,
                     with_offset(record.body, record.offset), record.offset)

    async def follow(self) -> None:
        """Feed the hub from the log's newest records on, until cancelled.

        A lost connection is retried with backoff, from the offset after the last record.
        """
        start: Start = "last"
        delay = RETRY_FIRST
        asyncio.get_running_loop().call_later(PRIME_WAIT, self.primed.set)
        while True:
            try:
                async with contextlib.aclosing(self.log.read(start)) as records:
                    async for record in records:
                        delay = RETRY_FIRST
                        start = record.offset + 1
                        event = self.event(record)
                        if event is not None:
                            self.hub.ingest(event.id, event.topic, event.type, event.json,
                                            record.offset)
                        self.primed.set()
            except MessagingError as exc:
                LOG.warning("log %s: reading failed (%s); again in %.1f s", self.log.name,
                            exc, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)

    def catch_up(self, subscriber: Subscriber, since: int) -> None:
        task = asyncio.create_task(self._catch_up(subscriber, since),
                                   name=f"relaybus.gateway.{subscriber.name}.catch-up")
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        subscriber.on_close = task.cancel  # a client gone needs no reader waiting for it

    async def _catch_up(self, subscriber: Subscriber, since: int) -> None:
        self.catch_ups += 1
        await self.primed.wait()
        start, gap = since + 1, False
        last = self.hub.last_offset
        if last is not None and last - since > self.max_resume:
            start, gap = last - self.max_resume + 1, True
        delay = RETRY_FIRST
        try:
            for attempt in range(CATCH_UP_ATTEMPTS):
                try:
                    await self._read_for(subscriber, since, start, gap, last)
                    return
                except MessagingError as exc:
                    if attempt + 1 == CATCH_UP_ATTEMPTS or subscriber.closed:
                        LOG.warning("%s: reading log %s after %d failed (%s); it gets the "
                                    "live events (events may be missing)", subscriber.name,
                                    self.log.name, since, exc)
                        subscriber.add_history(Gap(str(since), 0, None))
                        return
                    LOG.warning("%s: reading log %s failed (%s); again in %.1f s from "
                                "offset %d", subscriber.name, self.log.name, exc, delay,
                                subscriber.floor + 1)
                # A lost connection (a broker restart): on from what the client has.
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                start, gap = subscriber.floor + 1, False
        finally:
            subscriber.release()

    async def _read_for(self, subscriber: Subscriber, since: int, start: int, gap: bool,
                        last: int | None) -> None:
        """Hand ``subscriber`` the log from ``start`` on until it meets the live events
        (a gap marker first when ``gap``, or when the log no longer holds ``start``)."""
        async with contextlib.aclosing(self.log.read(start)) as records:
            first = True
            async for record in records:
                if first and (gap or record.offset > start):  # skipped, or retention
                    replayed = 0 if last is None else max(0, last - record.offset + 1)
                    subscriber.add_history(Gap(str(since), replayed, str(record.offset)))
                first = False
                if record.offset <= subscriber.floor:
                    continue  # given already (a reader that restarted may repeat one)
                if self._met_live(subscriber, record.offset):
                    return
                event = self.event(record)
                if event is not None:
                    subscriber.add_history(event)
                else:
                    subscriber.floor = record.offset
                live = self.hub.last_offset
                if subscriber.closed or (live is not None and record.offset >= live
                                         and subscriber.first_queued_offset is None):
                    return
                await subscriber.room()

    @staticmethod
    def _met_live(subscriber: Subscriber, offset: int) -> bool:
        first = subscriber.first_queued_offset
        return subscriber.closed or (first is not None and offset >= first)

    def stats(self) -> dict[str, Any]:
        return {"log": self.log.name, "last_offset": self.hub.last_offset,
                "catching_up": len(self._readers), "catch_ups": self.catch_ups,
                "bad_records": self.bad_records}

    async def close(self) -> None:
        """Stop every catch-up reader and release the log."""
        for task in list(self._readers):
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.log.close()
