"""The drop-in's RPC client reuses its relaybus client between sends, yet follows a target
changed in place (oslo's targets are mutable, and services set their fields)."""

from __future__ import annotations

import uuid
from typing import Any

from oslo_config import cfg

from relaybus import oslo_messaging


def test_a_target_changed_in_place_is_where_the_next_call_goes() -> None:
    conf = cfg.ConfigOpts()
    conf([], project="relaybus-test")
    transport = oslo_messaging.get_rpc_transport(conf, url="fake://")
    first, second = (f"reuse_{uuid.uuid4().hex[:8]}" for _ in range(2))

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def who(self, ctxt: Any) -> str:
            return self.name

    servers = [oslo_messaging.get_rpc_server(transport, oslo_messaging.Target(topic=topic,
                                                                             server="s1"),
                                             [Named(topic)])
               for topic in (first, second)]
    for server in servers:
        server.start()
    try:
        target = oslo_messaging.Target(topic=first)
        client = oslo_messaging.get_rpc_client(transport, target, timeout=10)
        assert [client.call({}, "who") for _ in range(3)] == [first] * 3
        made = client._client(10)
        assert client._client(10) is made
        target.topic = second
        assert client.call({}, "who") == second
    finally:
        for server in servers:
            server.stop()
            server.wait()
        transport.cleanup()
