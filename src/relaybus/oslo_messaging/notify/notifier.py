"""``Notifier`` and ``get_notification_transport``.

As in oslo.messaging, sending a notification never raises for a transport failure: the
problem is logged and the service goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from relaybus.message import format_timestamp, new_message_id
from relaybus.oslo_messaging import _opts
from relaybus.oslo_messaging.notify.drivers import Driver, load_driver
from relaybus.oslo_messaging.serializer import NoOpSerializer
from relaybus.oslo_messaging.transport import (
    NotificationTransport,
    TransportURL,
    _get_transport,
)

__all__ = ["Driver", "Notifier", "get_notification_transport"]

LOG = logging.getLogger(__name__)
_marker: Any = object()


def get_notification_transport(conf: Any, url: str | TransportURL | None = None,
                               allowed_remote_exmods: Sequence[str] | None = None
                               ) -> NotificationTransport:
    """The notifications transport: ``url``, else ``[oslo_messaging_notifications]
    transport_url``, else ``[DEFAULT] transport_url``."""
    _opts.register_opts(conf)
    if url is None:
        url = conf[_opts.NOTIFICATIONS_GROUP].transport_url
    transport = _get_transport(conf, url, allowed_remote_exmods, NotificationTransport)
    assert isinstance(transport, NotificationTransport)
    return transport


def _sanitize_context(ctxt: Any) -> Any:
    if isinstance(ctxt, dict) and "auth_token" in ctxt:
        ctxt = {**ctxt, "auth_token": None}
    redacted_copy = getattr(ctxt, "redacted_copy", None)
    if callable(redacted_copy):
        return redacted_copy()
    return ctxt


class Notifier:
    """Sends notifications, one method per priority.

    Args:
        transport: from ``get_notification_transport``.
        publisher_id: who sends, e.g. ``compute.host1``.
        driver: a driver name (default: ``[oslo_messaging_notifications] driver``; none
            configured means notifications are dropped and :meth:`is_enabled` is False).
        serializer: converts payloads and contexts.
        retry: -1 or None: retry a lost connection without end; 0: never; N: N times
            (default ``[oslo_messaging_notifications] retry``).
        topics: default ``[oslo_messaging_notifications] topics``.
    """

    def __init__(self, transport: Any, publisher_id: str | None = None,
                 driver: str | None = None, serializer: Any = None,
                 retry: int | None = None, topics: Sequence[str] | None = None) -> None:
        conf = transport.conf
        _opts.register_opts(conf)
        group = conf[_opts.NOTIFICATIONS_GROUP]
        self.transport = transport
        self.publisher_id = publisher_id
        self.retry = retry if retry is not None else group.retry
        self._driver_names = [driver] if driver is not None else list(group.driver)
        self._topics = list(topics) if topics is not None else list(group.topics)
        self._serializer = serializer or NoOpSerializer()
        self._drivers: list[tuple[str, Driver]] = [
            (name, load_driver(name, conf, self._topics, transport))
            for name in self._driver_names]

    def prepare(self, publisher_id: Any = _marker, retry: Any = _marker) -> Notifier:
        """A notifier sharing this one's drivers, with another publisher_id or retry."""
        clone = object.__new__(_SubNotifier)
        clone.__dict__.update(self.__dict__)
        if publisher_id is not _marker:
            clone.publisher_id = publisher_id
        if retry is not _marker:
            clone.retry = retry
        return clone

    def is_enabled(self) -> bool:
        """Whether some driver is configured."""
        return bool(self._drivers)

    def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> None:
        payload = self._serializer.serialize_entity(ctxt, payload)
        ctxt = self._serializer.serialize_context(ctxt)
        message = {"message_id": new_message_id(), "publisher_id": self.publisher_id,
                   "event_type": event_type, "priority": priority, "payload": payload,
                   "timestamp": format_timestamp()}
        for name, driver in self._drivers:
            try:
                driver.notify(_sanitize_context(ctxt), message, priority, self.retry)
            except Exception as exc:
                LOG.exception("Problem '%s' attempting to send to notification system "
                              "(driver %s). Payload=%s", exc, name, payload)

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an AUDIT notification."""
        self._notify(ctxt, event_type, payload, "AUDIT")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a DEBUG notification."""
        self._notify(ctxt, event_type, payload, "DEBUG")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an INFO notification."""
        self._notify(ctxt, event_type, payload, "INFO")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a WARN notification."""
        self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an ERROR notification."""
        self._notify(ctxt, event_type, payload, "ERROR")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a CRITICAL notification."""
        self._notify(ctxt, event_type, payload, "CRITICAL")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a SAMPLE notification (metering data)."""
        self._notify(ctxt, event_type, payload, "SAMPLE")


class _SubNotifier(Notifier):
    """What :meth:`Notifier.prepare` returns."""
