"""The notification drivers: ``messaging``/``messagingv2``, ``log``, ``noop``, ``test``,
``routing``.

A driver gets the notification already serialized: ``notify(ctxt, message, priority,
retry)`` with ``message`` = ``{message_id, publisher_id, event_type, priority, payload,
timestamp}`` as oslo builds it. The messaging drivers hand it to a relaybus notifier
(which writes oslo's v2 envelope for both names: oslo's listeners read both).
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from relaybus.oslo_messaging import _opts
from relaybus.oslo_messaging.notify import _impl_test
from relaybus.oslo_messaging.serializer import bridge

LOG = logging.getLogger(__name__)
FOREVER = 1_000_000  # relaybus retries are counted; oslo's -1 means no end


class Driver:
    """Base class of the notification drivers."""

    def __init__(self, conf: Any, topics: Sequence[str], transport: Any) -> None:
        self.conf = conf
        self.topics = list(topics)
        self.transport = transport

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        raise NotImplementedError


class MessagingDriver(Driver):
    """Sends to the transport, once per topic."""

    def __init__(self, conf: Any, topics: Sequence[str], transport: Any) -> None:
        super().__init__(conf, topics, transport)
        self._notifiers: dict[tuple[str | None, int | None], Any] = {}

    def _notifier(self, publisher_id: str | None, retry: int | None) -> Any:
        relay_retry = FOREVER if retry is None or retry < 0 else retry
        key = (publisher_id, relay_retry)
        notifier = self._notifiers.get(key)
        if notifier is None:
            if len(self._notifiers) > 64:
                self._notifiers.clear()
            notifier = self.transport.bus.notifier(
                publisher_id=publisher_id, topics=self.topics, driver="messaging",
                serializer=bridge(None), retry=relay_retry)
            self._notifiers[key] = notifier
        return notifier

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        notifier = self._notifier(message["publisher_id"], retry)
        # the message's own id and time, so every driver of the Notifier reports the same
        notifier.notify(priority.lower(), ctxt, message["event_type"], message["payload"],
                        message_id=message["message_id"], timestamp=message["timestamp"])


class MessagingV2Driver(MessagingDriver):
    """Same as ``messaging`` (relaybus always writes the v2 envelope)."""


class LogDriver(Driver):
    """Logs each notification as JSON to ``oslo.messaging.notification.<event_type>``."""

    LEVELS: ClassVar[dict[str, int]] = {
        "audit": logging.INFO, "debug": logging.DEBUG, "info": logging.INFO,
        "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
        "critical": logging.CRITICAL, "sample": logging.INFO}

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        logger = logging.getLogger(f"oslo.messaging.notification.{message['event_type']}")
        level = self.LEVELS.get(priority.lower(), logging.INFO)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", json.dumps(message, default=str))


class NoOpDriver(Driver):
    """Drops every notification."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        return None


class TestDriver(Driver):
    """Keeps notifications in ``relaybus.oslo_messaging.notify._impl_test.NOTIFICATIONS``."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        _impl_test.NOTIFICATIONS.append((ctxt, message, priority, retry))


class RoutingDriver(Driver):
    """Sends each notification to the drivers its event type and priority select.

    The YAML file named by ``[oslo_messaging_notifications] routing_config`` maps group
    names to ``{driver: {accepted_events: [globs], accepted_priorities: [names]}}``.
    """

    def __init__(self, conf: Any, topics: Sequence[str], transport: Any) -> None:
        super().__init__(conf, topics, transport)
        import yaml

        self.routing_groups: dict[str, Any] = {}
        filename = conf[_opts.NOTIFICATIONS_GROUP].routing_config
        if filename:
            with open(filename, encoding="utf-8") as f:
                self.routing_groups = yaml.safe_load(f) or {}
        self._drivers: dict[str, Driver] = {}
        for group in self.routing_groups.values():
            for name in group or {}:
                if name != "routing" and name not in self._drivers:
                    self._drivers[name] = load_driver(name, conf, topics, transport)

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        chosen: list[str] = []
        for group in self.routing_groups.values():
            for name, rules in (group or {}).items():
                if name in chosen or name not in self._drivers:
                    continue
                rules = rules or {}
                events = rules.get("accepted_events")
                priorities = rules.get("accepted_priorities")
                if events is None and priorities is None:
                    continue
                if events is not None and not any(
                        fnmatch.fnmatch(message["event_type"], pattern) for pattern in events):
                    continue
                if priorities is not None and priority.lower() not in [
                        p.lower() for p in priorities]:
                    continue
                chosen.append(name)
        for name in chosen:
            self._drivers[name].notify(ctxt, message, priority, retry)


DRIVERS: dict[str, type[Driver]] = {
    "messaging": MessagingDriver, "messagingv2": MessagingV2Driver, "log": LogDriver,
    "noop": NoOpDriver, "test": TestDriver, "routing": RoutingDriver,
}


def load_driver(name: str, conf: Any, topics: Sequence[str], transport: Any) -> Driver:
    """The driver called ``name``.

    Raises:
        ValueError: no such driver.
    """
    cls = DRIVERS.get(name)
    if cls is None:
        raise ValueError(f"unknown notification driver {name!r}; choose from "
                         f"{', '.join(DRIVERS)}")
    return cls(conf, topics, transport)
