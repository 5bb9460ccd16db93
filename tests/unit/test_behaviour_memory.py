"""The behaviour suite on the embedded memory transport."""

import relaybus
from relaybus.drivers.memory.broker import broker_named
from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour
from relaybus.testing.delivery_behaviour import (
    DeadLetterStoreBehaviour,
    DelayBehaviour,
    DeliveryBehaviour,
)
from relaybus.testing.middleware_behaviour import MiddlewareBehaviour
from relaybus.testing.ping_behaviour import PingAllBehaviour


class TestMemoryRPC(RPCBehaviour):
    transport_url = "memory://"

    async def inject_request(self, bus: relaybus.Bus, topic: str, body: bytes,
                             reply_to: str | None) -> None:
        assert broker_named("default").publish("openstack", topic, body) == 1


class TestMemoryNotifications(NotificationBehaviour):
    transport_url = "memory://"


class TestMemoryDelivery(DeliveryBehaviour):
    transport_url = "memory://"


class TestMemoryDelay(DelayBehaviour):
    transport_url = "memory://"


class TestMemoryMiddleware(MiddlewareBehaviour):
    transport_url = "memory://"


class TestMemoryDeadLetterStore(DeadLetterStoreBehaviour):
    transport_url = "memory://"


class TestMemoryPingAll(PingAllBehaviour):
    transport_url = "memory://"
