"""A RabbitMQ resource alarm: blocked publishes wait within their timeout, close is bounded.

During a memory or disk alarm RabbitMQ sends ``connection.blocked`` and, once a blocked
connection publishes anyway, stops reading it altogether: nothing sent afterwards
(``queue.delete``, ``channel.close``, ``connection.close``) is answered. The alarm is
raised on a node of this module's own (tests/reliability/instances.py's RabbitInstance)
with ``rabbitmqctl set_vm_memory_high_watermark``; the shared broker is never touched.
(``channel.flow`` is not sent by RabbitMQ 3.x at all; the fake broker of
test_amqp_hostile_peer.py covers it.)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from rabbit_support import WAIT, node_ctl

import relaybus
from relaybus import Target
from relaybus.drivers.rabbit.amqp import Connection, codec
from relaybus.drivers.rabbit.driver import RabbitDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reliability"))
from instances import RabbitInstance

pytestmark = pytest.mark.broker


class Echo:
    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def connection_of(bus: relaybus.Bus) -> Connection:
    driver = bus.driver
    assert isinstance(driver, RabbitDriver) and driver._connector is not None
    connection = driver._connector.current
    assert connection is not None
    return connection


def reply_queue_of(bus: relaybus.Bus) -> str:
    driver = bus.driver
    assert isinstance(driver, RabbitDriver) and driver._reply_consumer is not None
    return driver._reply_consumer.name


async def blocked_by_alarm(broker: RabbitInstance, connection: Connection) -> None:
    """Raise a memory alarm on the node and publish until it blocks ``connection``.

    The node notices a new watermark a moment after rabbitmqctl returns, and only blocks a
    connection that publishes once it has: so publish (to no queue) until it answers with
    ``connection.blocked``, as any AMQP client's publish would make it.
    """
    node_ctl(broker.node, "set_vm_memory_high_watermark", "0.000001")
    raw = await connection.channel()
    blocked = asyncio.ensure_future(connection.blocked.wait())
    while not blocked.done():
        raw.publish("", "nowhere", b"{}", codec.message_properties())
        await asyncio.wait([blocked], timeout=0.2)


def queue_names(broker: RabbitInstance) -> set[str]:
    return set(node_ctl(broker.node, "list_queues", "--no-table-headers", "name").split())


async def test_alarm_bus_close_deletes_its_reply_queue(own_rabbit: RabbitInstance) -> None:
    server_bus = await relaybus.connect(own_rabbit.url)
    bus = await relaybus.connect(own_rabbit.url)
    try:
        async with server_bus.rpc_server(Target(topic="alarm_reply_q", server="s1"), [Echo()]):
            client = bus.rpc_client(Target(topic="alarm_reply_q"), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            reply_queue = reply_queue_of(bus)
            assert reply_queue in queue_names(own_rabbit)
            await bus.close()
            assert reply_queue not in queue_names(own_rabbit)
    finally:
        await bus.close()
        await server_bus.close()


async def test_alarm_blocks_calls_and_casts_within_their_timeouts(
        own_rabbit: RabbitInstance) -> None:
    server_bus = await relaybus.connect(own_rabbit.url)
    bus = await relaybus.connect(own_rabbit.url, send_timeout=1, close_timeout=2)
    try:
        async with server_bus.rpc_server(Target(topic="alarm_blocked", server="s1"), [Echo()]):
            client = bus.rpc_client(Target(topic="alarm_blocked"), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            connection = connection_of(bus)
            try:
                await blocked_by_alarm(own_rabbit, connection)
                with pytest.raises(relaybus.MessagingTimeout, match="blocked publishing"):
                    await client.prepare(timeout=0.5).call({}, "echo", value=2)
                with pytest.raises(relaybus.ConnectionFailure, match="blocked"):
                    await client.cast({}, "echo", value=3)
            finally:
                node_ctl(own_rabbit.node, "set_vm_memory_high_watermark", "0.4")
    finally:
        await bus.close()
        await server_bus.close()


async def test_alarm_during_close_aborts_after_close_timeout(
        own_rabbit: RabbitInstance, caplog: pytest.LogCaptureFixture) -> None:
    server_bus = await relaybus.connect(own_rabbit.url)
    bus = await relaybus.connect(own_rabbit.url, close_timeout=1.5)
    try:
        async with server_bus.rpc_server(Target(topic="alarm_close", server="s1"), [Echo()]):
            client = bus.rpc_client(Target(topic="alarm_close"), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            connection = connection_of(bus)
            try:
                await blocked_by_alarm(own_rabbit, connection)  # the broker stops reading
                with caplog.at_level(logging.WARNING):
                    await bus.close()  # returns: the broker answers nothing any more
                assert connection.is_closed
                assert any("within close_timeout" in r.getMessage() for r in caplog.records)
            finally:
                node_ctl(own_rabbit.node, "set_vm_memory_high_watermark", "0.4")
    finally:
        await bus.close()
        await server_bus.close()
