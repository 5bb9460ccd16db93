"""``relaybus-oslo-send-notification`` sends what ``oslo-messaging-send-notification`` sends.

Both commands run as subprocesses with the same arguments against RabbitMQ; a listener of
the real oslo.messaging receives both notifications, which must be the same but for their
message ids and timestamps.
"""

from __future__ import annotations

import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

pytestmark = [pytest.mark.broker, pytest.mark.interop]

oslo_messaging = pytest.importorskip("oslo_messaging")

OSLO_TOOL = Path(sys.executable).with_name("oslo-messaging-send-notification")
RECEIVE_TIMEOUT = 20.0


class _Endpoint:
    def __init__(self) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()

    def _keep(self, priority: str, ctxt: Any, publisher_id: str, event_type: str,
              payload: Any) -> None:
        self.received.put({"priority": priority, "ctxt": dict(ctxt or {}),
                           "publisher_id": publisher_id, "event_type": event_type,
                           "payload": payload})

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self._keep("info", ctxt, publisher_id, event_type, payload)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        self._keep("error", ctxt, publisher_id, event_type, payload)


def _send(command: list[str], url: str, topic: str, priority: str) -> None:
    done = subprocess.run(
        [*command, "--transport-url", url, "--publisher-id", "compute.host1",
         "--event-type", "instance.create.end", "--topic", topic, "--priority", priority,
         '{"instance": "i-1"}'],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.parametrize("priority", ["info", "error"])
def test_send_notification_matches_oslos_tool(url: str, topic: str, priority: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    endpoint = _Endpoint()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint], executor="threading")
    listener.start()
    try:
        _send([str(OSLO_TOOL)], url, topic, priority)
        oslos = endpoint.received.get(timeout=RECEIVE_TIMEOUT)
        _send([sys.executable, "-m", "relaybus.oslo_messaging.send_notification"], url, topic,
              priority)
        ours = endpoint.received.get(timeout=RECEIVE_TIMEOUT)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert oslos["payload"] == '{"instance": "i-1"}'
    assert ours == oslos
