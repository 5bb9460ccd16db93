"""Publishing through the gateway (with the publish token): events in, notifications out.

A client sends a CloudEvent-shaped object; the gateway sends it on the bus as a
notification, so it reaches every listener pool (the gateway's own included, which is how
it comes back out of the firehose):

    {"type": "gerrit.comment-added", "source": "openstack/nova",
     "priority": "info", "data": {...}}

``type`` is required; ``source`` defaults to ``relaybus.gateway``, ``priority`` to
``info``; ``specversion`` and ``datacontenttype``, when present, must be ``1.0`` and
``application/json``. Other attributes (``id``, ``time``, extensions) are ignored: the bus
assigns the id and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import relaybus
from relaybus.gateway.tap import PRIORITIES
from relaybus.gateway.topics import TopicTemplate

DEFAULT_SOURCE = "relaybus.gateway"
MAX_BATCH = 1000
MAX_NAME = 255


class BadEvent(ValueError):
    """An event a client asked to publish is malformed."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One validated event to publish."""

    source: str
    type: str
    priority: str
    data: Any


def _name(event: dict[str, Any], key: str, default: str | None) -> str:
    value = event.get(key, default)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise BadEvent(f"'{key}' must be a non-empty string of at most {MAX_NAME} characters")
    if any(ord(c) < 32 for c in value):
        raise BadEvent(f"'{key}' must not contain control characters")
    return value


def parse_event(event: Any) -> Outgoing:
    """Check one event.

    Raises:
        BadEvent: not an object, or a missing or malformed attribute.
    """
    if not isinstance(event, dict):
        raise BadEvent("an event must be a JSON object")
    if event.get("specversion", "1.0") != "1.0":
        raise BadEvent("'specversion' must be '1.0'")
    if event.get("datacontenttype", "application/json") != "application/json":
        raise BadEvent("'datacontenttype' must be 'application/json'")
    priority = event.get("priority", "info")
    if priority == "warning":
        priority = "warn"
    if priority not in PRIORITIES:
        raise BadEvent(f"'priority' must be one of {', '.join(PRIORITIES)}")
    return Outgoing(_name(event, "source", DEFAULT_SOURCE), _name(event, "type", None),
                    priority, event.get("data"))


def parse_events(body: Any) -> list[Outgoing]:
    """One event object, or a JSON array of at most MAX_BATCH of them.

    Raises:
        BadEvent: with the index of the first bad event of a batch.
    """
    if isinstance(body, list):
        if not body or len(body) > MAX_BATCH:
            raise BadEvent(f"a batch holds 1 to {MAX_BATCH} events, got {len(body)}")
        events = []
        for index, item in enumerate(body):
            try:
                events.append(parse_event(item))
            except BadEvent as exc:
                raise BadEvent(f"event {index}: {exc}") from None
        return events
    return [parse_event(body)]


class BusPublisher:
    """Sends validated events to the bus as notifications on ``topic``.

    Args:
        bus: the bus.
        topic: the notification topic they are sent on.
        template: the firehose's topic template, to tell which topic each event will have
            (what a token's publish scope is checked against).
    """

    def __init__(self, bus: relaybus.Bus, topic: str,
                 template: TopicTemplate | None = None) -> None:
        self._bus = bus
        self._topic = topic
        self._template = template or TopicTemplate()
        self._notifiers: dict[str, relaybus.Notifier] = {}
        self.published = 0

    def topic_of(self, event: Outgoing) -> str:
        """The firehose topic ``event`` will have once it comes back from the bus."""
        return self._template.render(exchange=self._bus.driver.control_exchange,
                                     bustopic=self._topic, publisher_id=event.source,
                                     event_type=event.type, priority=event.priority)

    async def publish(self, events: Sequence[Outgoing]) -> None:
        for event in events:
            notifier = self._notifiers.get(event.source)
            if notifier is None:
                if len(self._notifiers) > 1024:
                    self._notifiers.clear()
                notifier = self._notifiers[event.source] = self._bus.notifier(
                    event.source, topics=[self._topic])
            await getattr(notifier, event.priority)({}, event.type, event.data)
            self.published += 1
