"""The foundation's behaviour suite, bound to ``rabbit://`` on the loopback RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator

import aiormq
import pytest

import relaybus
from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour
from relaybus.testing.brokers import reachable
from relaybus.testing.delivery_behaviour import (
    DeadLetterStoreBehaviour,
    DelayBehaviour,
    DeliveryBehaviour,
)
from relaybus.testing.middleware_behaviour import MiddlewareBehaviour
from relaybus.testing.ping_behaviour import PingAllBehaviour

pytestmark = pytest.mark.broker

URL = "rabbit://guest:guest@127.0.0.1:5672/"


class TestRabbitRPC(RPCBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)

    async def inject_request(self, bus: relaybus.Bus, topic: str, body: bytes,
                             reply_to: str | None) -> None:
        connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
        try:
            channel = await connection.channel()
            await channel.basic_publish(body, exchange="openstack", routing_key=topic)
        finally:
            await connection.close()


class TestRabbitPingAll(PingAllBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


class TestRabbitNotifications(NotificationBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


class TestRabbitDelivery(DeliveryBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


class TestRabbitDelay(DelayBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


class TestRabbitDeadLetterStore(DeadLetterStoreBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


class TestRabbitMiddleware(MiddlewareBehaviour):
    transport_url = URL
    broker = ("RabbitMQ", "127.0.0.1", 5672)


@pytest.fixture(scope="module", autouse=True)
def _remove_leftover_queues() -> Iterator[None]:
    """Delete what the suite leaves in ``/``: oslo's topology keeps notification queues
    (so notifications wait for listeners) and pool queues, which would pile up run after
    run. Only idle queues named like the suite's (``rb_*``, pools ``a`` and ``b``) go."""
    yield
    if shutil.which("rabbitmqctl") is None or not reachable("127.0.0.1", 5672):
        return
    listing = subprocess.run(["rabbitmqctl", "-q", "--formatter", "json", "list_queues",
                              "name", "consumers"], capture_output=True, text=True,
                             check=False, timeout=60)
    if listing.returncode != 0:
        return
    names = [q["name"] for q in json.loads(listing.stdout or "[]") if q["consumers"] == 0
             and (q["name"].startswith("rb_") or q["name"] in ("a", "b"))]
    if names:
        asyncio.run(_delete_queues(names))


async def _delete_queues(names: list[str]) -> None:
    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name, if_unused=True)
    finally:
        await connection.close()
