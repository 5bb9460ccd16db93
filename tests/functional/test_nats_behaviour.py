"""The foundation's behaviour suite, bound to ``nats://`` on the loopback NATS server.

The suite's notification tests create one JetStream stream per test topic; the fixture
below deletes it afterwards, so runs leave nothing behind on the shared server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_nats_support import BROKER, URL, delete_streams

from relaybus.testing.behaviour import NotificationBehaviour, RPCBehaviour

pytestmark = pytest.mark.broker


class TestNatsRPC(RPCBehaviour):
    transport_url = URL
    broker = BROKER


class TestNatsNotifications(NotificationBehaviour):
    transport_url = URL
    broker = BROKER

    @pytest.fixture(autouse=True)
    async def _delete_streams(self, topic: str) -> AsyncIterator[None]:
        yield
        await delete_streams([topic])
