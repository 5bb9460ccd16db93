"""The bus side: a notification listener pool of the gateway's own, feeding the hub.

The gateway listens as its own pool (``relaybus-firehose`` by default), so it gets a copy of
every notification while every other pool keeps getting its own: it never steals messages.
One listener per target, so each event knows the exchange and topic it came through. The
listeners handle one notification at a time, which keeps the stream in the bus's order; the
handler only encodes and hands over, so that costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import relaybus
from relaybus import Target
from relaybus.errors import MessagingError
from relaybus.gateway.events import cloudevent, encode, safe_id
from relaybus.gateway.hub import Hub
from relaybus.gateway.topics import TopicTemplate

LOG = logging.getLogger(__name__)

DEFAULT_POOL = "relaybus-firehose"
Append = Callable[[bytes], Awaitable[None]]
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
APPEND_RETRY_FIRST = 0.2  # seconds before appending again to a log that refused
APPEND_RETRY_MAX = 2.0


class _Endpoint:
    """A listener endpoint with one method per priority, all feeding the hub."""

    def __init__(self, hub: Hub, template: TopicTemplate, exchange: str, bustopic: str,
                 append: Append | None = None, stopping: asyncio.Event | None = None) -> None:
        self._hub = hub
        self._append = append
        self._stopping = stopping or asyncio.Event()
        self._template = template
        self._exchange = exchange
        self._bustopic = bustopic
        for priority in PRIORITIES:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority: str) -> Any:
        async def handle(ctxt: Any, publisher_id: str | None, event_type: str, payload: Any,
                         metadata: dict[str, Any]) -> relaybus.NotificationResult | None:
            body = self.take(priority, publisher_id, event_type, payload, metadata)
            if body is not None and self._append is not None \
                    and not await self._keep(body):  # acknowledged once the log has it
                return relaybus.NotificationResult.REQUEUE  # back to the bus, not lost
            return None

        handle.__qualname__ = f"firehose.{priority}"
        return handle

    async def _keep(self, body: bytes) -> bool:
        """Append to the log until it takes the event: while its broker restarts (a
        RabbitMQ stream answers 404 for a while after), the notification waits
        unacknowledged, and those behind it wait too (one at a time: the bus's order).
        Once the tap is stopping, a refusal returns False: the notification goes back
        to the bus for the next gateway (or this one's restart)."""
        assert self._append is not None
        delay = APPEND_RETRY_FIRST
        while True:
            try:
                await self._append(body)
                return True
            except MessagingError as exc:
                if self._stopping.is_set():
                    LOG.warning("the replay log did not take an event while the gateway "
                                "stops (%s); its notification goes back to the bus", exc)
                    return False
                LOG.warning("the replay log did not take an event (%s); again in %.1f s "
                            "(its notification waits, unacknowledged)", exc, delay)
            await asyncio.sleep(delay)
            delay = min(APPEND_RETRY_MAX, delay * 2)

    def take(self, priority: str, publisher_id: str | None, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> bytes | None:
        """Turn one notification into an event and give it to the hub (directly, or the
        encoded event to append to the log); None for a duplicate."""
        event_id = safe_id(str(metadata.get("message_id", "")))
        if self._hub.known(event_id):
            self._hub.counters.duplicates += 1
            return None
        topic = self._template.render(exchange=self._exchange, bustopic=self._bustopic,
                                      publisher_id=publisher_id, event_type=event_type,
                                      priority=priority)
        body = encode(cloudevent(message_id=event_id, publisher_id=publisher_id,
                                 event_type=event_type, priority=priority,
                                 timestamp=metadata.get("timestamp"), payload=payload,
                                 exchange=self._exchange, bustopic=self._bustopic, topic=topic))
        if self._append is None:
            self._hub.ingest(event_id, topic, event_type, body)
        return body


class BusTap:
    """Listens to ``targets`` on ``bus`` as pool ``pool`` and feeds ``hub``.

    Args:
        bus: a connected bus.
        hub: where events go.
        targets: notification targets (topic, and optionally exchange).
        template: renders each event's hierarchical topic.
        pool: the listener pool. Transports keep one queue per pool, so with several
            targets each gets a pool of its own, ``<pool>.<exchange>.<topic>``; otherwise a
            notification could be taken by the listener of another target and mislabelled.
        append: where encoded events go when the replay is kept in the broker's log (the
            hub then gets them back from the log); None: straight to the hub.
    """

    def __init__(self, bus: relaybus.Bus, hub: Hub, targets: Sequence[Target],
                 template: TopicTemplate, pool: str = DEFAULT_POOL,
                 append: Append | None = None) -> None:
        if not targets:
            raise ValueError("the firehose needs at least one notification topic")
        self.bus = bus
        self.pool = pool
        self.listeners = []
        self._endpoints: list[_Endpoint] = []
        self._stopping = asyncio.Event()
        for target in targets:
            exchange = target.exchange or bus.driver.control_exchange
            endpoint = _Endpoint(hub, template, exchange, target.topic or "", append,
                                 self._stopping)
            self._endpoints.append(endpoint)
            name = pool if len(targets) == 1 else f"{pool}.{exchange}.{target.topic}"
            self.listeners.append(bus.notification_listener(
                [target], [endpoint], pool=name, max_concurrency=1))

    def send_to(self, append: Append | None) -> None:
        """From now on, hand encoded events to ``append`` (None: straight to the hub)."""
        for endpoint in self._endpoints:
            endpoint._append = append

    async def start(self) -> None:
        for listener in self.listeners:
            await listener.start()

    async def stop(self) -> None:
        """Stop taking notifications and let the ones received reach the hub."""
        self._stopping.set()
        for listener in self.listeners:
            await listener.stop()
        for listener in self.listeners:
            await listener.wait()
