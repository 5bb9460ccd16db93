"""Stopping an RPC server on quorum queues leaves its bus's connection alone.

RabbitMQ 3.10 answers a conditional delete (``if_unused`` / ``if_empty``) of a quorum queue
with 540 NOT_IMPLEMENTED and closes the whole connection, disturbing every server, listener
and sender on it. The driver keeps quorum queues after a server stops (they are durable, and
oslo.messaging keeps durable queues) instead. The broker is a node of this module's own,
started with tests/reliability/instances.py's RabbitInstance.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from rabbit_support import WAIT

import relaybus
from relaybus import Target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reliability"))
from instances import RabbitInstance

pytestmark = pytest.mark.broker


class Echo:
    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


async def test_stopping_a_server_on_quorum_queues_keeps_the_connection(
        own_rabbit: RabbitInstance) -> None:
    topic = "quorum_stop"
    bus = await relaybus.connect(own_rabbit.url, rabbit_quorum_queue=True)
    try:
        got: list[Any] = []
        arrived = asyncio.Event()

        class Listener:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: Any) -> None:
                got.append(payload["n"])
                arrived.set()

        listener = bus.notification_listener([Target(topic=f"{topic}_n")], [Listener()])
        await listener.start()
        server = bus.rpc_server(Target(topic=topic, server="s1"), [Echo()])
        await server.start()
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value=1) == 1
        connector = bus.driver._connector  # type: ignore[attr-defined]
        connection, generation = connector.current, connector.generation
        assert connection is not None

        await server.stop()
        await asyncio.sleep(0.5)  # a 540 close would have arrived by now

        assert connector.current is connection and connector.generation == generation
        # the listener on the same connection goes on as if nothing happened
        await bus.notifier("p", topics=[f"{topic}_n"]).info({}, "e", {"n": 1})
        await asyncio.wait_for(arrived.wait(), WAIT)
        assert got == [1]
        # the topic queue was kept: a server started again takes calls sent meanwhile
        pending = asyncio.ensure_future(client.call({}, "echo", value=2))
        await asyncio.sleep(0.2)
        again = bus.rpc_server(Target(topic=topic, server="s1"), [Echo()])
        await again.start()
        assert await asyncio.wait_for(pending, WAIT) == 2
        await again.stop()
        await listener.stop()
        assert connector.current is connection
    finally:
        await bus.close()
