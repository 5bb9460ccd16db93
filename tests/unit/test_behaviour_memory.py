"""The behaviour suite on the embedded memory transport."""

from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour


class TestMemoryRPC(RPCBehaviour):
    transport_url = "memory://"


class TestMemoryNotifications(NotificationBehaviour):
    transport_url = "memory://"
