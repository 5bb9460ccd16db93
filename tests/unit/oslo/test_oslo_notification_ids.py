"""Every driver of one drop-in Notifier reports the same notification: the bus carries the
message_id and timestamp that the ``test`` (or ``log``) driver beside it was given."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from oslo_config import cfg

from relaybus import oslo_messaging
from relaybus.oslo_messaging.notify import _impl_test


def test_the_bus_and_the_test_driver_see_one_message_id_and_timestamp() -> None:
    conf = cfg.ConfigOpts()
    conf([], project="relaybus-test")
    transport = oslo_messaging.get_notification_transport(conf, url="fake://")
    # two drivers, as services configure them: [oslo_messaging_notifications] driver
    conf.set_override("driver", ["messagingv2", "test"], group="oslo_messaging_notifications")
    topic = f"ids_{uuid.uuid4().hex[:8]}"
    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: dict[str, Any]) -> None:
            received.append(metadata)
            arrived.set()

    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()])
    listener.start()
    try:
        _impl_test.reset()
        notifier = oslo_messaging.Notifier(transport, publisher_id="compute.host1",
                                           topics=[topic])
        notifier.info({"user": "u1"}, "compute.instance.create.end", {"id": 1})
        assert arrived.wait(10), "the listener got nothing"
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    (_, message, priority, _), = _impl_test.NOTIFICATIONS
    assert priority == "INFO"
    assert received == [{"message_id": message["message_id"],
                         "timestamp": message["timestamp"]}]
