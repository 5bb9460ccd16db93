"""A service description: the one object that names a service and its contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from relaybus.errors import InvalidTarget
from relaybus.target import Target

if TYPE_CHECKING:
    from relaybus.bus import Bus
    from relaybus.notify import Notifier


class Service:
    """What a service is, for the tools that run and document it.

    Args:
        name: the service's name, e.g. ``compute``.
        target: where its servers listen (needs a topic; exchange, namespace and version
            are taken from it and from each endpoint's own ``target``).
        endpoints: the endpoint objects (or classes, for documentation only); may be empty
            for a service that only emits events.
        emits: the notifications it sends, ``{"event.type": PayloadType}``; a value may
            also be ``(PayloadType, "priority")`` (default priority ``info``).
        description: a paragraph for the generated docs.
        notification_topic: the topic its notifications go to.

    ``bus.rpc_server(service.target, service.endpoints)`` runs it;
    :meth:`notifier` sends its notifications, held to ``emits``.
    """

    def __init__(self, name: str, target: Target, endpoints: Sequence[object],
                 emits: Mapping[str, Any] | None = None,
                 description: str | None = None,
                 notification_topic: str = "notifications") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a Service needs a non-empty name")
        if not isinstance(target, Target) or target.topic is None:
            raise InvalidTarget(f"Service {name!r} needs a Target with a topic, got {target!r}")
        emits = dict(emits or {})
        if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Sequence) \
                or not (endpoints or emits):
            raise ValueError(f"Service {name!r} needs a list of endpoints, or events it emits")
        for event_type, declared in emits.items():
            if not isinstance(event_type, str) or not event_type:
                raise ValueError(f"Service {name!r}: event types must be non-empty strings")
            if isinstance(declared, tuple) and (len(declared) != 2
                                                or not isinstance(declared[1], str)):
                raise ValueError(f"Service {name!r}: emits[{event_type!r}] must be a type "
                                 "or (type, priority)")
        self.name = name
        self.target = target
        self.endpoints = list(endpoints)
        self.emits = emits
        self.description = description
        Target(topic=notification_topic)  # validates the name
        self.notification_topic = notification_topic

    def __repr__(self) -> str:
        return f"Service({self.name!r}, {self.target})"

    def notifier(self, bus: Bus, publisher_id: str | None = None, **options: Any) -> Notifier:
        """A notifier for this service's notifications: to ``notification_topic``, as
        ``publisher_id`` (default: the service's name), checking payloads against ``emits``
        (InvalidPayload before sending). ``options`` go to :meth:`relaybus.Bus.notifier`."""
        options.setdefault("topics", [self.notification_topic])
        return bus.notifier(publisher_id or self.name, emits=self.emits, **options)

    def events(self) -> list[tuple[str, Any, str]]:
        """``(event_type, payload_type, priority)`` for each notification it emits."""
        out = []
        for event_type, declared in self.emits.items():
            payload_type, priority = declared if isinstance(declared, tuple) else (declared,
                                                                                   "info")
            out.append((event_type, payload_type, priority))
        return out
