"""The foundation's behaviour suite, bound to ``nats://`` on the loopback NATS server.

The suite's notification tests create one JetStream stream per test topic; the fixture
below deletes it afterwards, so runs leave nothing behind on the shared server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_nats_support import BROKER, URL, delete_streams, raw_client

import relaybus
from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour
from relaybus.testing.delivery_behaviour import (
    DeadLetterStoreBehaviour,
    DelayBehaviour,
    DeliveryBehaviour,
)
from relaybus.testing.middleware_behaviour import MiddlewareBehaviour
from relaybus.testing.ping_behaviour import PingAllBehaviour

pytestmark = pytest.mark.broker


class TestNatsRPC(RPCBehaviour):
    transport_url = URL
    broker = BROKER

    async def inject_request(self, bus: relaybus.Bus, topic: str, body: bytes,
                             reply_to: str | None) -> None:
        async with raw_client() as client:
            await client.publish(f"relaybus.openstack.rpc.{topic}", body,
                                 reply=reply_to or "")
            await client.flush()


class TestNatsPingAll(PingAllBehaviour):
    transport_url = URL
    broker = BROKER


class TestNatsNotifications(NotificationBehaviour):
    transport_url = URL
    broker = BROKER
    pools_share_rpc_queues = False  # pools are JetStream consumers, RPC uses queue groups

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic])


class TestNatsDelivery(DeliveryBehaviour):
    transport_url = URL
    broker = BROKER

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic, self.dlq(topic)])


class TestNatsMiddleware(MiddlewareBehaviour):
    transport_url = URL
    broker = BROKER

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic])


class TestNatsDelay(DelayBehaviour):
    transport_url = URL
    broker = BROKER

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic])


class TestNatsDeadLetterStore(DeadLetterStoreBehaviour):
    transport_url = URL
    broker = BROKER

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic, self.dlq(topic)])
